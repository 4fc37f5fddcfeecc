"""Containers' state on disk, so that ``ps``, ``logs``, ``stop`` and ``exec`` work from
any process, and so that the next envkit command reaps what a killed one left.

Layout under ``$ENVKIT_HOME/containers/``::

    <id>/state.json     this module's :class:`ContainerState`, replaced atomically
    <id>/log            the output of detached (and API-captured) containers, json-lines
    <id>/upper, work    the overlay's writable layer
    <id>/rt             the runtime dir the engine mounts a private tmpfs over
    .names/<name>       holds the id: created with O_EXCL, so names are unique

A container is *owned* by its supervisor: the foreground ``envkit run``, the Python
process of ``envkit.run()``, or the detached supervisor of ``run -d``. Whoever finds a
running container whose supervisor is gone (checked by pid **and** start time, so a
recycled pid is never mistaken for it) finishes its record: :func:`reap`.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import time
from collections.abc import Iterator
from contextlib import suppress
from functools import partial

from envkit.errors import EnvkitError, SpecError
from envkit.settings import private_dir

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    import logging
    from os import PathLike
    from pathlib import Path
    from typing import Any, ClassVar


def _log() -> logging.Logger:
    import logging  # lazy: only to report a problem; logging costs ~3 ms to import

    return logging.getLogger("envkit.state")


CREATED, RUNNING, EXITED = "created", "running", "exited"
#: The exit code recorded when the supervisor died and the real one is unknown.
LOST_EXIT_CODE = 137

_ADJECTIVES = [
    "brave",
    "calm",
    "clever",
    "eager",
    "fancy",
    "gentle",
    "happy",
    "jolly",
    "keen",
    "lucky",
    "merry",
    "nifty",
    "proud",
    "quiet",
    "rapid",
    "shiny",
    "sleepy",
    "snappy",
    "stoic",
    "swift",
    "tender",
    "vivid",
    "wise",
    "witty",
    "zealous",
    "bold",
    "crisp",
    "dreamy",
    "frosty",
    "golden",
    "hungry",
]
_NOUNS = [
    "turing",
    "hopper",
    "lovelace",
    "curie",
    "noether",
    "darwin",
    "euler",
    "gauss",
    "kepler",
    "newton",
    "pascal",
    "tesla",
    "fermi",
    "bohr",
    "dirac",
    "planck",
    "galois",
    "hilbert",
    "ramanujan",
    "shannon",
    "knuth",
    "ritchie",
    "thompson",
    "lamport",
    "dijkstra",
    "liskov",
    "hamilton",
    "goodall",
    "franklin",
    "meitner",
]


class ContainerState:
    """One container's record (``state.json``). Times are Unix seconds.

    ``pid`` and ``pid_start`` are the host pid of the container's init (pid 1 inside)
    and its start time (clock ticks since boot, /proc/PID/stat field 22), which tells a
    recycled pid apart; ``supervisor``/``supervisor_start`` the process that holds the
    container and records its end. ``env``, ``cwd``, ``uid``, ``gid`` and ``groups`` are
    what ``exec`` repeats. ``stop_signal`` is the signal ``stop`` sends first
    (``--stop-signal``, the image's ``StopSignal``, else SIGTERM). ``cgroup`` is the host
    path of the container's cgroup (removed at exit), ``""`` for none. A plain class
    rather than a dataclass: it is on ``envkit run``'s start-up path (see
    :class:`envkit.runtime.config.BindMount`).
    """

    #: Every field and its default, in ``state.json``'s order.
    FIELDS: ClassVar[dict[str, object]] = {
        "id": "",
        "name": "",
        "image": "",
        "image_id": "",
        "argv": [],
        "created": 0.0,
        "status": CREATED,
        "started": 0.0,
        "finished": 0.0,
        "exit_code": None,
        "pid": 0,
        "pid_start": 0,
        "supervisor": 0,
        "supervisor_start": 0,
        "auto_remove": False,
        "detached": False,
        "tty": False,
        "env": {},
        "cwd": "/",
        "uid": 0,
        "gid": 0,
        "groups": [],
        "cgroup": "",
        "seccomp": True,
        "capabilities": None,
        "networks": [],
        "stack": "",
        "stop_signal": 15,
        "volumes": [],
    }
    __slots__ = tuple(FIELDS)

    id: str
    name: str
    image: str
    image_id: str
    argv: list[str]
    created: float
    status: str
    started: float
    finished: float
    exit_code: int | None
    pid: int
    pid_start: int
    supervisor: int
    supervisor_start: int
    auto_remove: bool
    detached: bool
    tty: bool
    env: dict[str, str]
    cwd: str
    uid: int
    gid: int
    groups: list[int]
    cgroup: str
    seccomp: bool
    capabilities: list[int] | None
    networks: list[str]
    stack: str
    stop_signal: int
    #: The named volumes it mounts (``run -v NAME:/path``): ``volume rm`` refuses them
    #: while the container exists, as docker does.
    volumes: list[str]

    def __init__(self, **values: Any) -> None:
        unknown = values.keys() - self.FIELDS.keys()
        if unknown:
            raise TypeError(f"ContainerState has no field(s) {sorted(unknown)}")
        for key, default in self.FIELDS.items():
            value = values.get(key, default)
            # Fresh containers for each record: never share a default list or dict.
            setattr(self, key, value.copy() if isinstance(value, list | dict) else value)

    def to_dict(self) -> dict[str, object]:
        """The record as ``state.json`` holds it."""
        return {key: getattr(self, key) for key in self.FIELDS}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContainerState):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass is

    def __repr__(self) -> str:
        return f"ContainerState(id={self.id[:12]!r}, name={self.name!r}, status={self.status!r})"

    @property
    def dir(self) -> Path:
        """``$ENVKIT_HOME/containers/<id>``."""
        from pathlib import Path  # lazy for start-up: no pathlib on `envkit run`'s path

        return Path(self.path())

    def path(self, *parts: str) -> str:
        """``$ENVKIT_HOME/containers/<id>/<parts...>`` as a string (no pathlib: this is
        on ``envkit run``'s start-up path)."""
        return os.path.join(_root(), self.id, *parts)

    @property
    def running(self) -> bool:
        """Whether the container's init is alive (pid and start time both match)."""
        return self.status == RUNNING and alive(self.pid, self.pid_start)

    def save(self) -> None:
        """Write ``state.json`` atomically (a reader sees the old or the new record)."""
        path = self.path("state.json")
        tmp = self.path(f".state.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f)
        os.replace(tmp, path)

    def mark_running(self, pid: int) -> None:
        """Record the init's pid; the caller is the supervisor."""
        self.pid, self.pid_start = pid, process_start(pid) or 0
        self.status, self.started = RUNNING, time.time()
        self.save()

    def mark_exited(self, code: int) -> None:
        """Record the exit code and time, and drop the cgroup."""
        self.status, self.exit_code, self.finished = EXITED, code, time.time()
        if self.cgroup:
            from envkit.runtime import cgroups  # lazy for start-up: only with limits

            cgroups.remove(self.cgroup)
            self.cgroup = ""
        if os.path.exists(self.path()):
            self.save()


def containers_dir() -> Path:
    """Where every container's dir lives."""
    from pathlib import Path  # lazy for start-up: no pathlib on `envkit run`'s path

    return Path(_root())


def _root() -> str:
    return private_dir("containers")


def create(
    *,
    name: str | None,
    image: str,
    image_id: str,
    argv: list[str],
    auto_remove: bool = False,
    **fields: Any,
) -> ContainerState:
    """Make a new container's dir, claim its name and write its first record (with
    ``fields``: more of :class:`ContainerState`'s, e.g. what ``exec`` repeats).

    The calling process is recorded as the supervisor until another one takes over.
    """
    top = _root()
    container_id = os.urandom(32).hex()
    os.makedirs(os.path.join(top, container_id))
    try:
        chosen = _claim_name(top, name, container_id)
    except BaseException:
        remove_dir(os.path.join(top, container_id))
        raise
    state = ContainerState(
        id=container_id,
        name=chosen,
        image=image,
        image_id=image_id,
        argv=argv,
        created=time.time(),
        auto_remove=auto_remove,
        **fields,
    )
    state.supervisor, state.supervisor_start = os.getpid(), process_start(os.getpid()) or 0
    state.save()
    return state


def load(container_dir: str | PathLike[str]) -> ContainerState | None:
    """The record in ``container_dir``; ``None`` if there is none (yet, or any more)."""
    try:
        with open(os.path.join(container_dir, "state.json")) as f:
            data = json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        _log().warning("ignoring unreadable %s/state.json: %s", container_dir, exc)
        return None
    known = ContainerState.FIELDS
    return ContainerState(**{k: v for k, v in data.items() if k in known})


def all_states() -> list[ContainerState]:
    """Every container's record, oldest first."""
    top = _root()
    try:
        names = os.listdir(top)
    except FileNotFoundError:
        return []
    states = [
        s for n in names if not n.startswith(".") and (s := load(os.path.join(top, n))) is not None
    ]
    return sorted(states, key=lambda s: s.created)


def find(ref: str) -> ContainerState:
    """A container by name, full id or unique id prefix (as docker accepts them)."""
    states = all_states()
    for state in states:
        if ref in (state.name, state.id):
            return state
    matches = [s for s in states if ref and s.id.startswith(ref.lower())]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise EnvkitError(
            f"container id prefix {ref!r} is ambiguous ({len(matches)} containers)",
            hint="give more characters of the id, or the name",
        )
    raise EnvkitError(f"no container {ref!r}", hint="`envkit ps -a` lists the containers")


#: How long the exit code of a removed (``--rm``) container stays for its waiters.
EXIT_NOTE_SECONDS = 60.0


def remove(state: ContainerState, exit_code: int | None = None) -> None:
    """Delete a stopped container: its dir, log, name and port forwarder's log.

    ``exit_code`` (a ``--rm`` container that just exited) is kept for
    :data:`EXIT_NOTE_SECONDS` in ``.exits/<id>``, where :func:`removed_exit_code` finds
    it for another process's ``wait()``, as docker's daemon answers ``docker wait``.
    """
    if exit_code is not None:
        _note_exit(state.id, exit_code)
    name_file = os.path.join(_root(), ".names", state.name)
    with suppress(OSError):
        with open(name_file) as f:
            owner = f.read()
        if owner == state.id:
            os.unlink(name_file)
            # envkit.network.ports logs under the container's name: ports-<name>.log.
            home = os.path.dirname(_root())
            os.unlink(os.path.join(home, "network", "logs", f"ports-{state.name}.log"))
    if state.cgroup:
        from envkit.runtime import cgroups  # lazy for start-up: only with limits

        cgroups.remove(state.cgroup)
    remove_dir(state.path())


def _note_exit(container_id: str, code: int) -> None:
    notes = os.path.join(_root(), ".exits")
    os.makedirs(notes, exist_ok=True)
    now = time.time()
    for old in os.listdir(notes):
        with suppress(OSError):
            if now - os.stat(os.path.join(notes, old)).st_mtime > EXIT_NOTE_SECONDS:
                os.unlink(os.path.join(notes, old))
    with open(os.path.join(notes, container_id), "w") as f:
        f.write(str(code))


def removed_exit_code(container_id: str) -> int | None:
    """The exit code of a ``--rm`` container removed in the last minute, if noted."""
    try:
        with open(os.path.join(_root(), ".exits", container_id)) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def orphans() -> list[ContainerState]:
    """Detached containers that run while their monitor is gone (``kill -9`` of it):
    a new monitor adopts them (:mod:`envkit.container.monitor`)."""
    return [
        state
        for state in all_states()
        if state.detached
        and not state.stack
        and state.status == RUNNING
        and not alive(state.supervisor, state.supervisor_start)
        and alive(state.pid, state.pid_start)
    ]


def reap(keep_orphans: bool = False) -> list[ContainerState]:
    """Finish the records of containers whose supervisor died (``kill -9`` of envkit).

    Their init is killed if it still runs (pid and start time match), the record says
    exited with :data:`LOST_EXIT_CODE`, and ``--rm`` containers are removed. Returns the
    containers reaped. With ``keep_orphans``, the running containers of :func:`orphans`
    are left alone (the caller has a monitor adopt them), and so are a stack's (``stack``:
    its next supervisor adopts them; ``down`` of the stack removes them).
    """
    reaped = []
    for state in all_states():
        if state.status == EXITED or alive(state.supervisor, state.supervisor_start):
            continue
        if keep_orphans and (state.detached or state.stack) and alive(state.pid, state.pid_start):
            continue
        if alive(state.pid, state.pid_start):
            kill_init(state, signal.SIGKILL)
            wait_gone(state.pid, state.pid_start, timeout=5.0)
        _log().info("reaping container %s: its supervisor %d died", state.name, state.supervisor)
        _remove_runtime_dir(state.path("rt"))
        state.mark_exited(LOST_EXIT_CODE)
        if state.auto_remove:
            remove(state)
        reaped.append(state)
    return reaped


#: Seconds between two looks at whether a container init ignores its stop signal.
IGNORE_POLL = 0.1


def init_ignores(pid: int, sig: int) -> bool:
    """Whether the container init ``pid`` neither catches nor blocks ``sig``, so that
    the kernel drops the signal (a pid namespace's init gets only the signals it catches
    or blocks to wait for; SIGKILL and SIGSTOP aside). ``stop`` then sends SIGKILL at
    once: waiting out a grace period for a SIGTERM that was never delivered would only
    delay the same end. When in doubt, ``False``: a process inside ``sigtimedwait``
    (tini, catatonit) shows an empty blocked mask there, since the kernel unblocks the
    awaited signals for the wait, so a sleeping process counts only when it sleeps
    somewhere else, as ``sleep`` in ``hrtimer_nanosleep``."""
    bit = 1 << (sig - 1)
    masks = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("SigCgt:", "SigBlk:")):
                    masks[line[:6]] = int(line.split()[1], 16)
    except (OSError, ValueError):
        return False
    if len(masks) != 2 or (masks["SigCgt"] | masks["SigBlk"]) & bit:
        return False
    try:
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read().strip()
    except OSError:
        return False
    return wchan not in ("", "0") and "sigtimedwait" not in wchan


def wait_gone_or_ignored(pid: int, start: int, sig: int, timeout: float) -> bool:
    """After ``sig`` was sent to the container init ``pid``: wait up to ``timeout`` s for
    it to end; ``True`` once it did, ``False`` at the timeout or as soon as the init is
    seen ignoring ``sig`` (:func:`init_ignores`, looked at every ``IGNORE_POLL`` s: a
    busy init, say a shell between two commands, is not seen asleep at every look, and a
    dropped signal will not end it however long one waits)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if wait_gone(pid, start, max(0.0, min(left, IGNORE_POLL))):
            return True
        if left <= IGNORE_POLL or init_ignores(pid, sig):
            return False


def kill_init(state: ContainerState, sig: int) -> bool:
    """Send ``sig`` to the container's init if it is still that process; whether sent."""
    if not state.pid or not alive(state.pid, state.pid_start):
        return False
    try:
        os.kill(state.pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, start: int, timeout: float) -> bool:
    """Wait up to ``timeout`` s for process ``pid`` (started at ``start``) to end."""
    if not alive(pid, start):
        return True
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return not alive(pid, start)
    try:
        if process_start(pid) != start:
            return True
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return not alive(pid, start)


def process_start(pid: int) -> int | None:
    """The start time of ``pid`` (field 22 of /proc/PID/stat); ``None`` if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    state, start = fields[0], int(fields[19])
    return None if state in (b"Z", b"X") else start


def is_child(pid: int, start: int) -> bool:
    """Whether process ``pid``, started at ``start``, is this process's child (a zombie
    too: its exit status is still to be collected here)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return int(fields[1]) == os.getpid() and int(fields[19]) == start


