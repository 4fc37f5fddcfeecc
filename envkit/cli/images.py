"""Store commands: ``images``, ``inspect``, ``tag``, ``rmi``, ``prune``, ``fsck``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from envkit.cli import shown
from envkit.plugins.interfaces import Command

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.runtime.state import ContainerState
    from envkit.store.gc import ImageUser
    from envkit.store.store import ImageRecord, Store


def _store() -> Store:
    from envkit.store.store import Store

    return Store.default()


def _split_ref(ref: str) -> tuple[str, str]:
    """(repository, tag) as docker shows them, ``<none>`` for an untagged image."""
    from envkit.oci.reference import parse

    if not ref:
        return "<none>", "<none>"
    parsed = parse(ref)
    repo = parsed.familiar.rsplit(":", 1)[0] if parsed.tag else parsed.familiar
    return repo, parsed.tag or "<none>"


def _short_id(digest: str, no_trunc: bool) -> str:
    return digest if no_trunc else digest.split(":", 1)[1][:12]


class ImagesCommand:
    name = "images"
    help = "list the images in the local store"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "repository", nargs="?", help="only images of this repository (name or name:tag)"
        )
        parser.add_argument("-q", "--quiet", action="store_true", help="only image ids")
        parser.add_argument("--digests", action="store_true", help="show manifest digests")
        parser.add_argument("--no-trunc", action="store_true", help="show full image ids")
        parser.add_argument("--format", choices=["table", "json"], default="table")

    def run(self, args: argparse.Namespace) -> int:
        records = _filter(_store().images(), args.repository)
        if args.quiet:
            seen: set[str] = set()
            for r in records:
                short = _short_id(r.config_digest, args.no_trunc)
                if short not in seen:
                    seen.add(short)
                    print(short)
            return 0
        rows = [_row(r, args.no_trunc) for r in records]
        if args.format == "json":
            # One object per line, as `docker images --format json` prints.
            for row in rows:
                print(json.dumps(row, sort_keys=True))
            return 0
        columns = ["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else [])]
        columns += ["IMAGE ID", "CREATED", "SIZE"]
        keys = ["Repository", "Tag", *(["Digest"] if args.digests else [])]
        keys += ["ID", "CreatedSince", "Size"]
        shown.table([columns, *([str(row[k]) for k in keys] for row in rows)])
        return 0


def _filter(records: list[ImageRecord], wanted: str | None) -> list[ImageRecord]:
    if not wanted:
        return records
    from envkit.oci.reference import parse

    parsed = parse(wanted, default_tag=False)
    out = []
    for r in records:
        if not r.ref:
            continue
        ref = parse(r.ref)
        if ref.name == parsed.name and (parsed.tag is None or parsed.tag == ref.tag):
            out.append(r)
    return out


def _row(record: ImageRecord, no_trunc: bool) -> dict[str, Any]:
    from envkit.store.timestamps import human_size, since

    repo, tag = _split_ref(record.ref)
    return {
        "Repository": repo,
        "Tag": tag,
        "Ref": record.ref,
        "Digest": record.manifest.digest,
        "ID": _short_id(record.config_digest, no_trunc),
        "CreatedAt": record.created,
        "CreatedSince": since(record.created),
        "Size": human_size(record.size),
        "SizeBytes": record.size,
    }


class InspectCommand:
    name = "inspect"
    help = (
        "show a container's record and security profile, or an image's refs, manifest, "
        "config and layers, as JSON"
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "images",
            nargs="+",
            metavar="NAME",
            help="container name or id, or image name, id or digest",
        )

    def run(self, args: argparse.Namespace) -> int:
        from envkit.runtime import state as st
        from envkit.store.inspect import inspect_image

        containers = {s.name: s for s in st.all_states()}
        containers.update({s.id: s for s in containers.values()})
        store = None
        found: list[object] = []
        for name in args.images:
            record = containers.get(name)
            if record is not None:
                found.append(_inspect_container(record))
                continue
            if store is None:
                store = _store()
            with store.shared():
                found.append(inspect_image(store, name))
        print(json.dumps(found, indent=4))
        return 0


def _inspect_container(record: ContainerState) -> dict[str, object]:
    """A container's record, with the security profile it runs under (as docker's
    ``HostConfig.SecurityOpt``)."""
    from envkit.runtime import caps, seccomp

    return {
        **record.to_dict(),
        "Security": {
            "Seccomp": seccomp.profile_name() if record.seccomp else "unconfined",
            "Capabilities": caps.names(
                caps.DEFAULT if record.capabilities is None else frozenset(record.capabilities)
            ),
            "NoNewPrivileges": True,
        },
    }


class TagCommand:
    name = "tag"
    help = "give an image another name: envkit tag SOURCE TARGET"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("source", help="name, id or digest of an image in the store")
        parser.add_argument("target", help="new name[:tag]")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.oci.reference import parse

        parse(args.target)  # reject a bad target before touching the store
        store = _store()
        with store.shared():
            store.tag(args.target, store.resolve(args.source))
        return 0


class RmiCommand:
    name = "rmi"
    help = "remove image names; an image's content goes with its last name"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("images", nargs="+", metavar="IMAGE", help="name, id or digest")
        parser.add_argument(
            "-f",
            "--force",
            action="store_true",
            help="untag an image a container uses (the image stays for the container)",
        )
        parser.epilog = (
            "A name untags that name; an id or digest removes every name of the image. "
            "An image's content goes with its last name. Conflicts, as docker decides "
            "them: the last name of an image a container uses (running or stopped) is "
            'refused ("conflict: unable to remove repository reference NAME (must force) - '
            'container ID is using its referenced image ID"); with -f the name goes and '
            "the image stays, unnamed (<none>), for the container, until `envkit prune` "
            "after the container is removed. By id or digest, a stopped container's image "
            'is refused unless -f ("unable to delete ID (must be forced) - image is being '
            "used by stopped container ID\") and a running container's image even with -f "
            '("(cannot be forced) - image is being used by running container ID"). Every '
            "IMAGE is checked before anything is removed."
        )

    def run(self, args: argparse.Namespace) -> int:
        from envkit.oci.reference import parse

        store = _store()
        with store.shared():
            for image in args.images:  # all must exist before anything is removed
                store.resolve(image)
        users = _image_users()
        for image in args.images:
            report = store.remove(image, force=args.force, users=users)
            for ref in report.untagged:
                print(f"Untagged: {parse(ref).familiar}")
            for digest in report.deleted:
                print(f"Deleted: {digest}")
        return 0


def _image_users(*, reap: bool = True) -> list[ImageUser]:
    """Every container envkit knows (running or stopped) with the image it uses
    (``reap``: records of killed runs finished first, so ``running`` is right)."""
    from envkit.runtime import state
    from envkit.store.gc import ImageUser

    if reap:
        from envkit.container.handle import reap as reap_records

        reap_records()
    return [
        ImageUser(s.image_id, s.id, s.name, s.running) for s in state.all_states() if s.image_id
    ]


class PruneCommand:
    name = "prune"
    help = (
        "remove content no image name reaches, images `rmi -f` left for containers that "
        "are gone, snapshots nothing uses, and what interrupted builds, runs and pulls left"
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        from envkit.build import sweep
        from envkit.build.cache import prune_cache
        from envkit.container.handle import reap
        from envkit.store.gc import drop_dangling
        from envkit.store.timestamps import human_size

        # Killed commands' records finished and their network daemons stopped when nothing
        # needs them (a killed `up` leaves a holder under a dead lease), before the lock.
        reap()
        store = _store()
        with store.exclusive():  # no build or run may start between these
            dangling = drop_dangling(store, _image_users(reap=False))
            steps = prune_cache(store)
            report = store.prune()
            swept = sweep.collect(store)
        for digest in dangling:
            print(f"Deleted dangling image: {digest}")
        if steps.removed:
            print(f"Deleted {len(steps.removed)} cached build step(s)")
        for digest in report.removed_blobs:
            print(f"Deleted: {digest}")
        for name in report.removed_tmp:
            print(f"Deleted: {name}")
        for path in [*swept.snapshots, *swept.partial_snapshots]:
            print(f"Deleted snapshot: {path}")
        for path in [*swept.leftovers, *swept.runtime_dirs]:
            if path not in swept.partial_snapshots:
                print(f"Deleted leftover: {path}")
        for line in _context_lines(swept.context_snapshots):
            print(f"Deleted {line}")
        if swept.snapshots_kept:
            print(f"Kept unused snapshots: {swept.snapshots_kept}")
        freed = report.freed_bytes + steps.freed_bytes + swept.freed_bytes
        print(f"Total reclaimed space: {human_size(freed)}")
        return 0


def _context_lines(paths: list[str]) -> list[str]:
    """What was removed of build context snapshots: whole ones (index and blobs of a
    context that is gone) by path, unreferenced blobs as a count."""
    whole = [p for p in paths if p.endswith((".json", ".files"))]
    lines = [f"build context snapshot {p}" for p in whole if p.endswith(".files")]
    lines += [f"build context index {p}" for p in whole if p.endswith(".json")]
    blobs = len(paths) - len(whole)
    if blobs:
        lines.append(f"{blobs} unused build context snapshot file" + "s" * (blobs != 1))
    return lines


class FsckCommand:
    name = "fsck"
    help = "check the store for corrupt, missing or half-written content"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--repair",
            action="store_true",
            help="remove what is broken (and the names of images left incomplete), and "
            "what killed builds and runs left",
        )

    def run(self, args: argparse.Namespace) -> int:
        from envkit.build import sweep

        store = _store()
        report = store.fsck(repair=args.repair)
        if args.repair:
            with store.exclusive():
                swept = sweep.collect(store, snapshots=False)
            for path in [*swept.leftovers, *swept.runtime_dirs]:
                report.repaired.append(f"removed leftover {path}")
            for line in _context_lines(swept.context_snapshots):
                report.repaired.append(f"removed {line}")
            leftovers: list[str] = []
            spare: list[str] = []
        else:
            with store.shared():
                swept = sweep.check(store)
            leftovers, spare = swept.leftovers, swept.runtime_dirs
        problems = [
            *report.layout_errors,
            *(f"corrupt blob {d}" for d in report.corrupt_blobs),
            *(f"missing blob {d}" for d in report.missing_blobs),
            *(f"leftover {p}" for p in report.partial_files),
            *(f"broken ref {r} (image incomplete)" for r in report.broken_refs),
            *(f"leftover {p} (of a killed build or run)" for p in leftovers),
        ]
        for line in problems:
            print(line)
        for path in report.resumable:
            print(f"resumable download {path} (the next pull continues it; prune removes it)")
        for path in spare:
            print(f"unused runtime dir {path} (prune removes it)")
        for line in report.repaired:
            print(f"repaired: {line}")
        for line in report.remaining:
            print(f"still broken: {line}")
        if report.healthy and not leftovers:
            print(f"{store.root}: ok" + (" (repaired)" if report.repaired else ""))
            return 0
        if not args.repair:
            print("run `envkit fsck --repair` to remove what is broken")
        return 1


COMMANDS: list[Command] = [
    ImagesCommand(),
    InspectCommand(),
    TagCommand(),
    RmiCommand(),
    PruneCommand(),
    FsckCommand(),
]
