"""Issue 16's fault and leak suite, run by CI as root and rootless.

* **kill -9** at seeded random points of ``load``, ``build``, ``pull``, ``push``, ``up``
  and ``down``: then ``fsck`` reports nothing but what the killed process left (no
  damage), the rerun succeeds, and after the cleanup (``rmi`` / ``down``) and ``prune``,
  ``fsck`` is clean and nothing is left: no container record, stack, network, mount,
  process (zombies skipped: PID 1 of these hosts does not reap), network namespace, fd,
  runtime dir ``$TMPDIR/envkit-ctr-*``, build dir, nor any file that was not in
  ``$ENVKIT_HOME`` before (``run-cache/`` excepted: a cache allowed to stay).
* **leak cycles**: ``run --rm``, ``run -d -p`` / ``stop`` / ``rm`` and ``up -d`` /
  ``down`` leave the same counts behind.

The default run kills each command 10 times and runs the issue's cycles (100 ``run
--rm``, 20 ``run -d -p``, 10 ``up``/``down``), about a minute here; ``-m slow`` kills 50
times and runs five times as many cycles. A kill loop prints its seed (shown with a
failure); ``ENVKIT_FAULT_SEED=N`` replays it. Commands get a private ``TMPDIR`` (mode
1777, as /tmp), so runtime dirs are counted without the other users of ``/tmp``.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import images
from tests.integration import homes
from tests.integration.registry_server import RegistryServer, missing_tools

pytestmark = pytest.mark.rootless

BUSYBOX = "busybox:1"
LOADED = "loaded:1"
APPLETS = (*images.APPLETS, "head", "httpd", "timeout")
#: Every container of this suite carries ``MARK=<home>`` in its environment, and every
#: envkit process inherits ``ENVKIT_HOME=<home>``: a process is ours when its environment
#: (or command line) holds the home's path.
MARK = "ENVKIT_FAULT_HOME"
KILLS, KILLS_SLOW = 10, 50
OPS = ("load", "build", "pull", "push", "up", "down")
SETTLE = 10.0  # seconds for killed processes' children to notice (pdeathsig, pidfd)


def seed_for(name: str) -> int:
    base = os.environ.get("ENVKIT_FAULT_SEED")
    seed = int(base) if base else random.SystemRandom().randrange(1 << 31)
    print(f"{name}: seed {seed} (replay: ENVKIT_FAULT_SEED={seed})")
    return seed


def busybox_layer() -> bytes:
    files = {
        "bin/busybox": images.BUSYBOX.read_bytes(),
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    }
    return images.layer_tar(
        files,
        dirs=("dev", "proc", "sys", "tmp", "root", "etc", "run"),
        symlinks={f"bin/{a}": "busybox" for a in APPLETS},
        executable=("bin/busybox",),
    )


# -- the world one test works in ------------------------------------------------------


@dataclass
class World:
    home: Path
    tmp: Path  # TMPDIR of every command
    project: Path  # stack files, build files, archives

    @property
    def env(self) -> dict[str, str]:
        return {"TMPDIR": str(self.tmp)}

    def cli(
        self, argv: list[str], cwd: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return homes.cli(self.home, argv, env=self.env, cwd=cwd or self.project, timeout=timeout)

    def ok(self, argv: list[str], cwd: Path | None = None) -> str:
        done = self.cli(argv, cwd)
        if done.returncode != 0:
            raise Failed(f"`envkit {' '.join(argv)}` exited {done.returncode}: {tail(done)}")
        return done.stdout

    def spawn(self, argv: list[str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
        env = {**os.environ, "ENVKIT_HOME": str(self.home), **self.env}
        env.pop("ENVKIT_DEBUG", None)
        return subprocess.Popen(
            [sys.executable, "-m", "envkit", *argv],
            env=env,
            cwd=cwd or self.project,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


class Failed(Exception):
    """One iteration's failure: recorded, the world repaired, the loop goes on."""


def tail(done: subprocess.CompletedProcess[str]) -> str:
    text = (done.stderr or done.stdout).strip().splitlines()
    return " | ".join(text[-4:])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("faults")
    home = homes.loaded_home(work, [busybox_layer()], BUSYBOX)
    # A private TMPDIR with /tmp's mode: the holder's namespace root (a subordinate id
    # when running as root) creates iptables' lock file there.
    tmp = Path(tempfile.mkdtemp(prefix="envkit-faults-tmp-", dir="/tmp"))
    tmp.chmod(0o1777)
    project = work / "project"
    project.mkdir()
    world = World(home, tmp, project)
    images.build_archive(
        project / "loaded.tar",
        [images.busybox_layer(), images.random_layer(7, 4_000_000, files=4)],
        ref=LOADED,
    )
    (project / "data.bin").write_bytes(os.urandom(1 << 20))
    write_stack(world, project / "up")
    write_stack(world, project / "down")
    write_stack(world, project / "cycle")
    yield world
    with contextlib.suppress(Exception):
        recover(world)
    shutil.rmtree(tmp, ignore_errors=True)


