"""Attack probes for the hardening suite: small C programs (``tests/probes/*.c``) built
once per session with ``gcc -static``, a busybox test image that carries them at
``/probes``, an interactive shell on a real pty to attack, and the reading of what the
probes report.

The probes print what they tried and what they got (errno included), so a test can
check both that the attack failed and that the probe really ran.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import images

SOURCES = Path(__file__).resolve().parents[1] / "probes"
REPO = Path(__file__).resolve().parents[2]
IMAGE = "hardening:1"
APPLETS = (
    *images.APPLETS,
    "readlink",
    "tr",
    "wc",
    "mount",
    "umount",
    "unshare",
    "mknod",
    "timeout",
    "head",
)


@functools.cache
def _compile_all() -> tuple[Path | None, str]:
    """Every probe, built into a world-readable temp dir (a rootless test user can read
    it, or bind-mount it); ``(None, why)`` when gcc or a static libc is missing."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None, "gcc missing: apt-get install gcc (the hardening probes are C)"
    out = Path(tempfile.mkdtemp(prefix="envkit-probes-"))
    atexit.register(shutil.rmtree, out, True)
    out.chmod(0o755)
    for source in sorted(SOURCES.glob("*.c")):
        binary = out / source.stem
        done = subprocess.run(
            [gcc, "-static", "-O2", "-Wall", "-o", str(binary), str(source)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            if "cannot find -lc" in done.stderr or "crt1.o" in done.stderr:
                return (
                    None,
                    f"no static libc for gcc -static (apt-get install libc6-dev): {done.stderr}",
                )
            raise AssertionError(f"probe {source.name} does not compile:\n{done.stderr}")
        binary.chmod(0o755)
    return out, ""


def probe_dir() -> Path:
    """The directory of the built probes (``sti``, ``tracer``, ``attack``); skips the
    calling test with the reason when they cannot be built here."""
    built, why = _compile_all()
    if built is None:
        pytest.skip(why)
    return built


def image_layer() -> bytes:
    """The test busybox with more applets, ``/probes/*`` and the dirs the tests use."""
    built = probe_dir()
    files = {
        "bin/busybox": images.BUSYBOX.read_bytes(),
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    }
    probes = {f"probes/{p.name}": p.read_bytes() for p in sorted(built.iterdir())}
    files.update(probes)
    return images.layer_tar(
        files,
        dirs=("dev", "proc", "sys", "tmp", "root", "etc", "run", "mnt"),
        symlinks={f"bin/{a}": "busybox" for a in APPLETS},
        executable=("bin/busybox", *probes),
    )


def loaded_home(work: Path) -> Path:
    """``work/home`` holding :data:`IMAGE` (skips as :func:`homes.loaded_home` does, or
    when the probes cannot be built)."""
    from tests.integration import homes

    homes.require_containers()
    return homes.loaded_home(work, [image_layer()], IMAGE)


def remove_everything(home: Path) -> list[str]:
    """Take down every stack and container of ``home``; what was still there."""
    from envkit.runtime import state
    from envkit.stack import down
    from envkit.stack import state as ss

    left = []
    old = os.environ.get("ENVKIT_HOME")
    os.environ["ENVKIT_HOME"] = str(home)
    try:
        for stack in ss.all_stacks():
            left.append(f"stack {stack.name}")
            down(stack.name, volumes=True)
        for record in state.all_states():
            left.append(f"container {record.name}")
            subprocess.run(
                [sys.executable, "-m", "envkit", "rm", "-f", record.id],
                env={**os.environ, "ENVKIT_HOME": str(home)},
                capture_output=True,
                timeout=60,
                check=False,
            )
    finally:
        if old is None:
            os.environ.pop("ENVKIT_HOME", None)
        else:
            os.environ["ENVKIT_HOME"] = old
    return left


def envkit_argv() -> str:
    """The envkit command line for a shell: this interpreter, ``-m envkit``."""
    return f"{shlex.quote(sys.executable)} -m envkit"


# -- an interactive shell on a real pty -------------------------------------------------


class Shell:
    """``sh -i`` on a new pty (its controlling terminal), driven through the master as a
    user types. ``run`` types one command line and waits for its exit status."""

    def __init__(self, cwd: Path, env: Mapping[str, str]) -> None:
        full = {k: v for k, v in os.environ.items() if k != "ENVKIT_DEBUG"}
        full.update({"PS1": "$ ", "PS2": "> ", "TERM": "dumb", **env})
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover - the child becomes the shell
            try:
                os.chdir(cwd)
                os.execve("/bin/sh", ["sh", "-i"], full)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.transcript = b""
        self._seen = 0
        self._count = 0

    def _read(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([self.fd], [], [], min(left, 0.2))
        if ready:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"the shell went away; transcript:\n{self.text()}")
            self.transcript += chunk
        return True

    def wait_for(self, pattern: bytes, timeout: float) -> re.Match[bytes]:
        """Read until ``pattern`` (a regex) matches output not consumed yet."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            found = regex.search(self.transcript, self._seen)
            if found:
                self._seen = found.end()
                return found
            if not self._read(deadline):
                raise AssertionError(
                    f"no {pattern!r} from the pty shell within {timeout} s; "
                    f"transcript:\n{self.text()}"
                )

    def start(self, line: str) -> str:
        """Type ``line`` followed by an echo of its exit status; the token to wait for."""
        self._count += 1
        token = f"END{self._count}x{os.getpid()}"
        # The echo of the typed line shows "$?"; only the output has digits after the token.
        os.write(self.fd, f"{line}; echo {token}-$?\n".encode())
        return token

    def finish(self, token: str, timeout: float) -> int:
        found = self.wait_for(token.encode() + rb"-(\d+)", timeout)
        return int(found.group(1))

    def run(self, line: str, timeout: float = 60) -> int:
        return self.finish(self.start(line), timeout)

    def pump(self, seconds: float) -> None:
        """Read what the shell writes for up to ``seconds`` (keeps the pty drained)."""
        self._read(time.monotonic() + seconds)

    def foreground_group(self) -> int:
        return os.tcgetpgrp(self.fd)

    def text(self, limit: int | None = 6000) -> str:
        """What the terminal showed (its last ``limit`` characters, for messages)."""
        text = self.transcript.decode(errors="replace")
        return text if limit is None else text[-limit:]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.fd, b"exit\n")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            with contextlib.suppress(AssertionError):  # end of file: it is gone
                self._read(time.monotonic() + 0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


# -- reading the probes' reports ---------------------------------------------------------


@dataclass
class StiReport:
    started: bool
    injected: int | None
    lines: list[str]


_STI_LINE = re.compile(r"STI-START|STI target=.*|STI-RESULT injected=(\d+)")


def sti_report(output: str) -> StiReport:
    """The sti probe's lines, wherever they are in ``output`` (after a shell prompt, a
    stack's ``service | `` prefix or a build's step prefix)."""
    lines, injected = [], None
    for line in output.splitlines():
        found = _STI_LINE.search(line)
        if found:
            lines.append(found.group(0).strip())
            if found.group(1) is not None:
                injected = int(found.group(1))
    return StiReport("STI-START" in lines, injected, lines)


@dataclass
class Attempt:
    name: str
    blocked: bool
    errno: int | None
    detail: str


def attack_report(output: str) -> tuple[dict[str, Attempt], int | None]:
    """The probe's attempts by name, and its count (``None``: it never finished)."""
    attempts: dict[str, Attempt] = {}
    done = None
    for line in output.splitlines():
        parts = line.rstrip("\r").split("\t")
        if parts[0] == "ATTEMPT" and len(parts) >= 4:
            blocked = parts[2] == "blocked"
            errno = int(parts[3]) if blocked else None
            attempts[parts[1]] = Attempt(parts[1], blocked, errno, "\t".join(parts[3:]))
        elif line.startswith("ATTACK-DONE "):
            done = int(line.split()[1])
    return attempts, done


def unescape(text: str) -> bytes:
    """The tracer's escaping back to bytes (``\\xHH``)."""
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode())


