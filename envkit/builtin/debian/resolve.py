"""Which packages a bootstrap installs: the variant's base set, the requested packages,
and everything they depend on.

Like debootstrap and mmdebstrap: ``essential`` is every ``Essential: yes`` package,
``apt`` adds apt, ``minbase``/``required`` add every ``Priority: required`` package,
``important`` and ``standard`` add those priorities, ``buildd`` adds build-essential.
Dependencies (Pre-Depends and Depends) are followed transitively: for alternatives the
first satisfiable one is taken (one already selected wins); a virtual name is satisfied
by a package that Provides it (the alphabetically first, unless one is selected).
Conflicts and Breaks are not considered. The result is sorted by name.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from envkit.builtin.debian.packages import Alternatives, Package, PackageIndex, Relation
from envkit.builtin.debian.version import version_key
from envkit.errors import PackageNotFoundError, UnsatisfiableError

_PRIORITIES = {
    "essential": (),
    "apt": (),
    "buildd": (),
    "minbase": ("required",),
    "required": ("required",),
    "important": ("required", "important"),
    "standard": ("required", "important", "standard"),
}
_EXTRA = {"essential": (), "buildd": ("apt", "build-essential")}


def variant_seeds(index: PackageIndex, variant: str) -> list[str]:
    """The names a bootstrap ``variant`` starts from (before dependencies)."""
    if variant not in _PRIORITIES:
        raise PackageNotFoundError(
            f"unknown Debian bootstrap variant {variant!r}",
            hint="use one of: " + ", ".join(_PRIORITIES),
        )
    priorities = _PRIORITIES[variant]
    names = {
        pkg.name for pkg in index if pkg.essential or (priorities and pkg.priority in priorities)
    }
    names.update(_EXTRA.get(variant, ("apt",)))
    return sorted(names)


def parse_request(text: str) -> Relation:
    """``name`` or ``name=version`` (as apt-get takes it) as a relation."""
    name, sep, version = text.partition("=")
    return Relation(name, "=", version) if sep else Relation(name)


class _Resolver:
    def __init__(self, index: PackageIndex) -> None:
        self.index = index
        self.selected: dict[str, Package] = {}
        self.provided: dict[str, list[Package]] = {}

    def real(self, rel: Relation) -> Package | None:
        candidates = [p for p in self.index.by_name.get(rel.name, []) if rel.accepts(p.version)]
        if not candidates:
            return None
        return max(candidates, key=lambda p: version_key(p.version))

    def met(self, rel: Relation) -> bool:
        have = self.selected.get(rel.name)
        if have is not None and rel.accepts(have.version):
            return True
        return any(
            prov.name == rel.name and rel.accepts(prov.version)
            for pkg in self.provided.get(rel.name, [])
            for prov in pkg.provides
        )

    def provider(self, rel: Relation) -> Package | None:
        offers = self.index.providers.get(rel.name, [])
        found = sorted(
            (pkg for pkg, prov in offers if rel.accepts(prov.version)),
            key=lambda p: (p.name, version_key(p.version)),
        )
        return found[0] if found else None

    def choose(self, alts: Alternatives) -> Package | None:
        if any(self.met(rel) for rel in alts):
            return None
        for rel in alts:
            pkg = self.real(rel) or self.provider(rel)
            if pkg is not None and pkg.name not in self.selected:
                return pkg
        return self._unmet(alts)

    def _unmet(self, alts: Alternatives) -> Package:
        raise UnsatisfiableError(" | ".join(str(r) for r in alts))

    def add(self, pkg: Package) -> None:
        self.selected[pkg.name] = pkg
        for prov in pkg.provides:
            self.provided.setdefault(prov.name, []).append(pkg)


def resolve(
    index: PackageIndex, seeds: Iterable[str], requested: Sequence[str] = ()
) -> list[Package]:
    """The full package set for ``seeds`` (names that must exist, e.g. a variant's) and
    ``requested`` (``name`` or ``name=version``), sorted by name.

    Raises :class:`PackageNotFoundError` for a requested name the index lacks and
    :class:`UnsatisfiableError` naming the package whose dependency cannot be met.
    """
    r = _Resolver(index)
    queue: deque[Package] = deque()
    wanted = [Relation(name) for name in seeds] + [parse_request(t) for t in requested]
    for rel in wanted:
        pkg = r.real(rel) or (r.provider(rel) if rel.op is None else None)
        if pkg is None:
            raise _not_found(index, rel)
        if pkg.name in r.selected:
            if r.selected[pkg.name] != pkg:
                raise UnsatisfiableError(
                    f"package {rel.name!r} is requested in two versions",
                    hint="ask for each package once",
                )
            continue
        r.add(pkg)
        queue.append(pkg)
    while queue:
        pkg = queue.popleft()
        for alts in pkg.requires:
            try:
                dep = r.choose(alts)
            except UnsatisfiableError as exc:
                raise UnsatisfiableError(
                    f"{pkg} depends on {exc.message}, which no package of the index provides",
                    hint="the index may be mid-update (try again later), or ask for another "
                    f"version of {pkg.name}; a different mirror or suite may have it",
                ) from None
            if dep is not None:
                r.add(dep)
                queue.append(dep)
    return sorted(r.selected.values(), key=lambda p: p.name)


def _not_found(index: PackageIndex, rel: Relation) -> PackageNotFoundError:
    versions = sorted({p.version for p in index.by_name.get(rel.name, [])}, key=version_key)
    if versions:
        return PackageNotFoundError(
            f"package {rel.name!r} has no version {rel.version!r} in the index "
            f"(it has: {', '.join(versions)})",
            hint=f'ask for "{rel.name}" or "{rel.name}={versions[-1]}"',
        )
    return PackageNotFoundError(
        f"package {rel.name!r} is not in the index",
        hint="check the name (`apt-cache search` on a Debian host), the suite and the mirror",
    )
