"""iptables (legacy) rules inside the holder's network namespace.

The holder never forwards between interfaces (``ip_forward`` 0, FORWARD policy DROP),
which is what isolates networks from each other. Egress is not routed either: outbound
TCP from a non-internal bridge is REDIRECTed to the egress proxy, which connects from the
host's namespace (see :mod:`envkit.network.egress`). Traffic to any envkit subnet and all
traffic from internal bridges is left alone, so it goes nowhere.

The whole rule set is rewritten by one ``iptables-legacy-restore`` from the networks on
disk each time they change: there is no incremental state to get wrong after a crash.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from envkit.errors import NetworkError
from envkit.network import state
from envkit.network.egress import EGRESS_PORT
from envkit.network.state import NetworkInfo

RESTORE = "iptables-legacy-restore"
RESTORE6 = "ip6tables-legacy-restore"


#: The lock file this process opened (path, fd) for the helpers it forks (see lock_file).
_opened: tuple[str, int] | None = None


def lock_file() -> str:
    """iptables' lock file (``XTABLES_LOCKFILE``): ``xtables.lock`` in the network state
    directory (/run/xtables.lock is the host's; the temp dir may be a private 0700
    ``TMPDIR``).

    The holder's user namespace cannot reach a path under a private ``ENVKIT_HOME`` (as
    root, the host's root is not mapped in it), so the file is opened here, before the
    helper is forked, and :func:`apply` hands it to iptables as ``/proc/self/fd/N``; it
    is 0644, so the namespace's root may open it through that link. Returns the path;
    :func:`release_lock` closes the descriptor.
    """
    global _opened
    path = os.path.join(state.root(), "xtables.lock")
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    os.fchmod(fd, 0o644)
    if _opened is not None:
        os.close(_opened[1])
    _opened = (path, fd)
    return path


def release_lock() -> None:
    """Close what :func:`lock_file` opened (once the helper that needed it is done)."""
    global _opened
    if _opened is not None:
        os.close(_opened[1])
        _opened = None


def _lock_for_iptables(lock: str) -> str:
    """What ``XTABLES_LOCKFILE`` names for ``lock`` in this (helper) process: the fd
    :func:`lock_file` opened, made inheritable, or the path itself."""
    if _opened is None or _opened[0] != lock:
        return lock
    os.set_inheritable(_opened[1], True)
    return f"/proc/self/fd/{_opened[1]}"


def rules(networks: Sequence[NetworkInfo], host_loopback: str = "169.254.1.2") -> str:
    """The ``iptables-restore`` input for ``networks``.

    Whatever the egress proxy would refuse is not redirected at all, so that it fails
    like an unreachable address (a proxy can only accept, then close).
    """
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]"]
    # Where br_netfilter is loaded, frames bridged between two ports of one bridge pass
    # FORWARD too: they must stay allowed (and only they).
    lines += [f"-A FORWARD -i {net.bridge} -o {net.bridge} -j ACCEPT" for net in networks]
    lines += ["COMMIT", "*nat"]
    lines += [f":{c} ACCEPT [0:0]" for c in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")]
    for net in networks:
        lines.append(f"-A PREROUTING -d {net.subnet} -j RETURN")
    for net in networks:
        if net.internal:
            lines.append(f"-A PREROUTING -i {net.bridge} -j RETURN")
        elif not net.host_loopback:
            lines.append(f"-A PREROUTING -i {net.bridge} -d {host_loopback} -j RETURN")
    for net in networks:
        if not net.internal:
            lines.append(
                f"-A PREROUTING -i {net.bridge} -p tcp -j REDIRECT --to-ports {EGRESS_PORT}"
            )
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def rules6(networks: Sequence[NetworkInfo]) -> str:
    """The ``ip6tables-restore`` input for the dual-stack ones of ``networks``; ``""``
    when there is none. The same shape as :func:`rules`: bridged frames stay within
    their bridge, IPv6 TCP from a non-internal bridge to anything outside the envkit
    subnets goes to the egress proxy, the rest goes nowhere (the holder never routes:
    ``net.ipv6.conf.all.forwarding`` is 0)."""
    dual = [net for net in networks if net.subnet6]
    if not dual:
        return ""
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [f"-A FORWARD -i {net.bridge} -o {net.bridge} -j ACCEPT" for net in dual]
    lines += ["COMMIT", "*nat"]
    lines += [f":{c} ACCEPT [0:0]" for c in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")]
    lines += [f"-A PREROUTING -d {net.subnet6} -j RETURN" for net in dual]
    for net in dual:
        if net.internal:
            lines.append(f"-A PREROUTING -i {net.bridge} -j RETURN")
        else:
            lines.append(
                f"-A PREROUTING -i {net.bridge} -p tcp -j REDIRECT --to-ports {EGRESS_PORT}"
            )
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def set_up_holder(text: str, text6: str, lock: str) -> None:  # pragma: no cover - helper
    """In a helper inside the holder (as its root): no routing between interfaces, for
    either family (bridges stay islands), then the rules of both families."""
    for path in ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"):
        if os.path.exists(path):
            with open(path, "w") as f:
                f.write("0\n")
    load(text, text6, lock)


def load(text: str, text6: str, lock: str) -> None:  # pragma: no cover - helper
    """Load the rules of both families (IPv6 only when some network is dual-stack)."""
    apply(text, lock)  # without iptables-legacy-restore: no rules, no egress
    if text6:
        apply(text6, lock, RESTORE6)


def apply(text: str, lock: str, restore: str | None = None) -> bool:
    """Load ``text`` with iptables-legacy-restore (inside the holder's namespaces);
    ``False`` when it is not installed (no rules: containers get no egress).

    ``restore``: :data:`RESTORE` (the default) or :data:`RESTORE6`. Through posix_spawn rather than
    subprocess: that costs milliseconds to import on
    the holder's start, and a forked helper must not import anything.
    """
    restore = restore or RESTORE
    in_r, in_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        child = os.posix_spawnp(
            restore,
            [restore, "-w"],
            {**os.environ, "XTABLES_LOCKFILE": _lock_for_iptables(lock)},
            file_actions=[
                (os.POSIX_SPAWN_DUP2, in_r, 0),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
                (os.POSIX_SPAWN_CLOSE, in_w),
                (os.POSIX_SPAWN_CLOSE, err_r),
            ],
        )
    except OSError as exc:
        for fd in (in_w, err_r):
            os.close(fd)
        if isinstance(exc, FileNotFoundError):
            return False
        raise NetworkError(f"cannot run {restore}: {exc.strerror}") from None
    finally:
        os.close(in_r)
        os.close(err_w)
    # The rules fit a pipe's buffer many times over; whatever they say comes after.
    with os.fdopen(in_w, "wb") as rules:
        rules.write(text.encode())
    with os.fdopen(err_r, "rb") as err:
        message = err.read().decode(errors="replace").strip()
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise NetworkError(f"{restore} failed: {message}")
    return True