def shown(data: bytes) -> str:
    return data.replace(b"\0", b" ").decode(errors="replace")


@dataclass
class Trace:
    """What the tracer saw, by pid."""

    ready: bool = False
    self_exe: str = ""
    busybox: str = ""
    scans: int = 0
    new: int = 0
    seize_tries: int = 0
    seize_ok: int = 0
    pids: set[int] = field(default_factory=set)
    cmdlines: dict[int, list[bytes]] = field(default_factory=dict)
    environs: dict[int, list[bytes]] = field(default_factory=dict)
    fds: dict[int, list[tuple[str, bytes]]] = field(default_factory=dict)
    exes: dict[int, list[tuple[str, bytes]]] = field(default_factory=dict)
    seized: dict[int, list[tuple[str, str, bytes]]] = field(default_factory=dict)
    seize_errnos: dict[int, int] = field(default_factory=dict)

    def who(self, pid: int) -> str:
        """A pid as a reader wants it: with the cmdlines it had."""
        seen = " | ".join(shown(c)[:160] for c in self.cmdlines.get(pid, [])) or "?"
        return f"pid {pid} (cmdline: {seen})"


def parse_trace(output: str) -> Trace:
    trace = Trace()
    for raw in output.splitlines():
        line = raw.rstrip("\r")
        if " | " in line.split("\t", 1)[0]:  # a stack's log prefix: "service | "
            line = line.split(" | ", 1)[1]
        parts = line.split("\t")
        kind = parts[0]
        try:
            if kind == "READY":
                trace.ready, trace.self_exe, trace.busybox = True, parts[2], parts[3]
            elif kind == "STAT":
                scans, new, tries, ok = (int(p) for p in parts[1:5])
                trace.scans = max(trace.scans, scans)
                trace.new = max(trace.new, new)
                trace.seize_tries = max(trace.seize_tries, tries)
                trace.seize_ok = max(trace.seize_ok, ok)
            elif kind == "NEW":
                trace.pids.add(int(parts[1]))
            elif kind == "CMD":
                trace.cmdlines.setdefault(int(parts[1]), []).append(unescape(parts[2]))
            elif kind == "ENV":
                trace.environs.setdefault(int(parts[1]), []).append(unescape(parts[2]))
            elif kind == "FD":
                trace.fds.setdefault(int(parts[1]), []).append((parts[2], unescape(parts[3])))
            elif kind == "EXE":
                trace.exes.setdefault(int(parts[1]), []).append((parts[2], unescape(parts[3])))
            elif kind == "SEIZE" and parts[2] in ("ok", "ok-gone"):
                pid = int(parts[1])
                held = (parts[2], parts[3], unescape(parts[4]))
                trace.seized.setdefault(pid, []).append(held)
            elif kind == "SEIZE":
                trace.seize_errnos[int(parts[1])] = int(parts[3])
        except (IndexError, ValueError):
            continue  # a line cut by the log reader: the next one counts
    return trace