def write_stack(world: World, directory: Path) -> None:
    """Two services with an init (stop is quick), one publishing a port."""
    directory.mkdir()
    name = f"faults-{directory.name}"
    (directory / "stack.py").write_text(
        "from envkit import Service, Stack\n"
        f"env = {{{MARK!r}: {str(world.home)!r}}}\n"
        "a = Service('sleeper', init=True, image='busybox:1', command=['sleep', '600'], env=env)\n"
        "b = Service('web', init=True, image='busybox:1', env=env, ports={0: 8080},\n"
        "            command=['sh', '-c', 'mkdir -p /www && exec httpd -f -p 8080 -h /www'])\n"
        f"stack = Stack({name!r}, services=[a, b])\n"
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    if missing_tools():
        pytest.skip(f"needs {', '.join(missing_tools())} (apt-get install docker-registry)")
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


# -- what a leak would change ---------------------------------------------------------


@dataclass(frozen=True)
class Residue:
    processes: tuple[str, ...]
    netns: int
    fds: int
    mounts: tuple[str, ...]
    runtime_dirs: tuple[str, ...]
    build_dirs: tuple[str, ...]
    containers: tuple[str, ...]
    stacks: tuple[str, ...]
    networks: tuple[str, ...]
    files: frozenset[str]

    def diff(self, before: Residue) -> list[str]:
        out = []
        for name in ("processes", "mounts", "runtime_dirs", "build_dirs", "containers"):
            now, was = getattr(self, name), getattr(before, name)
            if set(now) - set(was):
                out.append(f"{name}: {sorted(set(now) - set(was))}")
        for name in ("stacks", "networks"):
            if set(getattr(self, name)) - set(getattr(before, name)):
                out.append(
                    f"{name}: {sorted(set(getattr(self, name)) - set(getattr(before, name)))}"
                )
        if self.netns > before.netns:
            out.append(f"network namespaces: {self.netns} (before: {before.netns})")
        if self.fds > before.fds:
            out.append(f"open fds: {self.fds} (before: {before.fds})")
        if self.files - before.files:
            out.append(f"new files in ENVKIT_HOME: {sorted(self.files - before.files)[:12]}")
        if before.files - self.files:
            out.append(f"files gone from ENVKIT_HOME: {sorted(before.files - self.files)[:12]}")
        return out


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


def _ours(world: World) -> dict[int, str]:
    """Live processes (zombies skipped) whose environment or command line names the home."""
    needle = str(world.home).encode()
    skip = _ancestors()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip:
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                environ = b""
        except OSError:
            continue
        if needle in environ or needle in cmdline:
            found[int(entry)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def _fds_into(world: World, pids: set[int]) -> int:
    """fds of our processes, plus fds any other readable process holds into the home or
    the TMPDIR of this suite."""
    count = 0
    roots = (str(world.home), str(world.tmp))
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        if int(entry) in pids:
            count += len(fds)
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(roots):
                count += 1
    return count


def _mounts(world: World) -> tuple[str, ...]:
    roots = (str(world.home), str(world.tmp))
    points = [ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()]
    return tuple(sorted(p for p in points if p.startswith(roots)))


def _names(path: Path, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    try:
        return tuple(sorted(n for n in os.listdir(path) if not n.startswith(skip or "\0")))
    except OSError:
        return ()


#: Allowed to stay between iterations: the run-cache (image -> snapshots, a cache).
KEEP = ("run-cache",)


def _files(home: Path) -> frozenset[str]:
    """Relative paths under the home; snapshots by name only (their insides belong to the
    containers' ids), and what :data:`KEEP` allows left out."""
    found = set()
    for top, dirs, files in os.walk(home):
        rel = os.path.relpath(top, home)
        if rel == ".":
            dirs[:] = [d for d in dirs if d not in KEEP]
        if rel == "snapshots":
            found |= {f"snapshots/{d}" for d in dirs}
            dirs[:] = []
        prefix = "" if rel == "." else rel + "/"
        found |= {prefix + n for n in (*dirs, *files)}
    return frozenset(found)


def residue(world: World) -> Residue:
    ours = _ours(world)
    host = os.readlink("/proc/self/ns/net")
    netns = set()
    for pid in ours:
        with contextlib.suppress(OSError):
            netns.add(os.readlink(f"/proc/{pid}/ns/net"))
    netns.discard(host)
    home = world.home
    return Residue(
        processes=tuple(sorted(f"{pid} {cmd}" for pid, cmd in ours.items())),
        netns=len(netns),
        fds=_fds_into(world, set(ours)),
        mounts=_mounts(world),
        runtime_dirs=tuple(n for n in _names(world.tmp) if n.startswith("envkit-ctr-")),
        build_dirs=_names(home / "build"),
        containers=_names(home / "containers", (".",)),
        stacks=_names(home / "stacks", (".",)),
        networks=_names(home / "network" / "networks"),
        files=_files(home),
    )


def settle(world: World, before: Residue, timeout: float = SETTLE) -> list[str]:
    """What is left beyond ``before`` once processes had ``timeout`` s to go."""
    deadline = time.monotonic() + timeout
    while True:
        problems = residue(world).diff(before)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.1)


def quiet(world: World) -> Residue:
    """The residue once none of our processes runs (the baseline of a loop)."""
    deadline = time.monotonic() + SETTLE
    while (now := residue(world)).processes and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not now.processes, f"processes before the loop: {now.processes}"
    return now


def recover(world: World) -> None:
    """After a failed iteration: take everything down so the next one starts clean."""
    for stack in _names(world.home / "stacks", (".",)):
        world.cli(["down", "-p", stack])
    for ctr in _names(world.home / "containers", (".",)):
        world.cli(["rm", "-f", ctr])
    world.cli(["fsck", "--repair"])
    world.cli(["prune"])


# -- kill -9 loops --------------------------------------------------------------------


@dataclass
class Fault:
    """One command to kill: ``argv(i)``, what must succeed before it, what undoes it."""

    name: str
    argv: Callable[[int], list[str]]
    cwd: Path | None = None
    before: Callable[[int], list[list[str]]] = lambda i: []
    after: Callable[[int], list[list[str]]] = lambda i: []
    verify: Callable[[int], str] = lambda i: ""  # "" or what is wrong after the rerun
    setup: list[list[str]] = field(default_factory=list)
    teardown: list[list[str]] = field(default_factory=list)


@dataclass
class Tally:
    name: str
    seed: int
    tried: int = 0
    killed: int = 0
    finished_first: int = 0
    leftovers_seen: int = 0
    state_after_kill: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"kill -9 {self.name}: {self.killed} killed mid-run / {len(self.failures)} failed "
            f"({self.tried} tried, {self.finished_first} finished before the kill, "
            f"{self.leftovers_seen} left something fsck reported, "
            f"{self.state_after_kill} left processes, records or files to the rerun), "
            f"{self.seconds:.1f} s, seed {self.seed}"
        )


FSCK_ALLOWED = ("leftover ", "resumable download ", "unused runtime dir ", "run `envkit fsck")


def fsck_damage(world: World) -> tuple[list[str], bool]:
    """``envkit fsck``'s lines that are damage (not leftovers of a killed process), and
    whether it reported leftovers."""
    done = world.cli(["fsck"])
    lines = done.stdout.splitlines()
    if done.returncode == 0 and lines and lines[-1].endswith(": ok"):
        return [], any(ln.startswith(FSCK_ALLOWED) for ln in lines)
    damage = [ln for ln in lines if not ln.startswith(FSCK_ALLOWED)]
    if done.returncode not in (0, 1) or done.stderr.strip():
        damage.append(f"fsck exited {done.returncode}: {tail(done)}")
    return damage, True


def faults(world: World, request: pytest.FixtureRequest) -> dict[str, Fault]:
    p = world.project

    def build_file(i: int) -> str:
        path = p / f"build_{i}.py"
        if not path.exists():
            path.write_text(
                "from envkit import Image\n"
                f"img = (Image.from_('busybox:1').env({MARK}={str(world.home)!r})\n"
                "       .copy('data.bin', '/data.bin')\n"
                f"       .run('head -c 2000000 /dev/urandom > /rand && echo {i} > /n')\n"
                "       .run('echo two > /m'))\n"
            )
        return f"{path}:img"

    def runs(ref: str, argv: list[str], out: str = "") -> str:
        """ "" when ``run --rm ref argv`` prints ``out``, else what went wrong."""
        done = world.cli(["run", "--rm", "-e", f"{MARK}={world.home}", ref, *argv])
        if done.returncode != 0 or done.stdout != out:
            return f"run of {ref} exited {done.returncode}, printed {done.stdout!r}: {tail(done)}"
        return ""

    table = {
        "load": Fault("load", lambda i: ["load", "-q", "-i", str(p / "loaded.tar")],
                      after=lambda i: [["rmi", LOADED]], verify=lambda i: runs(LOADED, ["true"])),
        "build": Fault("build", lambda i: ["build", build_file(i), "-t", f"built:{i}"],
                       after=lambda i: [["rmi", f"built:{i}"]],
                       verify=lambda i: runs(f"built:{i}", ["cat", "/n", "/m"], f"{i}\ntwo\n")),
        "up": Fault("up", lambda i: ["up", "-d"], cwd=p / "up", after=lambda i: [["down"]]),
        "down": Fault("down", lambda i: ["down"], cwd=p / "down", before=lambda i: [["up", "-d"]]),
    }  # fmt: skip
    if request.node.callspec.params.get("op") in ("pull", "push"):
        reg: RegistryServer = request.getfixturevalue("registry")
        src = f"{reg.host}/faults/src:1"

        def pushed(i: int) -> str:
            req = urllib.request.Request(
                f"{reg.url}/v2/push{i}/img/manifests/1",
                method="HEAD",
                headers={"Accept": images.MT_MANIFEST},
            )
            try:
                with urllib.request.urlopen(req, timeout=10) as answer:
                    return "" if answer.status == 200 else f"registry answered {answer.status}"
            except urllib.error.URLError as exc:
                return f"push{i}/img:1 is not in the registry: {exc}"

        table["pull"] = Fault(
            "pull",
            lambda i: ["pull", "-q", src],
            after=lambda i: [["rmi", src]],
            verify=lambda i: runs(src, ["true"]),
            setup=[["load", "-q", "-i", str(p / "loaded.tar")], ["push", "-q", LOADED, src],
                   ["rmi", LOADED]],
        )  # fmt: skip
        table["push"] = Fault(
            "push",
            lambda i: ["push", "-q", LOADED, f"{reg.host}/push{i}/img:1"],
            verify=pushed,
            setup=[["load", "-q", "-i", str(p / "loaded.tar")]],
            teardown=[["rmi", LOADED]],
        )
    return table


def one_iteration(
    world: World, fault: Fault, i: int, delay: float, tally: Tally, baseline: Residue
) -> float:
    """``before``, the command killed after ``delay`` s, then the checks (see module);
    returns how long the rerun took (the next kill window)."""
    for argv in fault.before(i):
        world.ok(argv, fault.cwd)
    proc = world.spawn(fault.argv(i), fault.cwd)
    try:
        time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    if finished:
        tally.finished_first += 1
    else:
        tally.killed += 1
        tally.state_after_kill += bool(residue(world).diff(baseline))
    damage, leftovers = fsck_damage(world)
    tally.leftovers_seen += leftovers
    if damage:
        raise Failed(f"fsck after the kill: {damage}")
    if leftovers and i % 2 == 0:  # every other time repair first, else let prune do it
        world.ok(["fsck", "--repair"])
    t0 = time.monotonic()
    world.ok(fault.argv(i), fault.cwd)  # the rerun
    rerun = time.monotonic() - t0
    if wrong := fault.verify(i):
        raise Failed(f"after the rerun: {wrong}")
    for argv in fault.after(i):
        world.ok(argv, fault.cwd)
    world.ok(["prune"])
    if not world.ok(["fsck"]).endswith(": ok\n"):
        raise Failed("fsck after prune is not clean")
    if problems := settle(world, baseline):
        raise Failed(f"left after prune: {problems}")
    return rerun


def kill_loop(world: World, request: pytest.FixtureRequest, op: str, kills: int) -> Tally:
    seed = seed_for(f"kill -9 {op}")
    rng = random.Random(f"{seed}-{op}")
    fault = faults(world, request)[op]
    tally = Tally(op, seed)
    start = time.monotonic()
    for argv in fault.setup:
        world.ok(argv)
    try:
        # A warm-up run, not killed: it times the kill window and makes what every run
        # makes once (locks, the network state, snapshots of the base).
        for argv in fault.before(0):
            world.ok(argv, fault.cwd)
        t0 = time.monotonic()
        world.ok(fault.argv(0), fault.cwd)
        window = time.monotonic() - t0
        if wrong := fault.verify(0):
            raise Failed(f"warm-up: {wrong}")
        # Kills before the interpreter has started would all hit the same point: aim
        # from most of a bare start-up on (`envkit --version`) to the end of the run.
        t0 = time.monotonic()
        world.ok(["--version"])
        floor = min(0.8 * (time.monotonic() - t0), window / 2)
        for argv in fault.after(0):
            world.ok(argv, fault.cwd)
        world.ok(["prune"])
        baseline = quiet(world)
        i = 0
        while tally.killed < kills and tally.tried < 3 * kills:
            i += 1
            tally.tried += 1
            delay = rng.uniform(floor, window)
            try:
                rerun = one_iteration(world, fault, i, delay, tally, baseline)
                # Aim at the latest run's length: a warm-up slowed by a busy host made
                # most kills land after the end (7 of 30 killed in a loaded run).
                if rerun > floor:
                    window = rerun
            except (Failed, subprocess.TimeoutExpired) as exc:
                tally.failures.append(f"#{i} (kill after {delay:.3f} s of {window:.2f}): {exc}")
                # Undo what the iteration made (best effort), so that the next one is
                # not measured against a baseline holding it (a failure would cascade).
                for argv in fault.after(i):
                    world.cli(argv, fault.cwd)
                recover(world)
                baseline = quiet(world)
        for argv in fault.teardown:
            world.ok(argv)
        world.ok(["prune"])
    finally:
        tally.seconds = time.monotonic() - start
        print(tally.line())
    return tally


def check(tally: Tally, kills: int) -> None:
    summary = "\n".join([tally.line(), *tally.failures])
    assert not tally.failures, summary
    assert tally.killed >= kills, summary


@pytest.mark.parametrize("op", OPS)
def test_kill_9(world: World, request: pytest.FixtureRequest, op: str) -> None:
    check(kill_loop(world, request, op, KILLS), KILLS)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("op", OPS)
def test_kill_9_long(world: World, request: pytest.FixtureRequest, op: str) -> None:
    check(kill_loop(world, request, op, KILLS_SLOW), KILLS_SLOW)


# -- leak cycles ----------------------------------------------------------------------


def cycles(world: World, name: str, count: int, one: Callable[[int], None]) -> None:
    """``one(0)`` as a warm-up, then ``count`` cycles; nothing may be left after them."""
    one(0)
    before = quiet(world)
    start = time.monotonic()
    failed: list[str] = []
    for i in range(1, count + 1):
        try:
            one(i)
        except (Failed, subprocess.TimeoutExpired) as exc:
            failed.append(f"#{i}: {exc}")
    seconds = time.monotonic() - start
    problems = settle(world, before)
    print(
        f"{name}: {count} cycles / {len(failed)} failed, {seconds:.1f} s "
        f"({seconds / count * 1000:.0f} ms each), left: {problems or 'nothing'}"
    )
    assert not failed and not problems, (failed, problems)


def run_rm(world: World) -> Callable[[int], None]:
    def one(i: int) -> None:
        out = world.ok(["run", "--rm", "-e", f"{MARK}={world.home}", BUSYBOX,
                        "sh", "-c", f"echo {i} > /tmp/n && cat /tmp/n"])  # fmt: skip
        if out != f"{i}\n":
            raise Failed(f"run --rm printed {out!r}")

    return one


def run_detached(world: World) -> Callable[[int], None]:
    def one(i: int) -> None:
        name = f"leak{i}"
        world.ok(["run", "-d", "--init", "--name", name, "-p", "0:8080",
                  "-e", f"{MARK}={world.home}", BUSYBOX, "sleep", "600"])  # fmt: skip
        t0 = time.monotonic()
        world.ok(["stop", name])
        if time.monotonic() - t0 > 5:
            raise Failed(f"stop took {time.monotonic() - t0:.1f} s (SIGTERM ignored?)")
        world.ok(["rm", name])

    return one


def up_down(world: World) -> Callable[[int], None]:
    def one(i: int) -> None:
        world.ok(["up", "-d"], world.project / "cycle")
        world.ok(["down"], world.project / "cycle")

    return one


RUN_RM, RUN_D, UP_DOWN = 100, 20, 10  # the counts; -m slow runs five times more


def test_leak_run_rm(world: World) -> None:
    cycles(world, "run --rm", RUN_RM, run_rm(world))


def test_leak_run_detached_published(world: World) -> None:
    cycles(world, "run -d -p/stop/rm", RUN_D, run_detached(world))


def test_leak_up_down(world: World) -> None:
    cycles(world, "up -d/down", UP_DOWN, up_down(world))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_leak_cycles_full(world: World) -> None:
    cycles(world, "run --rm", 5 * RUN_RM, run_rm(world))
    cycles(world, "run -d -p/stop/rm", 5 * RUN_D, run_detached(world))
    cycles(world, "up -d/down", 5 * UP_DOWN, up_down(world))
