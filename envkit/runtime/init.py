"""The container's pid 1 and the last steps of its command process before exec.

pid 1 in a pid namespace has duties a normal command does not expect: the kernel drops
signals it has no handler for, orphans are re-parented to it, and when it exits every
other process of the namespace is killed. So, like tini and docker's ``--init``, envkit
keeps its own small init as pid 1: it starts the command as pid 2, forwards signals to
it, reaps zombies, and exits with the command's exit code (128+N when a signal killed it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import struct
import termios

from envkit.runtime import caps, seccomp
from envkit.runtime.config import ContainerConfig, ExecConfig
from envkit.runtime.prctl import (
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    prctl,
)

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import NoReturn, TypeVar

    T = TypeVar("T")

SI_KERNEL = 0x80
#: Signals whose disposition a process may set (the standard ones but KILL and STOP).
_RESETTABLE = tuple(
    sig for sig in range(1, signal.SIGRTMIN) if sig not in (signal.SIGKILL, signal.SIGSTOP)
)
#: Signals pid 1 passes on to the command: all but those it cannot catch, the faults a
#: process raises against itself, and SIGCHLD (init's own business).
FORWARDED = frozenset(
    s
    for s in signal.valid_signals()
    if s < signal.SIGRTMIN
    and s
    not in (
        signal.SIGKILL,
        signal.SIGSTOP,
        signal.SIGCHLD,
        signal.SIGSEGV,
        signal.SIGBUS,
        signal.SIGILL,
        signal.SIGFPE,
        signal.SIGTRAP,
        signal.SIGSYS,
    )
)


def fail(err_fd: int, code: int, message: str) -> NoReturn:
    """Report a start failure to the spawner (``CODE\\nMESSAGE`` on the error pipe), exit."""
    try:
        os.write(err_fd, f"{code}\n{message}".encode(errors="replace")[:8192])
    finally:
        os._exit(code)


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def exec_command(
    config: ContainerConfig | ExecConfig, err_fd: int, tty: int | None = None
) -> NoReturn:
    """In a forked command process: become the requested user with docker's privileges,
    then exec.

    With ``tty`` (the slave side of a pty) the command gets its own session with that
    terminal as controlling terminal and as stdin, stdout and stderr.
    """
    step = ["prepare"]
    try:
        if tty is not None:
            step[0] = "terminal"
            os.setsid()
            fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
            for target in (0, 1, 2):
                os.dup2(tty, target)
            if tty > 2:
                os.close(tty)
        elif config.new_session:
            os.setsid()
        for sig in _ignored_signals():
            signal.signal(sig, signal.SIG_DFL)
        _limit_privileges(config, step)
        os.closerange(3, err_fd)
        os.closerange(err_fd + 1, os.sysconf("SC_OPEN_MAX"))
        step[0] = "seccomp"
        if config.seccomp and seccomp.supported():
            seccomp.install()
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        step[0] = "exec"
        execvpe(list(config.argv), dict(config.env))
    except BaseException as exc:
        _report(err_fd, config, step[0], exc)


def spawn_command(config: ContainerConfig, err_fd: int) -> int:
    """In pid 1: take on the command's user and privileges, then start the command with
    ``posix_spawn``; its pid.

    Cheaper than a fork: ``posix_spawn`` shares pid 1's memory until the exec, where a
    forked copy of a Python process pays for every page it writes. pid 1 needs no
    privilege once the root is built, and loses none it needs: it forwards signals to a
    process of its own user, reaps, and exits. A start failure is reported on ``err_fd``
    and pid 1 exits with it.
    """
    step = ["prepare"]
    try:
        ignored = _ignored_signals()
        _limit_privileges(config, step)
        # A credential change resets both: pid 1 stays unreadable by the container's
        # processes (now of its own user) and still dies with the monitor.
        prctl(PR_SET_DUMPABLE, 0)
        if config.die_with_parent:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.closerange(3, err_fd)
        os.closerange(err_fd + 1, os.sysconf("SC_OPEN_MAX"))
        step[0] = "seccomp"
        if config.seccomp and seccomp.supported():
            seccomp.install()
        step[0] = "exec"
        env = dict(config.env)
        return _on_path(
            config.argv[0],
            env,
            lambda path: os.posix_spawn(
                path,
                list(config.argv),
                env,
                setsid=config.new_session,
                setsigmask=(),
                setsigdef=ignored,
            ),
        )
    except BaseException as exc:
        _report(err_fd, config, step[0], exc)


def _ignored_signals() -> list[int]:
    # exec resets caught signals but keeps ignored ones ignored (Python ignores SIGPIPE
    # and SIGXFSZ): only those need resetting.
    return [sig for sig in _RESETTABLE if signal.getsignal(sig) is signal.SIG_IGN]


def _limit_privileges(config: ContainerConfig | ExecConfig, step: list[str]) -> None:
    """Working dir, docker's capabilities, the command's user, no_new_privs; ``step[0]``
    names the step under way, for the error message."""
    step[0] = f"working directory {config.cwd}"
    if config.cwd != "/":
        os.makedirs(config.cwd, exist_ok=True)
    step[0] = "capabilities"
    caps.limit_bounding_set(caps.DEFAULT, caps.last_cap())
    step[0] = f"user {config.uid}:{config.gid}"
    try:
        os.setgroups(list(config.groups))
    except PermissionError:
        if config.groups:
            raise  # a single-id map denies setgroups; without groups that is fine
    os.setresgid(config.gid, config.gid, config.gid)
    os.setresuid(config.uid, config.uid, config.uid)
    if config.uid == 0:
        caps.capset(caps.DEFAULT, caps.DEFAULT, frozenset())
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    step[0] = f"working directory {config.cwd}"
    os.chdir(config.cwd)


def _report(
    err_fd: int, config: ContainerConfig | ExecConfig, step: str, exc: BaseException
) -> NoReturn:
    if isinstance(exc, OSError):
        if step == "exec":
            code = 127 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 126
            fail(err_fd, code, f"exec {config.argv[0]!r}: {exc.strerror}")
        fail(err_fd, 1, f"{step}: {exc.strerror or exc}")
    fail(err_fd, 1, f"{step}: {exc}")


def execvpe(argv: list[str], env: dict[str, str]) -> NoReturn:
    """:func:`os.execvpe`: ``argv[0]`` searched in ``env``'s PATH, the same errors.

    Not os.execvpe itself: it imports :mod:`warnings` when called, and this runs after
    pivot_root, where the host's modules cannot be imported any more.
    """
    _on_path(argv[0], env, lambda path: os.execve(path, argv, env))


def _on_path(name: str, env: dict[str, str], launch: Callable[[str], T]) -> T:
    """``launch`` of ``name``, or of the first candidate on ``env``'s PATH it accepts,
    with execvpe's errors: the first other than "not found", else the last."""
    if "/" in name:
        return launch(name)
    first: OSError | None = None
    last: OSError | None = None
    for directory in env.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(directory, name)
        try:
            os.stat(path)  # a miss costs a stat, not a spawned process that fails to exec
            return launch(path)
        except (FileNotFoundError, NotADirectoryError) as exc:
            last = exc
        except OSError as exc:  # e.g. EACCES: reported unless a later one succeeds
            last = exc
            first = first or exc
    raise first or last or FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)


