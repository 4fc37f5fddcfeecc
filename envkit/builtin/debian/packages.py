"""The Packages index of one suite, component and architecture.

Only the fields the bootstrap needs are kept. Relations are parsed into alternatives of
:class:`Relation`; architecture qualifiers (``python3:any``) and restriction lists are
dropped, since a bootstrap is for the native architecture only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Any

from envkit.builtin.debian.control import paragraphs
from envkit.builtin.debian.version import satisfies
from envkit.plugins.overrides import override
from envkit.records import Value

_RELATION = re.compile(
    r"^([a-z0-9][a-z0-9+.\-]*)(?::[a-z0-9\-]+)?"  # name, architecture qualifier dropped
    r"\s*(?:\(\s*([<>=]+)\s*([^)\s]+)\s*\))?"  # optional (op version)
)


class Relation(Value):
    """One package name, optionally with a version constraint (``libc6 (>= 2.36)``)."""

    name: str
    op: str | None = None
    version: str | None = None

    def accepts(self, version: str | None) -> bool:
        """Whether ``version`` (``None``: an unversioned Provides) meets the constraint."""
        if self.op is None or self.version is None:
            return True
        if version is None:
            return False
        return satisfies(version, self.op, self.version)

    @override
    def __str__(self) -> str:
        return self.name if self.op is None else f"{self.name} ({self.op} {self.version})"


#: One dependency: any one of its alternatives satisfies it (``a | b``).
Alternatives = tuple[Relation, ...]


class Package(Value):
    """One binary package as the index describes it.

    ``depends_text`` and ``pre_depends_text`` are the fields as the index spells them,
    parsed on first use (:attr:`depends`, :attr:`pre_depends`): a bootstrap reads a
    hundred of the sixty thousand packages of an index, and parsing every relation
    took most of the time of loading it.
    """

    __slots__ = ("__dict__",)  # where cached_property keeps the parsed relations

    name: str
    version: str
    architecture: str
    filename: str
    sha256: str
    size: int
    priority: str = "optional"
    essential: bool = False
    depends_text: str = ""
    pre_depends_text: str = ""
    provides: tuple[Relation, ...] = ()

    @cached_property
    def depends(self) -> tuple[Alternatives, ...]:
        """``Depends``, parsed."""
        return parse_relations(self.depends_text)

    @cached_property
    def pre_depends(self) -> tuple[Alternatives, ...]:
        """``Pre-Depends``, parsed."""
        return parse_relations(self.pre_depends_text)

    @property
    def requires(self) -> tuple[Alternatives, ...]:
        """Pre-Depends then Depends: what must be installed with it."""
        return self.pre_depends + self.depends

    @override
    def __str__(self) -> str:
        return f"{self.name}={self.version}"


def parse_relations(text: str) -> tuple[Alternatives, ...]:
    """``a (>= 1) | b, c`` -> ``((a>=1, b), (c,))``."""
    out: list[Alternatives] = []
    for group in text.split(","):
        alts: list[Relation] = []
        for alt in group.split("|"):
            match = _RELATION.match(alt.strip())
            if match is None:
                continue
            name, op, version = match.groups()
            alts.append(Relation(name, op, version))
        if alts:
            out.append(tuple(alts))
    return tuple(out)


def parse_package(fields: dict[str, str]) -> Package | None:
    """A :class:`Package` from one index paragraph; ``None`` when a needed field is missing."""
    try:
        name = fields["Package"]
        version = fields["Version"]
        filename = fields["Filename"]
        sha256 = fields["SHA256"]
        size = int(fields["Size"])
    except (KeyError, ValueError):
        return None
    return Package(
        name=name,
        version=version,
        architecture=fields.get("Architecture", ""),
        filename=filename,
        sha256=sha256.lower(),
        size=size,
        priority=fields.get("Priority", "optional"),
        essential=fields.get("Essential", "").lower() == "yes",
        depends_text=fields.get("Depends", ""),
        pre_depends_text=fields.get("Pre-Depends", ""),
        provides=_provides(fields.get("Provides", "")),
    )


def _provides(text: str) -> tuple[Relation, ...]:
    return tuple(alt[0] for alt in parse_relations(text)) if text else ()


class PackageIndex:
    """The packages of an index by name, and who provides each virtual name."""

    def __init__(self, packages: Iterable[Package]) -> None:
        self.by_name: dict[str, list[Package]] = {}
        self.providers: dict[str, list[tuple[Package, Relation]]] = {}
        for pkg in packages:
            self.by_name.setdefault(pkg.name, []).append(pkg)
            for prov in pkg.provides:
                self.providers.setdefault(prov.name, []).append((pkg, prov))

    @classmethod
    def parse(cls, text: str, architecture: str = "amd64") -> PackageIndex:
        """The index of a Packages file's text, keeping ``architecture`` and ``all``."""
        return cls(_packages(text, architecture))

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_name.values())

    def __iter__(self) -> Iterator[Package]:
        for versions in self.by_name.values():
            yield from versions


def _packages(text: str, architecture: str) -> Iterator[Package]:
    for fields in paragraphs(text):
        if fields.get("Architecture", "") not in (architecture, "all"):
            continue
        pkg = parse_package(fields)
        if pkg is not None:
            yield pkg


def _rel_json(rel: Relation) -> list[str | None]:
    return [rel.name, rel.op, rel.version]


def _rel_from(data: list[str | None]) -> Relation:
    return Relation(str(data[0]), data[1], data[2])


def package_to_json(pkg: Package) -> dict[str, object]:
    """A JSON-ready form of ``pkg`` (the resolution cache stores it)."""
    return {
        "name": pkg.name,
        "version": pkg.version,
        "architecture": pkg.architecture,
        "filename": pkg.filename,
        "sha256": pkg.sha256,
        "size": pkg.size,
        "priority": pkg.priority,
        "essential": pkg.essential,
        "depends": pkg.depends_text,
        "pre_depends": pkg.pre_depends_text,
        "provides": [_rel_json(r) for r in pkg.provides],
    }


def package_from_json(data: dict[str, Any]) -> Package:
    """The inverse of :func:`package_to_json` (``ValueError`` for another layout)."""
    if not isinstance(data["depends"], str) or not isinstance(data["pre_depends"], str):
        raise ValueError("relations are not in the index's spelling")
    return Package(
        name=str(data["name"]),
        version=str(data["version"]),
        architecture=str(data["architecture"]),
        filename=str(data["filename"]),
        sha256=str(data["sha256"]),
        size=int(data["size"]),
        priority=str(data["priority"]),
        essential=bool(data["essential"]),
        depends_text=data["depends"],
        pre_depends_text=data["pre_depends"],
        provides=tuple(_rel_from(r) for r in data["provides"]),
    )
