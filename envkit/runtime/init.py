"""The last steps of a container's command process before exec.

The container's pid 1 is the user's command, as in docker and podman: the process that
built the root file system takes on the command's user and privileges and execs it, so
no envkit code stays in the container's pid namespace. pid 1 keeps the duties the kernel
gives it (signals it has no handler for are dropped, orphans are re-parented to it, its
exit ends the namespace); ``init=True`` puts a small init (tini or catatonit from the
host, bind-mounted read-only at :data:`INIT_PATH`) in front, as ``docker run --init``.
``envkit exec`` and health checks end here too (:mod:`envkit.runtime.nsexec`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import struct
import termios

from envkit.errors import EnvkitError, RuntimeError_
from envkit.host import syscalls
from envkit.host.prctl import PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG
from envkit.runtime import caps, seccomp
from envkit.runtime.config import ContainerConfig, ExecConfig

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import NoReturn, TypeVar

    from envkit.host.syscall_seam import Syscalls

    T = TypeVar("T")

#: Where ``init=True`` mounts the host's init in the container (podman: /run/podman-init).
INIT_PATH = "/run/envkit-init"
#: Static inits from Debian's packages, in order of preference: the container has no
#: host libraries, so a dynamically linked init (``/usr/bin/tini``) would not start.
INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/catatonit", "/usr/libexec/podman/catatonit")


def find_init() -> str:
    """The host path of the init that ``init=True`` runs (``$ENVKIT_INIT`` if set)."""
    override = os.environ.get("ENVKIT_INIT")
    for path in (override,) if override else INIT_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    raise RuntimeError_(
        f"--init needs a static init on the host; none of {', '.join(INIT_CANDIDATES)} exists"
        if not override
        else f"ENVKIT_INIT={override} is not an executable file",
        hint="install Debian's tini package (it ships tini-static) or catatonit: "
        "apt-get install tini",
    )


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


def fail(
    err_fd: int,
    code: int,
    message: str,
    kernel: Syscalls = syscalls,
    *,
    hint: str | None = None,
) -> NoReturn:
    """Report a start failure to the spawner (``CODE\\nMESSAGE`` on the error pipe,
    ``MESSAGE\\0HINT`` with a hint: :func:`parse_report` reads it), exit."""
    text = f"{message}\0{hint}" if hint else message
    try:
        kernel.write(err_fd, f"{code}\n{text}".encode(errors="replace")[:8192])
    finally:
        kernel.exit_process(code)


def parse_report(report: str) -> tuple[str, str, str | None]:
    """The code text, message and hint (None when there is none) of a :func:`fail`
    report."""
    code_text, _, rest = report.partition("\n")
    message, marker, hint = rest.partition("\0")
    return code_text, message, hint if marker else None


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def exec_command(
    config: ContainerConfig | ExecConfig,
    err_fd: int,
    tty: int | None = None,
    kernel: Syscalls = syscalls,
) -> NoReturn:
    """In the container's pid 1 or an exec'd command: become the requested user with
    docker's privileges, then exec.

    The command always gets a session of its own (runc and podman do the same): it never
    shares the caller's controlling terminal, so ``/dev/tty`` and ``TIOCSTI`` cannot
    reach the shell that started envkit. With ``tty`` (the slave side of a pty from the
    container's devpts) that terminal becomes its controlling terminal and its stdin,
    stdout and stderr. Every kernel call goes through ``kernel``
    (:mod:`envkit.host.syscall_seam`).
    """
    step = ["prepare"]
    try:
        step[0] = "terminal"
        kernel.setsid()
        if tty is not None:
            kernel.take_terminal(tty)
        for sig in _ignored_signals():
            signal.signal(sig, signal.SIG_DFL)
        _limit_privileges(config, step, kernel)
        # A credential change resets both: this process stays unreadable by the
        # container's processes (now of its own user) until the exec, and pid 1 still
        # dies with its monitor.
        kernel.prctl(PR_SET_DUMPABLE, 0)
        if isinstance(config, ContainerConfig) and config.die_with_parent:
            kernel.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        kernel.close_all_but({0, 1, 2, err_fd})
        step[0] = "seccomp"
        if config.seccomp:
            seccomp.install(caps.seccomp_caps(config.capabilities), kernel)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        step[0] = "exec"
        execvpe(list(config.argv), dict(config.env), kernel)
    except BaseException as exc:
        _report(err_fd, config, step[0], exc, kernel)


def _ignored_signals() -> list[int]:
    # exec resets caught signals but keeps ignored ones ignored (Python ignores SIGPIPE
    # and SIGXFSZ): only those need resetting.
    return [sig for sig in _RESETTABLE if signal.getsignal(sig) is signal.SIG_IGN]


def _limit_privileges(
    config: ContainerConfig | ExecConfig, step: list[str], kernel: Syscalls
) -> None:
    """Working dir, docker's capabilities, the command's user, no_new_privs; ``step[0]``
    names the step under way, for the error message."""
    step[0] = f"working directory {config.cwd}"
    if config.cwd != "/":
        os.makedirs(config.cwd, exist_ok=True)
    step[0] = "capabilities"
    keep = caps.DEFAULT if config.capabilities is None else config.capabilities
    caps.limit_bounding_set(keep, caps.last_cap(), kernel)
    step[0] = f"user {config.uid}:{config.gid}"
    try:
        kernel.setgroups(list(config.groups))
    except PermissionError:
        if config.groups:
            raise  # a single-id map denies setgroups; without groups that is fine
    kernel.setresgid(config.gid, config.gid, config.gid)
    kernel.setresuid(config.uid, config.uid, config.uid)
    if config.uid == 0:
        kernel.capset(keep, keep, frozenset())
    kernel.prctl(PR_SET_NO_NEW_PRIVS, 1)
    step[0] = f"working directory {config.cwd}"
    kernel.chdir(config.cwd)


def _report(
    err_fd: int,
    config: ContainerConfig | ExecConfig,
    step: str,
    exc: BaseException,
    kernel: Syscalls,
) -> NoReturn:
    if isinstance(exc, OSError):
        if step == "exec":
            code = 127 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 126
            fail(err_fd, code, f"exec {config.argv[0]!r}: {exc.strerror}", kernel)
        fail(err_fd, 1, f"{step}: {exc.strerror or exc}", kernel)
    if isinstance(exc, EnvkitError):
        fail(err_fd, 1, f"{step}: {exc.message}", kernel, hint=exc.hint)
    fail(err_fd, 1, f"{step}: {exc}", kernel)


def execvpe(argv: list[str], env: dict[str, str], kernel: Syscalls = syscalls) -> NoReturn:
    """:func:`os.execvpe`: ``argv[0]`` searched in ``env``'s PATH, the same errors.

    Not os.execvpe itself: it imports :mod:`warnings` when called, and this runs after
    pivot_root, where the host's modules cannot be imported any more.
    """
    own = os.stat("/proc/self/exe")
    me = (own.st_dev, own.st_ino)

    def launch(path: str) -> NoReturn:
        _refuse_interpreter(path, me)
        kernel.execve(path, argv, env)

    _on_path(argv[0], env, launch)


def _refuse_interpreter(path: str, me: tuple[int, int], depth: int = 0) -> None:
    """Refuse to exec this process's own executable (the host's Python), directly or as
    a script's interpreter.

    ``/proc/self/exe`` names it from inside the container: a command or ``#!`` line
    pointing there would run the host's interpreter as a container process, which the
    container could then open through ``/proc/PID/exe`` and rewrite once nothing runs it
    (CVE-2019-5736's pattern; runc answers with a cloned binary).
    """
    try:
        st = os.stat(path)
    except OSError:
        return  # exec reports it
    if (st.st_dev, st.st_ino) == me and _through_proc(path):
        # Only through /proc: the same interpreter bind-mounted into the container is
        # the user's choice, and /proc/PID/exe of its processes then names that mount.
        raise PermissionError(errno.EACCES, "refusing to run the runtime's own executable", path)
    if depth >= 4 or st.st_mode & 0o170000 != 0o100000:  # the kernel's nesting limit;
        return  # only a regular file can be a script (and reading a FIFO would block)
    try:
        with open(path, "rb", buffering=0) as f:
            head = f.read(256)
    except OSError:
        return
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n", 1)[0].strip()
        interpreter = line.split(None, 1)[0] if line else b""
        if interpreter:
            _refuse_interpreter(os.fsdecode(interpreter), me, depth + 1)


def _through_proc(path: str) -> bool:
    """Whether resolving ``path`` follows a symbolic link under ``/proc`` (where the
    magic links ``/proc/PID/exe``, ``/proc/self`` and ``/proc/PID/fd/N`` live)."""
    pending = os.path.abspath(path)
    for _ in range(40):  # the kernel's limit on links followed in one lookup
        parts = pending.split("/")
        for end in range(2, len(parts) + 1):
            prefix = "/".join(parts[:end])
            if not os.path.islink(prefix):
                continue
            if prefix.startswith("/proc/"):
                return True
            target = os.path.join(os.path.dirname(prefix), os.readlink(prefix))
            pending = os.path.normpath("/".join([target, *parts[end:]]))
            break
        else:
            return False
    return True  # a loop: exec fails with ELOOP anyway


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
