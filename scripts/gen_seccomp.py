#!/usr/bin/python3
"""Compile Docker's default seccomp profile into the BPF files envkit ships.

Run with the system interpreter, which sees libseccomp's bindings (Debian package
``python3-seccomp``): ``/usr/bin/python3 scripts/gen_seccomp.py`` (``--check`` compares
instead of writing; exit 1 on a difference). The venv's interpreter works too: the
bindings are looked up in /usr/lib/python3/dist-packages.

Input: ``envkit/runtime/seccomp_profile/default.json``, a verbatim copy of
``seccomp/default.json`` of github.com/moby/profiles at commit
3c28324314729dbade8287e868eef6338c42807a (tag seccomp/v0.2.3; the same file moby/moby
vendors at b985e2313a8676e18072b442911fc8f64f17d440). To update it, copy the new file
over it, change ``PROFILE_COMMIT`` in ``envkit/runtime/seccomp.py`` and rerun this.

Output, for x86_64 (with i386 and x32) and aarch64 (with arm):

- ``envkit/runtime/seccomp_profile/<arch>-default.bpf``: envkit's default capabilities;
- ``<arch>-default+<CAP>.bpf``: the same plus one capability the profile names;
- ``index.json``: what exists, the libseccomp version that compiled it, the profile
  names this libseccomp does not know (left to the default action, as runc does);
- ``tests/unit/runtime/data/seccomp_syscalls_<arch>.json``: libseccomp's syscall name -> number
  table of each architecture in the filters, for the table test.

The compilation itself is :func:`envkit.runtime.seccomp.compile_bpf`, the same code the
runtime falls back on for a capability set with no file. Its output is deterministic.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from envkit.runtime import seccomp  # noqa: E402

DATA = os.path.join(ROOT, "tests", "unit", "runtime", "data")
#: Syscall number ranges scanned for the name tables (x32 adds its bit; arm's private
#: calls live at 0x0f0000).
SCAN = {
    "SCMP_ARCH_X86_64": [range(0, 1024)],
    "SCMP_ARCH_X86": [range(0, 1024)],
    "SCMP_ARCH_X32": [range(0x40000000, 0x40000000 + 1024)],
    "SCMP_ARCH_AARCH64": [range(0, 1024)],
    "SCMP_ARCH_ARM": [range(0, 1024), range(0x0F0000, 0x0F0010)],
}


def libseccomp_version() -> str:
    class Version(ctypes.Structure):
        _fields_ = (("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint))

    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_version.restype = ctypes.POINTER(Version)
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def syscall_table(sc: object, arch: str, names: set[str]) -> dict[str, int]:
    """libseccomp's name -> number table of ``arch``: every number it names in the scanned
    ranges, plus any name of the profile that has a number of its own there."""
    token = getattr(sc.Arch, arch.removeprefix("SCMP_ARCH_"))  # type: ignore[attr-defined]
    table: dict[str, int] = {}
    for numbers in SCAN[arch]:
        for number in numbers:
            try:
                name = sc.resolve_syscall(token, number)  # type: ignore[attr-defined]
            except ValueError:
                continue
            table.setdefault(name.decode(), number)
    for name in names:  # outside the scanned ranges; not a multiplexer's number
        number = sc.resolve_syscall(token, name)  # type: ignore[attr-defined]
        if number >= 0 and sc.resolve_syscall(token, number).decode() == name:  # type: ignore[attr-defined]
            table.setdefault(name, number)
    return dict(sorted(table.items()))


def outputs() -> dict[str, bytes]:
    """Every generated file, by path relative to the repository."""
    sc = seccomp.import_libseccomp()
    profile = seccomp.load_profile()
    named_caps = sorted(
        {
            cap
            for call in profile["syscalls"]
            for side in ("includes", "excludes")
            for cap in (call.get(side) or {}).get("caps") or ()
        }
    )
    if set(named_caps) != seccomp.PROFILE_CAPS:
        sys.exit(f"update PROFILE_CAPS in envkit/runtime/seccomp.py to {named_caps}")
    cap_sets = {"default": seccomp.DEFAULT_CAPS}
    for cap in named_caps:
        if cap not in seccomp.DEFAULT_CAPS:
            cap_sets[seccomp.filter_key(seccomp.DEFAULT_CAPS | {cap})] = seccomp.DEFAULT_CAPS | {
                cap
            }
    names = {name for call in profile["syscalls"] for name in call["names"]}
    files: dict[str, bytes] = {}
    index: dict[str, object] = {
        "profile": "default.json",
        "source": {
            "repository": "github.com/moby/profiles",
            "path": "seccomp/default.json",
            "commit": seccomp.PROFILE_COMMIT,
            "name": seccomp.profile_name(),
        },
        "libseccomp": libseccomp_version(),
        "default_caps": sorted(seccomp.DEFAULT_CAPS),
        "profile_caps": named_caps,
        "refused_ioctls": [hex(request) for request in seccomp.REFUSED_IOCTLS],
        "machines": {},
    }
    machines: dict[str, object] = {}
    for machine in sorted(seccomp.ARCHES):
        entry: dict[str, object] = {}
        filters: dict[str, object] = {}
        unresolved: set[str] = set()
        for key, caps in sorted(cap_sets.items()):
            config = seccomp.oci_config(profile, machine, caps)
            raw, missing = seccomp.compile_bpf(config, sc)
            unresolved.update(missing)
            name = os.path.basename(seccomp.bpf_path(machine, key))
            files[os.path.join("envkit", "runtime", "seccomp_profile", name)] = raw
            filters[key] = {
                "file": name,
                "caps": sorted(caps & seccomp.PROFILE_CAPS),
                "instructions": len(raw) // 8,
                "sha256": hashlib.sha256(raw).hexdigest(),
            }
            entry["architectures"] = config["architectures"]
        entry["filters"] = filters
        entry["unresolved"] = sorted(unresolved)
        machines[machine] = entry
        for arch in entry["architectures"]:  # type: ignore[attr-defined]
            table = syscall_table(sc, arch, names)
            label = arch.removeprefix("SCMP_ARCH_").lower()
            path = os.path.join(
                "tests", "unit", "runtime", "data", f"seccomp_syscalls_{label}.json"
            )
            files[path] = (json.dumps(table, indent=1) + "\n").encode()
    index["machines"] = machines
    index_path = os.path.join("envkit", "runtime", "seccomp_profile", "index.json")
    files[index_path] = (json.dumps(index, indent=1, sort_keys=True) + "\n").encode()
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    differ = []
    for rel, data in sorted(outputs().items()):
        path = os.path.join(ROOT, rel)
        try:
            with open(path, "rb") as f:
                same = f.read() == data
        except FileNotFoundError:
            same = False
        if same:
            continue
        differ.append(rel)
        if not args.check:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
    verb = "differ" if args.check else "written"
    print(f"{len(differ)} file(s) {verb}" + "".join(f"\n  {rel}" for rel in differ))
    return 1 if args.check and differ else 0


if __name__ == "__main__":
    sys.exit(main())
