"""The namespace holder: a sleeping process owning the user and network namespace.

Every network of one ``$ENVKIT_HOME`` is a bridge inside the holder's network
namespace, which belongs to the holder's user namespace (id maps from
:func:`envkit.host.idmap.plan`, the containers' own). Beside it runs the network daemon
(:mod:`envkit.network.netd`), which does the netlink work, egress and published ports.
Both are started on demand, stopped when nothing uses them, and when found dead they
are started again and the bridges and rules are rebuilt from the state on disk.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
from collections.abc import Callable

from envkit.errors import NetworkError
from envkit.host import idmap, syscalls
from envkit.network import control, egress, ns, state

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
    os.close(done_w)
    # Live on only once the caller has this holder on record (a second byte): a caller
    # killed before that closes the pipe, and a holder nobody knows of must not stay.
    if os.read(go_r, 1) != b"k":
        os._exit(1)
    os.close(go_r)
    # Only the namespaces matter now: exec a tiny sleeper instead of keeping a copy of
    # the caller's Python heap alive.
    if os.path.exists(SLEEP):
        os.execv(SLEEP, ["sleep", "infinity"])
    ns.never_returns()


class _NewHolder:
    """A holder that has made its namespaces and waits for :meth:`keep`: until then it
    exits as soon as its caller dies (the pipe's write end closes with it)."""

    def __init__(self, proc: state.Proc, go_w: int) -> None:
        self.proc = proc
        self._go_w = go_w

    def keep(self) -> None:
        """Let the holder live on: call once it is on record."""
        try:
            os.write(self._go_w, b"k")
        finally:
            self.close()

    def close(self) -> None:
        """Give up the holder (it exits, unless :meth:`keep` ran)."""
        if self._go_w >= 0:
            os.close(self._go_w)
            self._go_w = -1


def _start_holder(adopt: int | None) -> _NewHolder:
    """A new holder; in the user namespace ``adopt`` (an fd) if given, else a new one."""
    maps = idmap.plan()
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    keep = (go_r, done_w) if adopt is None else (go_r, done_w, adopt)
    try:
        pid = ns.daemonize("holder", lambda ready: _hold(go_r, done_w, adopt, ready), keep)
    except BaseException:
        os.close(go_w)
        os.close(done_r)
        raise
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
        os.close(go_w)
        _kill(pid)
        raise
    finally:
        os.close(done_r)
    return _NewHolder(proc, go_w)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def bridge_spec(net: state.NetworkInfo) -> dict[str, str | int]:
    """What the network daemon needs to make the bridge of ``net`` (its ``bridge`` request)."""
    spec: dict[str, str | int] = {
        "name": net.bridge,
        "gateway": net.gateway,
        "prefixlen": ipaddress.ip_network(net.subnet).prefixlen,
    }
    if net.subnet6:
        spec["gateway6"] = net.gateway6
        spec["prefixlen6"] = ipaddress.ip_network(net.subnet6).prefixlen
    return spec


def set_up_firewall(holder_pid: int) -> None:
    """No routing in the holder, and its iptables rules, from the networks on disk: one
    helper (a fork of the caller, as the namespace's root, since iptables execs)."""
    # firewall (and the tempfile it needs) is imported here, in the parent,
    # only where rules change: a warm container start never loads it, and a forked
    # helper must not import anything.
    from envkit.network import firewall

    networks = state.all_networks()
    text = firewall.rules(networks, egress.HOST_LOOPBACK)
    text6 = firewall.rules6(networks)
    lock = firewall.lock_file()
    try:
        ns.in_holder(holder_pid, firewall.set_up_holder, text, text6, lock)
    finally:
        firewall.release_lock()


def sync_firewall(holder_pid: int) -> None:
    """Rewrite the holder's iptables rules from the networks on disk."""
    from envkit.network import firewall  # lazy, as in set_up_firewall: only where rules change

    networks = state.all_networks()
    text = firewall.rules(networks, egress.HOST_LOOPBACK)
    try:
        ns.in_holder(
            holder_pid, firewall.load, text, firewall.rules6(networks), firewall.lock_file()
        )
    finally:
        firewall.release_lock()


def current() -> state.Daemons | None:
    """The live daemons, or ``None`` when no holder runs."""
    d = state.load_daemons()
    return d if d is not None and d.holder.alive() else None


def serving() -> state.Daemons | None:
    """The live daemons when both the holder and the network daemon run, else ``None``."""
    d = current()
    return d if d is not None and d.netd is not None and d.netd.alive() else None


def ensure(adopt: int | None = None) -> tuple[state.Daemons, bool, bool]:
    """The running daemons, started if needed; whether the holder is new, and whether the
    network daemon is (its published ports are then gone).

    A new holder joins the user namespace ``adopt`` (an fd) when given: containers that
    outlived a dead holder still live in its user namespace, and only from inside it can
    their network namespaces be reached again. Call with the state lock held.
    """
    d = state.load_daemons()
    # A holder on record without a network daemon was being started by a caller that
    # was killed (its firewall may be missing): it is stopped and made again below.
    if d is not None and d.holder.alive() and d.netd is not None:
        if d.netd.alive():
            return d, False, False
        d = state.Daemons(d.holder, _start_netd(d.holder.pid, None))
        state.save_daemons(d)
        return d, False, True
    if d is not None:
        stop_daemons(d)
    new = _start_holder(adopt)
    holder = new.proc
    # On record before the network daemon starts (~0.15 s): a caller killed meanwhile
    # leaves a holder the next reap finds and stops, not one nobody knows of; and one
    # killed before this save leaves a holder that exits by itself (it waits for keep()).
    try:
        state.save_daemons(state.Daemons(holder, None))
        new.keep()
    except BaseException:
        new.close()
        _kill(holder.pid)
        raise
    try:
        d = state.Daemons(holder, _start_netd(holder.pid, set_up_firewall))
    except BaseException:
        _kill(holder.pid)
        raise
    state.save_daemons(d)
    return d, True, True


def _start_netd(holder_pid: int, meanwhile: Callable[[int], None] | None) -> state.Proc:
    """Start the network daemon and give it the bridges; ``meanwhile(holder_pid)`` runs
    while it starts (a fresh interpreter importing pyroute2: ~0.15 s on the other core)."""
    starting = control.spawn(holder_pid)
    try:
        if meanwhile is not None:
            meanwhile(holder_pid)
    except BaseException:
        with contextlib.suppress(NetworkError):
            _kill(starting.wait())
        raise
    netd = state.Proc.of(starting.wait())  # a daemon that failed has exited: it says why
    try:
        control.call("setup", {"bridges": [bridge_spec(n) for n in state.all_networks()]})
    except BaseException:
        netd.kill()
        raise
    return netd


def stop_daemons(d: state.Daemons) -> None:
    """Kill the network daemon and the holder (their namespaces and bridges go with them)."""
    for proc in (d.netd, d.holder):
        if proc is not None:
            proc.kill()
    state.holder_path().unlink(missing_ok=True)
    (state.root() / control.SOCKET).unlink(missing_ok=True)
    from envkit.network import firewall  # lazy, as in set_up_firewall: only to stop

    with contextlib.suppress(FileNotFoundError):
        os.unlink(firewall.lock_file())


def require_tools() -> None:
    """A clear error when the host lacks what the holder needs."""
    if not os.path.exists("/proc/self/ns/user"):
        raise NetworkError(
            "this kernel has no user namespaces", hint="envkit doctor checks the kernel"
        )
    import shutil  # lazy for start-up: only the holder's set-up checks its tools

    if shutil.which("iptables-legacy-restore") is None:
        raise NetworkError(
            "iptables-legacy-restore is not installed: containers would get no egress",
            hint="apt-get install iptables",
        )