def host_exe_ids() -> set[str]:
    """dev:ino of this host's Python interpreter (what the helpers start as)."""
    ids = set()
    for path in (os.path.realpath(sys.executable), "/proc/self/exe", sys.executable):
        st = os.stat(path)
        ids.add(f"{st.st_dev}:{st.st_ino}")
    return ids


def host_needles(home: Path, secrets: Iterable[str] = ()) -> list[bytes]:
    """Strings that only the host has: secrets of the caller, ENVKIT_HOME, the venv,
    the repository, this interpreter, pytest's temp dirs."""
    needles = [*secrets, str(home), sys.prefix, str(REPO), os.path.realpath(sys.executable)]
    needles += ["python", "/.venv", "/tmp/pytest-of-", "ENVKIT_HOME", "PYTEST_"]
    return [n.encode() for n in needles if n]


CONTAINER_TOPS = {"", "dev", "proc", "sys", "tmp", "run", "bin", "etc", "probes", "mnt"}


def host_fd(link: bytes, needles: Sequence[bytes]) -> bool:
    """Whether an fd's link target names something of the host, not of the container."""
    if any(n in link for n in needles):
        return True
    if not link.startswith(b"/") or link.startswith(b"/memfd:"):
        return False  # pipe:[..], socket:[..], anon_inode:..., a cloned binary's memfd
    top = link.split(b"/")[1].decode(errors="replace")
    return top not in CONTAINER_TOPS and not link.startswith(b"/root")


def excerpt(data: bytes, needle: bytes, width: int = 60) -> str:
    at = data.find(needle)
    return shown(data[max(0, at - width) : at + len(needle) + width])


KINDS = (
    "caller's secret in environ",
    "PTRACE_SEIZE of a host process",
    "host executable opened through /proc/N/exe",
    "fd to a host file",
    "host path or caller variable in environ",
    "host path in cmdline",
)


def trace_leaks(
    trace: Trace, needles: Sequence[bytes], host_exes: set[str], secrets: Sequence[bytes]
) -> list[str]:
    """Everything the tracer got hold of that belongs to the host: a count per kind
    (:data:`KINDS`), then one line per kind and pid, the worst kinds first."""
    found: dict[str, dict[int, set[str]]] = {kind: {} for kind in KINDS}

    def add(kind: str, pid: int, detail: str) -> None:
        found[kind].setdefault(pid, set()).add(detail)

    for pid, values in trace.environs.items():
        for value in values:
            for needle in needles:
                if needle in value:
                    kind = KINDS[0] if needle in secrets else KINDS[4]
                    add(kind, pid, f"...{excerpt(value, needle, 40)}...")
    for pid, values in trace.cmdlines.items():
        for value in values:
            hits = [n.decode() for n in needles if n in value]
            if hits:
                add(KINDS[5], pid, ", ".join(repr(h) for h in hits))
    for pid, links in trace.fds.items():
        for fd, link in links:
            if host_fd(link, needles):
                add(KINDS[3], pid, f"fd {fd} -> {shown(link)}")
    for pid, exes in trace.exes.items():
        for dev_ino, link in exes:
            if dev_ino in host_exes or any(n in link for n in needles):
                add(KINDS[2], pid, f"{shown(link)} ({dev_ino})")
    own = {trace.self_exe, trace.busybox}
    for pid, seizes in trace.seized.items():
        for how, dev_ino, cmdline in seizes:
            # "ok-gone" with no exe: it ended while held, nothing is known of it.
            if dev_ino not in own and (how == "ok" or not dev_ino.startswith("-")):
                add(
                    KINDS[1], pid, f"held it stopped; exe {dev_ino}, cmdline {shown(cmdline)[:120]}"
                )
    lines = [f"{kind}: {len(pids)} processes" for kind, pids in found.items() if pids]
    for kind, pids in found.items():
        for pid in sorted(pids)[:6]:
            lines.append(f"  [{kind}] {trace.who(pid)}: {'; '.join(sorted(pids[pid]))[:400]}")
        if len(pids) > 6:
            lines.append(f"  [{kind}] ... and {len(pids) - 6} more processes")
    return lines
