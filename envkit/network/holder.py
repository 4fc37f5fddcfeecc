"""The namespace holder: a sleeping process owning the user and network namespace.

Every network of one ``$ENVKIT_HOME`` is a bridge inside the holder's network
namespace, which belongs to the holder's user namespace (id maps from
:func:`envkit.host.idmap.plan`, the containers' own). It is started on demand, stopped
when nothing uses it, and when found dead it is started again and its bridges and rules
are rebuilt from the state on disk.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
from collections.abc import Callable

from envkit.host import idmap, syscalls
from envkit.network import egress, links, ns, state
from envkit.network.errors import NetworkError

SLEEP = "/bin/sleep"


def _hold(go_r: int, done_w: int, adopt: int | None, ready: Callable[[], None]) -> None:
    if adopt is None:
        syscalls.unshare(syscalls.CLONE_NEWUSER)
    else:
        syscalls.setns(adopt, syscalls.CLONE_NEWUSER)
        os.close(adopt)
    ready()
    if os.read(go_r, 1) != b"g":
        os._exit(1)
    syscalls.unshare(syscalls.CLONE_NEWNET)
    os.write(done_w, b"n")
    os.close(go_r)
    os.close(done_w)
    # Only the namespaces matter now: exec a tiny sleeper instead of keeping a copy of
    # the caller's Python heap alive.
    if os.path.exists(SLEEP):
        os.execv(SLEEP, ["sleep", "infinity"])
    ns.never_returns()


def _start_holder(adopt: int | None) -> state.Proc:
    """A new holder; in the user namespace ``adopt`` (an fd) if given, else a new one."""
    maps = idmap.plan()
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    keep = (go_r, done_w) if adopt is None else (go_r, done_w, adopt)
    try:
        pid = ns.daemonize("holder", lambda ready: _hold(go_r, done_w, adopt, ready), keep)
    finally:
        os.close(go_r)
        os.close(done_w)
    try:
        proc = state.Proc.of(pid)
        if adopt is None:
            maps.write(pid)
        os.write(go_w, b"g")
        if os.read(done_r, 1) != b"n":
            raise NetworkError("the namespace holder died while unsharing its network namespace")
    except BaseException:
        _kill(pid)
        raise
    finally:
        os.close(go_w)
        os.close(done_r)
    return proc


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def setup(holder_pid: int) -> None:
    """(Re)build loopback, bridges and rules in the holder from the networks on disk.

    One helper does all of it: each helper is a fork of the caller.
    """
    # firewall (and the tempfile it needs) is imported here, in the parent,
    # only where rules change: a warm container start never loads it, and a forked
    # helper must not import anything.
    from envkit.network import firewall

    networks = state.all_networks()
    bridges = [
        (net.bridge, net.gateway, ipaddress.ip_network(net.subnet).prefixlen) for net in networks
    ]
    rules = firewall.rules(networks, egress.HOST_LOOPBACK)
    lock = firewall.lock_file()
    try:
        ns.in_holder(holder_pid, _set_up_inside, bridges, rules, lock, firewall.apply)
    finally:
        firewall.release_lock()


def _set_up_inside(
    bridges: list[tuple[str, str, int]],
    rules: str,
    lock: str,
    apply: Callable[[str, str], bool],
) -> None:  # pragma: no cover - runs in a helper inside the holder
    links.init_holder()
    for name, gateway, prefixlen in bridges:
        links.ensure_bridge(name, gateway, prefixlen)
    apply(rules, lock)  # without iptables-legacy-restore: no rules, no egress


def sync_firewall(holder_pid: int) -> None:
    """Rewrite the holder's iptables rules from the networks on disk."""
    from envkit.network import firewall

    text = firewall.rules(state.all_networks(), egress.HOST_LOOPBACK)
    try:
        ns.in_holder(holder_pid, firewall.apply, text, firewall.lock_file())
    finally:
        firewall.release_lock()


def current() -> state.Daemons | None:
    """The live daemons, or ``None`` when no holder runs."""
    d = state.load_daemons()
    return d if d is not None and d.holder.alive() else None


def ensure(adopt: int | None = None) -> tuple[state.Daemons, bool]:
    """The running daemons, started if needed; ``True`` when the holder is new.

    A new holder joins the user namespace ``adopt`` (an fd) when given: containers that
    outlived a dead holder still live in its user namespace, and only from inside it can
    their network namespaces be reached again. Call with the state lock held.
    """
    d = state.load_daemons()
    if d is not None and d.holder.alive():
        if d.egress is None or not d.egress.alive():
            d = state.Daemons(d.holder, egress.start(d.holder.pid))
            state.save_daemons(d)
        return d, False
    if d is not None:
        stop_daemons(d)
    holder = _start_holder(adopt)
    # The egress daemon starts on the other core while the holder is set up: it only
    # needs the holder's namespaces, not its bridges or rules.
    starting: ns.Starting | None = None
    try:
        starting = egress.spawn(holder.pid)
        setup(holder.pid)
        d = state.Daemons(holder, state.Proc.of(starting.wait()))
    except BaseException:
        if starting is not None:
            with contextlib.suppress(NetworkError):
                _kill(starting.wait())
        _kill(holder.pid)
        raise
    state.save_daemons(d)
    return d, True


def stop_daemons(d: state.Daemons) -> None:
    """Kill the egress daemon and the holder (their namespaces and bridges go with them)."""
    for proc in (d.egress, d.holder):
        if proc is not None:
            proc.kill()
    state.holder_path().unlink(missing_ok=True)
    from envkit.network import firewall

    with contextlib.suppress(FileNotFoundError):
        os.unlink(firewall.lock_file())


def require_tools() -> None:
    """A clear error when the host lacks what the holder needs."""
    if not os.path.exists("/proc/self/ns/user"):
        raise NetworkError(
            "this kernel has no user namespaces", hint="envkit doctor checks the kernel"
        )
    import shutil

    if shutil.which("iptables-legacy-restore") is None:
        raise NetworkError(
            "iptables-legacy-restore is not installed: containers would get no egress",
            hint="apt-get install iptables",
        )
