"""Run another command in a running container (``envkit exec``): join its namespaces.

The caller opens ``/proc/PID/ns/*`` of the container's pid 1, forks a helper that
``setns``-es into them (user first: it grants the capabilities the others need; then
mnt, pid, uts, ipc, net, cgroup), becomes container root, and forks again so that the
command is *inside* the pid namespace (setns of a pid namespace applies to children
only). The command then goes through the same last steps as the container's own
command (:func:`envkit.runtime.init.exec_command`): user, capabilities, no_new_privs,
seccomp. The helper exits with the command's exit code. The helper is made unreachable
from the container before it joins anything (not dumpable, command line and environment
wiped, fds closed), as runc's nsexec is.

The helper is forked under :data:`envkit.host.forking.FORK_LOCK`, as every fork is, but
it is not a fork-and-answer child (:func:`~envkit.host.forking.call_in_child`): it stays
as the command's waiter, and what it reports is the container exec protocol of
:mod:`envkit.runtime.init` (``code\\nmessage`` on a close-on-exec pipe, nothing once the
command exec'd), the same one a container's own start uses.
"""

from __future__ import annotations

import os
import signal
import socket
from contextlib import suppress

from envkit.errors import RuntimeError_
from envkit.host import syscalls
from envkit.host.forking import FORK_LOCK
from envkit.host.prctl import PR_SET_DUMPABLE
from envkit.runtime import caps, init, seccomp
from envkit.runtime.config import ExecConfig

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

    from envkit.host.syscall_seam import Syscalls

#: Joined in this order: the user namespace first, as runc's nsexec does.
NAMESPACES = ("user", "mnt", "pid", "uts", "ipc", "net", "cgroup")


