"""Start a container: the process tree, the namespaces and the id-map handshake.

Two processes stand between the caller and the command (see docs/dev/runtime.md):

* the **monitor** (forked from the caller): unshares the user, mount, pid, uts, ipc,
  net and cgroup namespaces (or joins ``config.userns`` and unshares the others), waits
  while the caller writes its id maps and runs ``config.on_namespaces``, mounts a private
  tmpfs over the state dir, opens the host paths it needs, becomes container root,
  forks pid 1 and waits for it. It lives outside the new pid namespace.
* **pid 1**: builds the root file system (:mod:`envkit.runtime.rootfs`), pivots into
  it, drops to the configured user and privileges (:mod:`envkit.runtime.init`) and execs
  the command, which is then pid 1 itself, as in docker.

Failures before exec come back over a close-on-exec pipe, so :func:`start` returns
only once the command runs (or raises :class:`StartError` saying what failed).
"""

from __future__ import annotations

import os
import signal
import sys
from _thread import allocate_lock
from contextlib import contextmanager, suppress

from envkit.errors import EnvkitError, RuntimeError_, StartError
from envkit.host import idmap, syscalls, userns_cache
from envkit.host.prctl import (
    PR_SET_CHILD_SUBREAPER,
    PR_SET_DUMPABLE,
    PR_SET_PDEATHSIG,
    is_child_subreaper,
    prctl,
)
from envkit.runtime import caps, init, rootfs, seccomp
from envkit.runtime.config import BindMount, ContainerConfig

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterator, Sequence
    from threading import RLock
    from types import TracebackType
    from typing import NoReturn

    from envkit.host.syscall_seam import Syscalls

    #: ``launcher(config, runtime_dir, child_fds) -> intermediate pid``: see :func:`start`.
    Launcher = Callable[[ContainerConfig, str, list[int]], int]

NAMESPACES = (
    syscalls.CLONE_NEWUSER
    | syscalls.CLONE_NEWNS
    | syscalls.CLONE_NEWPID
    | syscalls.CLONE_NEWUTS
    | syscalls.CLONE_NEWIPC
    | syscalls.CLONE_NEWNET
    | syscalls.CLONE_NEWCGROUP
)
#: Signals :func:`run` passes to the container while it waits, as ``docker run``'s
#: sig-proxy does. The container has a session of its own, so the terminal's Ctrl-C
#: reaches envkit only, which passes it on.
PROXIED = (
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGINT,
    signal.SIGQUIT,
)