def alive(pid: int, start: int) -> bool:
    """Whether process ``pid`` runs and is the one that started at ``start``."""
    return pid > 0 and process_start(pid) == start


def _claim_name(top: str, name: str | None, container_id: str) -> str:
    names = os.path.join(top, ".names")
    os.makedirs(names, exist_ok=True)
    if name is not None:
        _check_name(name)
        candidates: Iterator[str] = iter([name])
    else:
        candidates = _generated_names()
    for candidate in candidates:
        path = os.path.join(names, candidate)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if _name_is_stale(path, top):
                    with suppress(FileNotFoundError):
                        os.unlink(path)
                    continue
                break
            with os.fdopen(fd, "w") as f:
                f.write(container_id)
            return candidate
    raise EnvkitError(
        f"the container name {name!r} is already in use",
        hint=f"remove that container (`envkit rm {name}`) or choose another --name",
    )


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name) or len(name) > 128:
        raise SpecError(
            "--name",
            "a container name is letters, digits and _ . - (first a letter or digit)",
            value=name,
        )


def _generated_names() -> Iterator[str]:
    for attempt in range(200):
        a, n, suffix = os.urandom(3)
        base = f"{_ADJECTIVES[a % len(_ADJECTIVES)]}_{_NOUNS[n % len(_NOUNS)]}"
        yield base if attempt < 20 else f"{base}{suffix}"


