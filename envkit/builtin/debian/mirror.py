"""Which Debian mirror to bootstrap from.

In order: the ``mirror=`` parameter, ``ENVKIT_DEBIAN_MIRROR`` (or ``debian_mirror`` in
config.toml), then the mirror the host's apt uses for Debian (``/etc/apt/sources.list``,
``sources.list.d/*.list`` one-line entries and ``*.sources`` deb822 files), so a machine
that reaches Debian through a local mirror or proxy uses it without configuration.
"""

from __future__ import annotations

from pathlib import Path

from envkit import settings
from envkit.builtin.debian.control import paragraphs
from envkit.errors import MirrorError

APT_DIR = Path("/etc/apt")


def choose_mirror(param: str | None, apt_dir: Path = APT_DIR) -> str:
    """The mirror URL to use, without a trailing slash."""
    chosen = param or settings.get("debian_mirror") or _from_apt(apt_dir)
    if not chosen:
        raise MirrorError(
            f"no Debian mirror configured (none in {apt_dir}/sources.list*)",
            hint='pass Image.debian(mirror="http://deb.debian.org/debian") '
            "or set ENVKIT_DEBIAN_MIRROR",
        )
    return chosen.rstrip("/")


def apt_mirrors(apt_dir: Path = APT_DIR) -> list[tuple[str, list[str]]]:
    """``(uri, suites)`` of every ``deb`` source apt uses, in apt's reading order."""
    found: list[tuple[str, list[str]]] = []
    files = [apt_dir / "sources.list"]
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if path.suffix == ".sources":
            found += _deb822_entries(text)
        else:
            found += _one_line_entries(text)
    return found


def _from_apt(apt_dir: Path) -> str:
    entries = apt_mirrors(apt_dir)
    # The archive itself serves suites like "bookworm"; security and updates archives
    # only serve "-security"/"-updates" suites, which cannot be bootstrapped from.
    for uri, suites in entries:
        if any("-" not in s and s != "nodistro" for s in suites) and "security" not in uri:
            return uri
    return ""


def _one_line_entries(text: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2:
            out.append((words[0], [words[1]]))
    return out


def _deb822_entries(text: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for fields in paragraphs(text):
        if "deb" not in fields.get("Types", "").split():
            continue
        if fields.get("Enabled", "yes").lower() == "no":
            continue
        suites = fields.get("Suites", "").split()
        out += [(uri, suites) for uri in fields.get("URIs", "").split()]
    return out