class ContainerProcess:
    """A started container: its pid 1 on the host, ``wait()`` and ``kill()``.

    Use as a context manager to make sure it is stopped and cleaned up.
    """

    def __init__(
        self, monitor: int | None, init_pid: int, state_dir: str, parent: int | None = None
    ) -> None:
        self.pid = init_pid  #: host pid of the container's pid 1 (the command)
        #: With ``config.tty``: the master side of the command's terminal (the caller
        #: owns and closes it), else ``None``.
        self.console: int | None = None
        self._monitor = monitor
        self._state_dir = state_dir
        self._returncode: int | None = None
        # Launched by another process: that one holds and signals it.
        # ``monitor`` is the process to wait for: the intermediate, or pid 1 itself when
        # it was re-parented to this process (then ``parent`` is this process).
        self._pidfd = None if monitor is None else _pidfd_of_child(init_pid, parent or monitor)

    @property
    def returncode(self) -> int | None:
        """The exit code once :meth:`wait` returned, else ``None``."""
        return self._returncode

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the container's pid 1 (the command, or its init).

        SIGKILL ends pid 1 and with it every process of the container.
        """
        if self._returncode is not None or self._pidfd is None:
            return
        with suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, sig)

    def wait(self) -> int:
        """Wait for the container to exit; its command's exit code (128+N for signal N)."""
        if self._monitor is None:
            raise RuntimeError_("this container is held by another process, which waits for it")
        if self._returncode is None:
            _, status = os.waitpid(self._monitor, 0)
            self._returncode = init.exit_code(status)
            self._release()
        return self._returncode

    def _release(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        _remove_state_dir(self._state_dir)

    def __enter__(self) -> ContainerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._returncode is None:
            self.kill(signal.SIGKILL)
            self.wait()


def run(config: ContainerConfig) -> int:
    """Run a container in the foreground, like ``docker run``; its exit code.

    stdio is inherited (or ``config.stdio``). While waiting, the signals of
    :data:`PROXIED` sent to the caller are passed to the container's pid 1.
    """
    with proxy_signals() as proxy, start(config) as container:
        proxy.attach(container)
        return container.wait()


def start(
    config: ContainerConfig,
    maps: idmap.IdMaps | None = None,
    runtime_dir: str | None = None,
    *,
    launcher: Launcher | None = None,
    reparent: bool = False,
) -> ContainerProcess:
    """Start a container and return once its command was exec'd.

    ``runtime_dir`` is an empty directory the monitor mounts its private tmpfs over
    (default: a new one under $TMPDIR); it is removed when the container is waited for.
    ``launcher`` makes another process the container's parent: it is called with the
    config, the runtime dir and the fds of the intermediate's side of the handshake
    (which it must pass on to :func:`launched`), and returns the intermediate's pid.
    This process then only does its part of the handshake (id maps, ``on_namespaces``);
    the returned handle can signal the container but not wait for it. ``reparent``
    leaves no intermediate process either: this process becomes a child subreaper and
    pid 1 its child (a long-lived monitor such as the stack supervisor wants that).
    Raises :class:`StartError` (with the step that failed) when it cannot start.
    """
    maps = maps or idmap.plan()
    if config.userns is None and not config.host_network:
        shared = userns_cache.join_path(maps)
        if shared is not None:
            config = config.replace(userns=shared)
    if maps.warning:
        import logging  # lazy: a rare warning; logging costs ~3 ms to import

        logging.getLogger("envkit.runtime").warning(maps.warning)
    maps.to_host_uid(config.uid)
    maps.to_host_gid(config.gid)
    for gid in config.groups:
        maps.to_host_gid(gid)
    if config.on_namespaces is None:
        _check_bind_sources(config)
    if os.geteuid() == 0:
        _give_to_container_root(config, maps)
    if runtime_dir is None:
        import tempfile  # lazy for start-up: `envkit run` passes its runtime dir

        state_dir = tempfile.mkdtemp(prefix="envkit-ctr-")
    else:
        os.mkdir(runtime_dir, 0o700)
        state_dir = runtime_dir
    console_parent = console_child = None
    if config.tty:
        # Imported here, not at the top: only a tty needs it, and every start pays for
        # an import. The container's init finds it loaded (see init.open_console).
        import socket

        console_parent, console_child = socket.socketpair()
    if config.seccomp:
        # Here, not after the forks (where it would delay the exec, and after pivot_root
        # the filter's file is out of reach); refuses a machine without a filter.
        seccomp.prepare(caps.seccomp_caps(config.capabilities))
    lock = _fork_lock()
    if lock is not None:
        lock.acquire()
    sync_r, sync_w = os.pipe()
    go_r, go_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    if launcher is not None:
        child_fds = [sync_w, go_r, err_w]
        if console_child is not None:
            child_fds.append(console_child.fileno())
        try:
            monitor = launcher(config, state_dir, child_fds)
        except BaseException:
            for fd in (sync_r, sync_w, go_r, go_w, err_r, err_w):
                os.close(fd)
            for sock in (console_parent, console_child):
                if sock is not None:
                    sock.close()
            if lock is not None:
                lock.release()
            raise
    else:
        parent = os.getpid()
        adopted_r = adopted_w = None
        if reparent:
            _subreaper.acquire()
            if config.die_with_parent:
                # pid 1 sets PR_SET_PDEATHSIG only once it is our child: the kernel sends
                # the signal when the parent of the moment exits, and the intermediate
                # exits (its pipes close before the re-parenting, so no EOF can tell).
                adopted_r, adopted_w = os.pipe()
        monitor = os.fork()
        if monitor == 0:
            os.close(sync_r)
            os.close(go_w)
            os.close(err_r)
            if console_parent is not None:
                console_parent.close()
            _monitor(
                config,
                state_dir,
                sync_w,
                go_r,
                err_w,
                parent,
                console_child,
                detach=reparent,
                adopted_r=adopted_r,
            )
        if adopted_r is not None:
            os.close(adopted_r)
    for fd in (sync_w, go_r, err_w):
        os.close(fd)
    if console_child is not None:
        console_child.close()
    if lock is not None:
        lock.release()
    try:
        init_pid = _handshake(monitor, config, maps, sync_r, go_w, err_r)
    except BaseException:
        os.close(err_r)
        if console_parent is not None:
            console_parent.close()
        _reap(monitor, kill=True, child=launcher is None)
        if reparent and launcher is None:
            _subreaper.release()
            if adopted_w is not None:
                os.close(adopted_w)
        if launcher is None:
            _remove_state_dir(state_dir)
        raise
    finally:
        os.close(sync_r)
        os.close(go_w)
    if launcher is not None:
        container = ContainerProcess(None, init_pid, state_dir)
    elif reparent:
        os.waitpid(monitor, 0)  # it exits once pid 1 is forked: pid 1 is our child now
        _subreaper.release()
        if adopted_w is not None:
            os.write(adopted_w, b"a")
            os.close(adopted_w)
        container = ContainerProcess(init_pid, init_pid, state_dir, parent=os.getpid())
    else:
        container = ContainerProcess(monitor, init_pid, state_dir)
    try:
        report = _read_all(err_r)
    finally:
        os.close(err_r)
    if console_parent is not None:
        with console_parent:
            if not report:
                container.console = _receive_console(console_parent)
    if report:
        if launcher is None:
            container.wait()
        code_text, message, hint = init.parse_report(report)
        raise StartError(
            f"container did not start: {message}",
            exit_code=int(code_text) if code_text.isdigit() else 1,
            hint=hint or "ENVKIT_DEBUG=1 shows where; `envkit doctor` checks the host",
        )
    return container


def _fork_lock() -> RLock | None:
    """:data:`envkit.host.forking.FORK_LOCK` in a process with threads (another thread's
    fork must not inherit this start's pipe ends); ``None`` in one without, which need
    not pay for the import (``envkit run``)."""
    if "threading" not in sys.modules:
        return None
    from envkit.host.forking import FORK_LOCK  # lazy for start-up: `envkit run` has no threads

    return FORK_LOCK


class _Subreaper:
    """``PR_SET_CHILD_SUBREAPER`` while reparented starts are under way: a library caller
    (``envkit.run()`` in a test process) adopts only its containers' pid 1, not every
    orphan of its other descendants. A process that is a subreaper already (the
    container monitor, a stack supervisor) stays one."""

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._users = 0
        self._ours = False

    def acquire(self) -> None:
        with self._lock:
            if self._users == 0 and not is_child_subreaper():
                prctl(PR_SET_CHILD_SUBREAPER, 1)
                self._ours = True
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._ours:
                prctl(PR_SET_CHILD_SUBREAPER, 0)
                self._ours = False


_subreaper = _Subreaper()


def _receive_console(sock: socket.socket) -> int | None:
    """The pty master pid 1 sent over the console socket (runc's --console-socket)."""
    import socket  # lazy for start-up: a tty's start, which imported it before its forks

    _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    return fds[0] if fds else None


def _check_bind_sources(config: ContainerConfig) -> None:
    for mount in config.mounts:
        if isinstance(mount, BindMount) and not os.path.exists(mount.source):
            raise StartError(
                f"bind mount source {mount.source} does not exist",
                hint="create it first (docker would create a directory; envkit does not guess)",
            )


def _handshake(
    monitor: int, config: ContainerConfig, maps: idmap.IdMaps, sync_r: int, go_w: int, err_r: int
) -> int:
    """Once the monitor has its namespaces: write its id maps (unless it joined a user
    namespace), run ``config.on_namespaces``, let it go on; return the init's host pid."""
    if os.read(sync_r, 1) != b"u":
        raise _early_failure(err_r)
    if config.userns is None:
        maps.write(monitor)
    if config.on_namespaces is not None:
        config.on_namespaces(monitor)
        _check_bind_sources(config)
    if config.ulimits:
        apply_ulimits(monitor, config.ulimits)
    os.write(go_w, b"g")
    pid_text = os.read(sync_r, 32)
    if not pid_text:
        raise _early_failure(err_r)
    return int(pid_text)


def apply_ulimits(pid: int, ulimits: Sequence[tuple[str, int, int]]) -> None:
    """Set ``ulimits`` (docker's names, -1 unlimited) on ``pid`` from the host side, as
    runc does with prlimit: its children (the container's pid 1) inherit them. A hard
    limit above this process's needs CAP_SYS_RESOURCE on the host (root)."""
    import resource  # lazy: only with --ulimit

    for name, soft, hard in ulimits:
        which = getattr(resource, f"RLIMIT_{name.upper()}")
        limits = (
            resource.RLIM_INFINITY if soft == -1 else soft,
            resource.RLIM_INFINITY if hard == -1 else hard,
        )
        try:
            resource.prlimit(pid, which, limits)
        except (PermissionError, ValueError) as exc:
            _, own = resource.getrlimit(which)
            mine = "unlimited" if own == resource.RLIM_INFINITY else str(own)
            if _may_raise_limits():
                why, hint = f"the kernel refused it ({exc})", "nofile is at most fs.nr_open"
            else:
                why = f"above this user's hard limit ({mine}); raising it needs CAP_SYS_RESOURCE"
                hint = f"ask for at most {mine}, or raise the user's hard limit (limits.conf)"
            raise StartError(
                f"ulimit {name}={soft}:{hard}: {why}", exit_code=2, hint=hint
            ) from None


def _may_raise_limits() -> bool:
    """Whether this process holds CAP_SYS_RESOURCE (root of a normal host does; root of
    a container may not)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return caps.CAP["SYS_RESOURCE"] in caps.parse_mask(line.split()[1])
    return False


def _early_failure(err_r: int) -> StartError:
    report = _read_all(err_r)
    _, message, hint = init.parse_report(report)
    return StartError(
        f"container did not start: {message or 'the monitor process died'}",
        hint=hint or "`envkit doctor` checks user namespaces, overlayfs and subordinate ids",
    )


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _reap(pid: int, kill: bool, child: bool = True) -> None:
    if kill:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if child:
        os.waitpid(pid, 0)


def _remove_state_dir(path: str) -> None:
    try:
        os.rmdir(path)  # normally empty: the tmpfs over it died with the mount namespace
    except FileNotFoundError:
        pass
    except OSError:
        import shutil  # lazy: error path only

        shutil.rmtree(path, ignore_errors=True)


def _pidfd_of_child(pid: int, parent: int) -> int | None:
    """A pidfd for ``pid`` if it still is ``parent``'s child (not a recycled pid)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        ppid = -1
    if ppid != parent:
        os.close(fd)
        return None
    return fd


def _give_to_container_root(config: ContainerConfig, maps: idmap.IdMaps) -> None:
    """As root: hand the upper and work dirs to the host id of container root.

    Container root is an unprivileged subordinate id, and overlayfs writes the upper dir
    with the mounter's credentials, so the upper dir must belong to it.
    """
    uid, gid = maps.to_host_uid(0), maps.to_host_gid(0)
    for path in (config.upper_dir, config.work_dir):
        if path is not None:
            st = os.stat(path)
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.chown(path, uid, gid)


def launched(config: ContainerConfig, state_dir: str, fds: list[int], report_w: int) -> NoReturn:
    """The intermediate of a container that :func:`start` handed to a ``launcher``: call
    it in a child the launcher forked, with the ``fds`` it received.

    It does what the monitor does for :func:`start`'s own children, except that it
    exits once pid 1 is forked, after writing pid 1's host pid to ``report_w``: pid 1
    is then re-parented to the launcher, which must be a child subreaper
    (``PR_SET_CHILD_SUBREAPER``) and waits for it.
    """
    import socket  # no import in this forked child: the monitor that forked it has socket

    sync_w, go_r, err_w = fds[:3]
    console = socket.socket(fileno=fds[3]) if len(fds) > 3 else None
    try:
        if config.seccomp:
            seccomp.prepare(caps.seccomp_caps(config.capabilities))
    except BaseException as exc:
        _fail(err_w, "seccomp", exc)
    _monitor(config, state_dir, sync_w, go_r, err_w, os.getppid(), console, report_w, detach=True)


def _monitor(
    config: ContainerConfig,
    state_dir: str,
    sync_w: int,
    go_r: int,
    err_w: int,
    parent: int,
    console: socket.socket | None,
    report_w: int | None = None,
    *,
    detach: bool = False,
    adopted_r: int | None = None,
    kernel: Syscalls = syscalls,
) -> NoReturn:
    """The forked monitor process (never returns into the caller's code). With
    ``detach`` it is only an intermediate: it exits once pid 1 is forked (after telling
    ``report_w``, for a launched container: :func:`launched`). Its kernel calls up to
    the fork of pid 1, and pid 1's, go through ``kernel`` (the syscall seam)."""
    step = "prepare"
    try:
        if config.stdio is not None:
            for target, fd in enumerate(config.stdio):
                os.dup2(fd, target)
        userns = None
        if config.userns is not None:
            step = f"open the user namespace {config.userns}"
            # Before the fds are closed: it may be one of ours (/proc/self/fd/N).
            userns = os.open(config.userns, os.O_RDONLY | os.O_CLOEXEC)
        keep = {0, 1, 2, sync_w, go_r, err_w}
        keep |= {fd for fd in (report_w, adopted_r) if fd is not None}
        keep |= {fd for fd in (userns, console.fileno() if console else None) if fd is not None}
        # Forked from a caller with other threads, the monitor holds their starts' pipe
        # ends too, and it lives as long as its container: a sibling start reading its
        # pipe to the end would wait that long.
        kernel.close_all_but(keep)
        if config.die_with_parent:
            kernel.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                kernel.exit_process(1)
        if config.cgroup:
            step = f"join cgroup {config.cgroup}"
            with open(os.path.join(config.cgroup, "cgroup.procs"), "w") as f:
                f.write("0")  # before the namespaces: the cgroup ns is rooted at it
        if userns is not None:
            # Joined, not made: the monitor is single-threaded, as setns(CLONE_NEWUSER)
            # requires, and the namespaces unshared next belong to the joined one.
            step = f"join the user namespace {config.userns}"
            kernel.setns(userns, syscalls.CLONE_NEWUSER)
            os.close(userns)
        step = "unshare namespaces"
        flags = NAMESPACES if config.userns is None else NAMESPACES & ~syscalls.CLONE_NEWUSER
        if config.host_network:
            flags &= ~syscalls.CLONE_NEWNET
        kernel.unshare(flags)
        kernel.write(sync_w, b"u")
        if kernel.read(go_r, 1) != b"g":
            kernel.exit_process(1)  # the caller failed to write the maps and says why itself
        os.close(go_r)
        step = "private tmpfs over the state dir"
        kernel.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        kernel.mount("tmpfs", state_dir, "tmpfs", 0, "mode=0700,uid=0,gid=0")
        kernel.chdir(state_dir)
        # Opened now, in the new mount namespace, with the caller's ids (root's 0700
        # dirs stay reachable after the switch to container root): pid 1 uses the
        # /proc/self/fd links, which skip permission checks on the path's directories.
        step = "open layers"
        layers = [_path_fd(p, directory=True) for p in config.layers]
        upper = _path_fd(config.upper_dir, directory=True) if config.upper_dir else None
        work = _path_fd(config.work_dir, directory=True) if config.work_dir else None
        binds = [
            _path_fd(m.source, directory=False) if isinstance(m, BindMount) else None
            for m in config.mounts
        ]
        step = "become container root"
        with suppress(PermissionError):  # denied under a single-id map: nothing to drop
            kernel.setgroups([])
        kernel.setresgid(0, 0, 0)
        kernel.setresuid(0, 0, 0)
        if config.die_with_parent:
            kernel.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a credential change cleared it
            if os.getppid() != parent:
                kernel.exit_process(1)
        step = "fork pid 1"
        handed_r = handed_w = -1
        if detach:
            # pid 1 goes on only once its pid is reported: an intermediate killed before
            # that (`kill -9` of what bears the monitor's name) leaves no container nobody
            # knows of; pid 1 reads end of file then and exits.
            handed_r, handed_w = os.pipe()
        init_pid = kernel.fork()
        if init_pid == 0:
            os.close(sync_w)
            if detach:
                os.close(handed_w)
                if kernel.read(handed_r, 1) != b"h":
                    kernel.exit_process(1)
                os.close(handed_r)
            _pid1(config, layers, upper, work, binds, err_w, console, adopted_r, kernel)
        if adopted_r is not None:
            os.close(adopted_r)
        if console is not None:
            console.close()
        os.write(sync_w, str(init_pid).encode())
        os.close(sync_w)
        os.close(err_w)
        if detach:
            os.close(handed_r)
            if report_w is not None:
                with suppress(OSError):  # the monitor died: pid 1 is adopted later
                    os.write(report_w, str(init_pid).encode())
            os.write(handed_w, b"h")
            os._exit(0)  # pid 1 goes to the subreaper above
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        for sig in init.FORWARDED:
            signal.signal(sig, signal.SIG_IGN)  # the caller or init deals with them
        _, status = os.waitpid(init_pid, 0)
        os._exit(init.exit_code(status))
    except BaseException as exc:
        _fail(err_w, step, exc, kernel)


def _pid1(
    config: ContainerConfig,
    layers: list[str],
    upper: str | None,
    work: str | None,
    binds: list[str | None],
    err_w: int,
    console: socket.socket | None,
    adopted_r: int | None = None,
    kernel: Syscalls = syscalls,
) -> NoReturn:
    """pid 1: build the root file system, then become the command (docker's and
    podman's process model: no envkit process stays in the container's pid namespace)."""
    step = "root file system"
    try:
        # Not dumpable until the exec: it holds host paths (fds) and the caller's memory.
        kernel.prctl(PR_SET_DUMPABLE, 0)
        if config.die_with_parent:
            if adopted_r is not None:  # re-parented to the caller, which says so
                if not kernel.read(adopted_r, 1):
                    kernel.exit_process(1)  # the caller died first
                os.close(adopted_r)
            kernel.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        rootfs.build(config, layers, upper, work, binds, kernel)
        step = "terminal"
        tty = None
        if console is not None:
            tty = init.open_console(console, config.tty_size)
            rootfs.mount_console(tty, kernel)
        init.exec_command(config, err_w, tty, kernel)
    except BaseException as exc:
        _fail(err_w, step, exc, kernel)


def _path_fd(path: str, *, directory: bool) -> str:
    flags = os.O_PATH | os.O_CLOEXEC | (os.O_DIRECTORY if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise RuntimeError_(f"cannot open {path}: {exc.strerror}") from None
    return f"/proc/self/fd/{fd}"


def _fail(err_w: int, step: str, exc: BaseException, kernel: Syscalls = syscalls) -> NoReturn:
    """Report ``exc`` as the failure of ``step`` (with an envkit error's hint), exit."""
    hint = exc.hint if isinstance(exc, EnvkitError) else None
    init.fail(err_w, 1, f"{step}: {_describe(exc)}", kernel, hint=hint)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EnvkitError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror if exc.filename is None else f"{exc.filename}: {exc.strerror}"
    text = f"{type(exc).__name__}: {exc}"
    if os.environ.get("ENVKIT_DEBUG"):
        import traceback  # lazy: ENVKIT_DEBUG only

        text += "\n" + "".join(traceback.format_exception(exc))
    return text


class SignalProxy:
    """Passes the signals of :data:`PROXIED` to a container's pid 1 (docker's
    ``--sig-proxy``); those that come before :meth:`attach` wait for the container
    (a Ctrl-C just after the command's exec is passed on, not taken as envkit's own)."""

    def __init__(self) -> None:
        self._container: ContainerProcess | None = None
        self._pending: list[int] = []
        self._interrupts = 0

    def attach(self, container: ContainerProcess) -> None:
        """Pass signals to ``container`` from now on, and those that came before."""
        self._container = container
        while self._pending:
            container.kill(self._pending.pop(0))

    def __call__(self, sig: int, _frame: object) -> None:
        if sig == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts > 1:  # a second Ctrl-C: stop it for good (compose's rule)
                sig = signal.SIGKILL
        if self._container is None:
            self._pending.append(sig)
        else:
            self._container.kill(sig)


@contextmanager
def proxy_signals(container: ContainerProcess | None = None) -> Iterator[SignalProxy]:
    """Pass the signals of :data:`PROXIED` the caller receives to the container's pid 1
    while it runs (docker's ``--sig-proxy``): ``container``, or the one given to the
    proxy's :meth:`~SignalProxy.attach` (enter this before the start: signals that come
    meanwhile wait for the container).

    pid 1 gets only the signals it handles (the kernel drops others sent to a pid
    namespace's init), as in docker: ``sleep`` as pid 1 ignores SIGINT and SIGTERM,
    ``init=True`` puts an init in front that passes them on. A second SIGINT (Ctrl-C
    pressed again) kills the container, as a second Ctrl-C stops ``docker compose up``.
    """
    proxy = SignalProxy()
    if container is not None:
        proxy.attach(container)
    # Signal handlers can only be set from the main thread. A process that never
    # imported threading has no other thread (and need not pay for the import here).
    threading = sys.modules.get("threading")
    if threading is not None and threading.current_thread() is not threading.main_thread():
        yield proxy
        return

    saved = {sig: signal.getsignal(sig) for sig in PROXIED}
    try:
        for sig in PROXIED:
            signal.signal(sig, proxy)
        yield proxy
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