def _name_is_stale(path: str, top: str) -> bool:
    """A name file whose container dir is gone (a removal interrupted midway)."""
    try:
        with open(path) as f:
            owner = f.read().strip()
    except OSError:
        return False
    return bool(owner) and not os.path.exists(os.path.join(top, owner))


def _remove_runtime_dir(path: str) -> None:
    with suppress(FileNotFoundError):
        os.rmdir(path)


def remove_dir(state_dir: str | PathLike[str]) -> None:
    """Remove a container's dir, including overlay's mode-0 ``work/work``.

    Files a non-root container user wrote belong to subordinate ids, which an
    unprivileged caller cannot remove; those are removed from inside a user namespace
    with the container's id maps, where the caller is root over them.
    """
    if not os.path.exists(state_dir):
        return
    try:
        _remove_tree(state_dir)
    except OSError as exc:
        if os.geteuid() == 0 or not _remove_in_userns(state_dir):
            _log().warning("cannot remove container dir %s: %s", state_dir, exc.strerror or exc)


def _remove_tree(top: str | PathLike[str]) -> None:
    # Not shutil.rmtree: shutil imports bz2 and lzma, milliseconds on every `run --rm`.
    # One pass; a directory its owner cannot enter or change (overlay's work/work is
    # mode 0) is opened up first, except for root, whom modes do not stop (a chmod on
    # ext4 costs ~0.1 ms); symlinks are removed, never followed.
    privileged = os.geteuid() == 0

    def clear(path: str) -> None:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if (
                        not privileged
                        and entry.stat(follow_symlinks=False).st_mode & 0o700 != 0o700
                    ):
                        os.chmod(entry.path, 0o700)
                    clear(entry.path)
                    os.rmdir(entry.path)
                else:
                    os.unlink(entry.path)

    clear(os.fspath(top))
    os.rmdir(top)


def _remove_in_userns(top: str | PathLike[str]) -> bool:
    """:func:`_remove_tree` as root of a new user namespace with the container's maps."""
    # lazy for start-up: only when a plain remove failed (as_root forks: host.forking)
    from envkit.host import idmap
    from envkit.host.as_root import call_as_container_root

    if idmap.plan().single_id:
        return False  # every file already belongs to the caller: nothing more to gain
    try:
        call_as_container_root(partial(_remove_tree, os.fspath(top)))
    except EnvkitError as exc:
        _log().debug("removing %s as container root failed: %s", top, exc)
    return not os.path.exists(top)