class ExecProcess:
    """A command started by :func:`start`: ``wait()`` for its exit code, ``kill()``."""

    def __init__(self, helper: int, console: int | None) -> None:
        self.helper = helper  #: host pid of the helper that waits for the command
        #: The pty master with ``tty=True`` (the caller closes it), else ``None``.
        self.console = console
        self.returncode: int | None = None
        #: Why the command could not be exec'd (exit code 126 or 127), else "".
        self.error = ""

    def wait(self) -> int:
        """The command's exit code (128+N for signal N)."""
        if self.returncode is None:
            _, status = os.waitpid(self.helper, 0)
            self.returncode = init.exit_code(status)
        return self.returncode

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Signal the helper, which passes it on to the command."""
        if self.returncode is None:
            with suppress(ProcessLookupError):
                os.kill(self.helper, sig)


def target_process(init_pid: int) -> int:
    """The container process whose namespaces to join: its pid 1 (the command).

    A pid 1 that exec'd a file it may not read stays undumpable, and an unprivileged
    caller may not open its ``/proc/PID/ns`` links: then its first child, if any.
    """
    if os.access(f"/proc/{init_pid}/ns/user", os.R_OK) or os.geteuid() == 0:
        return init_pid
    try:
        with open(f"/proc/{init_pid}/task/{init_pid}/children") as f:
            children = f.read().split()
    except OSError:
        children = []
    return int(children[0]) if children else init_pid


def container_limits(pid: int) -> list[tuple[int, tuple[int, int]]]:
    """The resource limits of container process ``pid`` that differ from this
    process's (docker's exec runs with the container's ``--ulimit``s); none when they
    cannot be read."""
    import resource  # lazy: exec only

    found = []
    for name in dir(resource):
        if not name.startswith("RLIMIT_"):
            continue
        which = getattr(resource, name)
        try:
            theirs = resource.prlimit(pid, which)
        except OSError:
            return []
        if theirs != resource.getrlimit(which):
            found.append((which, theirs))
    return found


def start(init_pid: int, config: ExecConfig) -> ExecProcess:
    """Start ``config.argv`` in the container whose init is ``init_pid``.

    Raises :class:`RuntimeError_` naming the step that failed; a command that cannot be
    exec'd makes :meth:`ExecProcess.wait` return 127 (not found) or 126, as docker does.
    """
    if config.seccomp:
        # Before the fork: the filter's file is not in the container.
        seccomp.prepare(caps.seccomp_caps(config.capabilities))
    target = target_process(init_pid)
    limits = container_limits(target)
    fds = []
    joined = []
    try:
        for ns in NAMESPACES:
            fd = os.open(f"/proc/{target}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
            if ns == "net" and os.fstat(fd).st_ino == os.stat("/proc/self/ns/net").st_ino:
                os.close(fd)  # a host-network container: its network namespace is ours
                continue
            fds.append(fd)
            joined.append(ns)
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        raise RuntimeError_(
            f"cannot open the namespaces of container process {target}: {exc.strerror}",
            hint="the container may have just exited; `envkit ps -a` shows it",
        ) from None
    # The fork lock (envkit.host.forking's policy) until the child's ends are closed here:
    # a fork in another thread meanwhile would keep err_w open, and this caller would
    # wait for that process instead of this command's exec.
    with FORK_LOCK:
        parent_sock, child_sock = socket.socketpair() if config.tty else (None, None)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        helper = os.fork()
        if helper == 0:
            os.close(err_r)
            if parent_sock is not None:
                parent_sock.close()
            _helper(config, fds, err_w, child_sock, limits=limits, names=joined)
        for fd in (*fds, err_w):
            os.close(fd)
        if child_sock is not None:
            child_sock.close()
    report = _read_all(err_r)
    os.close(err_r)
    process = ExecProcess(helper, None)
    if parent_sock is not None:
        with parent_sock:
            if not report:
                _, received, _, _ = socket.recv_fds(parent_sock, 1, 1)
                process.console = received[0] if received else None
    if report:
        code_text, message, hint = init.parse_report(report)
        code = process.wait()
        if code not in (126, 127) or not code_text.isdigit():
            raise RuntimeError_(f"exec failed: {message}", hint=hint or "ENVKIT_DEBUG=1 shows more")
        process.error = message
    return process


def _helper(
    config: ExecConfig,
    fds: list[int],
    err_w: int,
    console: socket.socket | None,
    kernel: Syscalls = syscalls,
    *,
    limits: Sequence[tuple[int, tuple[int, int]]] = (),
    names: Sequence[str] = NAMESPACES,
) -> NoReturn:
    """The exec helper (forked by :func:`start`); its kernel calls, and the command's up
    to the exec, go through ``kernel`` (the syscall seam). ``limits``: the container's
    resource limits, taken on before joining its user namespace (a raised hard limit
    needs this process's host capability)."""
    step = "prepare"
    try:
        if limits:
            step = "resource limits"
            import resource  # loaded by container_limits before the fork

            for which, pair in limits:
                resource.setrlimit(which, pair)
        # Before anything of the container can see this process: not dumpable (no
        # ptrace, no /proc/PID/{environ,fd,exe,mem} for the container's processes, which
        # run as the same host uid when rootless), the caller's command line and
        # environment wiped from memory, and no fd but those the command needs.
        kernel.prctl(PR_SET_DUMPABLE, 0)
        kernel.hide_command_line()
        if config.stdio is not None:
            for target, fd in enumerate(config.stdio):
                os.dup2(fd, target)
        keep = {0, 1, 2, err_w, *fds}
        if console is not None:
            keep.add(console.fileno())
        kernel.close_all_but(keep)
        for ns, fd in zip(names, fds, strict=True):
            step = f"join the {ns} namespace"
            kernel.setns(fd, 0)
            os.close(fd)
        step = "become container root"
        with suppress(PermissionError):  # denied under a single-id map: nothing to drop
            kernel.setgroups([])
        kernel.setresgid(0, 0, 0)
        kernel.setresuid(0, 0, 0)
        kernel.prctl(PR_SET_DUMPABLE, 0)  # a credential change may reset it
        step = "terminal"
        tty = init.open_console(console, config.tty_size) if console is not None else None
        step = "fork into the pid namespace"
        for sig in init.FORWARDED:
            signal.signal(sig, signal.SIG_IGN)
        child = kernel.fork()
        if child == 0:
            init.exec_command(config, err_w, tty, kernel)
        if tty is not None:
            os.close(tty)
        os.close(err_w)
        for sig in init.FORWARDED:
            signal.signal(sig, lambda s, _f: os.kill(child, s))
        while True:
            try:
                _, status = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        kernel.exit_process(init.exit_code(status))
    except BaseException as exc:
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        init.fail(err_w, 1, f"{step}: {text}", kernel)


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