def open_console(console: socket.socket, size: tuple[int, int] = (0, 0)) -> int:
    """A pty from the container's devpts: send the master to the caller, return the slave.

    The runc ``--console-socket`` pattern: the terminal is allocated inside the
    container (so ``/dev/pts/N`` exists there), the caller gets the master by SCM_RIGHTS.
    """
    # Already loaded (so importable after pivot_root): the caller imported it to make
    # the console socket pair before forking.
    import socket

    master, slave = os.openpty()
    if size != (0, 0):  # before the command can ask for it
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    try:
        socket.send_fds(console, [b"t"], [master])
    finally:
        os.close(master)
        console.close()
    return slave


def run_init(config: ContainerConfig, err_fd: int, console: socket.socket | None) -> NoReturn:
    """pid 1: start the command, forward signals, reap, exit with the command's code."""
    waited = FORWARDED | {signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    if console is None:
        child = spawn_command(config, err_fd)
    else:
        tty = open_console(console, config.tty_size)
        child = os.fork()
        if child == 0:
            exec_command(config, err_fd, tty)
        os.close(tty)
    os.close(err_fd)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    while True:
        info = signal.sigwaitinfo(waited)
        if info.si_signo != signal.SIGCHLD:
            # A terminal's signal (SI_KERNEL) already reached the command's process group.
            if info.si_code != SI_KERNEL:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, info.si_signo)
            continue
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                os._exit(1)
            if pid == 0:
                break
            if pid == child:
                # Leaving kills whatever else runs in the pid namespace, as docker does.
                os._exit(exit_code(status))
