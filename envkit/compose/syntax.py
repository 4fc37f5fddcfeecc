"""The short and long syntaxes of a compose service's ``ports`` and ``volumes``.

Ports (compose-spec ``05-services.md``, "ports"): ``"3000"``, ``"3000-3005"``,
``"8000:8000"``, ``"9090-9091:8080-8081"``, ``"127.0.0.1:8001:8001"``,
``"[::1]:6001:6001"``, ``"6060:6060/udp"``, a number, or a mapping with ``target``,
``published``, ``host_ip``, ``protocol``, ``mode``, ``name`` and ``app_protocol``.

Volumes ("volumes"): ``"NAME:/path[:MODE]"``, ``"./host:/path[:MODE]"`` or the
mapping form with ``type`` (``volume``, ``bind``, ``tmpfs``), ``source``, ``target``,
``read_only`` and the per-type options.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
from pathlib import Path
from typing import Any

from envkit.compose.errors import Reporter
from envkit.compose.yaml_lines import Map
from envkit.records import Value
from envkit.spec.ports import DEFAULT_HOST_IP, PROTOCOLS, PortMapping

_WINDOWS_PATH_RE = re.compile(r"^[A-Za-z]:[\\/]")
_RANGE_RE = re.compile(r"^([0-9]+)(?:-([0-9]+))?$")
_VOLUME_MODES = {"ro", "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated"}
_PROPAGATION = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}


class MountSpec(Value):
    """One entry of a service's ``volumes``: ``kind`` is volume, bind or tmpfs."""

    kind: str
    source: str  # volume name, absolute host path, or "" (tmpfs, an anonymous volume)
    target: str
    read_only: bool = False
    tmpfs_options: str = ""


def ports(rep: Reporter, where: str, value: Any, line: int) -> list[PortMapping]:
    """Every published port of ``value`` (a list), ranges expanded."""
    if not isinstance(value, list):
        raise rep.error(line, where, "expected a list of ports", 'e.g. ["8000:5000"]')
    found: list[PortMapping] = []
    lines = getattr(value, "lines", [])
    for i, item in enumerate(value):
        item_line = lines[i] if i < len(lines) else line
        item_where = f"{where}[{i}]"
        if isinstance(item, Map):
            found.extend(_long_port(rep, item_where, item))
        elif isinstance(item, int | str) and not isinstance(item, bool):
            found.extend(_short_port(rep, item_where, str(item), item_line))
        else:
            raise rep.error(item_line, item_where, "expected a port string or a mapping")
    return found


def _short_port(rep: Reporter, where: str, text: str, line: int) -> list[PortMapping]:
    spec, proto = text, "tcp"
    if "/" in spec:
        spec, proto = spec.split("/", 1)
    ip = ""
    if spec.startswith("["):
        end = spec.find("]:")
        if end < 0:
            raise rep.error(line, where, f"invalid port {text!r}: unclosed '['")
        ip, spec = spec[1:end], spec[end + 2 :]
    else:
        parts = spec.split(":")
        if len(parts) == 3:
            ip, spec = parts[0], ":".join(parts[1:])
        elif len(parts) > 3:
            # an IPv6 address without brackets: everything before the last two parts
            ip, spec = ":".join(parts[:-2]), ":".join(parts[-2:])
    host, sep, container = spec.rpartition(":")
    if not sep:
        host, container = "", spec
    return _expand(rep, where, line, text, ip, host, container, proto)


def _long_port(rep: Reporter, where: str, item: Map) -> list[PortMapping]:
    known = {"target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"}
    for key in item:
        if key not in known and not key.startswith("x-"):
            raise rep.error(item.line_of(key), f"{where}.{key}", "unknown key in a port mapping")
    if "target" not in item:
        raise rep.error(item.line, where, "a port mapping needs 'target'", "e.g. target: 80")
    published = item.get("published")
    host = "" if published is None else str(published)
    ip = item.get("host_ip") or ""
    proto = item.get("protocol") or "tcp"
    return _expand(
        rep,
        where,
        item.line,
        str(item.get("target")),
        str(ip),
        host,
        str(item["target"]),
        str(proto),
    )


def _expand(
    rep: Reporter,
    where: str,
    line: int,
    text: str,
    ip: str,
    host: str,
    container: str,
    proto: str,
) -> list[PortMapping]:
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise rep.error(line, where, f"invalid protocol {proto!r}", "use tcp, udp or sctp")
    host_ip = DEFAULT_HOST_IP
    if ip:
        try:
            host_ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise rep.error(line, where, f"invalid host IP {ip!r}") from None
    c_first, c_last = _range(rep, where, line, container, text)
    if c_first == 0:
        raise rep.error(line, where, f"invalid container port in {text!r}", "use 1..65535")
    count = c_last - c_first + 1
    if host:
        h_first, h_last = _range(rep, where, line, host, text)
        if h_last - h_first + 1 != count:
            raise rep.error(
                line,
                where,
                f"host range {host} and container range {container} differ in size",
                "envkit publishes one host port per container port; give ranges of one size",
            )
    else:
        h_first = 0
    return [
        PortMapping(h_first + i if host else 0, c_first + i, proto, host_ip) for i in range(count)
    ]


def _range(rep: Reporter, where: str, line: int, text: str, whole: str) -> tuple[int, int]:
    match = _RANGE_RE.match(text.strip())
    if match is None:
        raise rep.error(line, where, f"invalid port {whole!r}", 'use "[IP:]HOST:CONTAINER[/PROTO]"')
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else first
    if not 0 <= first <= last <= 65535:
        raise rep.error(line, where, f"invalid port range {text!r}", "ports are 1..65535")
    return first, last


def volumes(
    rep: Reporter, where: str, value: Any, line: int, base: Path, home: str | None = None
) -> list[MountSpec]:
    """Every mount of a service's ``volumes`` (a list); host paths made absolute."""
    if not isinstance(value, list):
        raise rep.error(line, where, "expected a list of volumes", 'e.g. ["data:/var/lib/data"]')
    found: list[MountSpec] = []
    lines = getattr(value, "lines", [])
    for i, item in enumerate(value):
        item_line = lines[i] if i < len(lines) else line
        item_where = f"{where}[{i}]"
        if isinstance(item, Map):
            found.append(_long_volume(rep, item_where, item, base, home))
        elif isinstance(item, str):
            found.append(_short_volume(rep, item_where, item, item_line, base, home))
        else:
            raise rep.error(item_line, item_where, "expected a volume string or a mapping")
    return found


def is_host_path(source: str) -> bool:
    """Whether a short-syntax source is a host path (compose: starts with . / or ~)."""
    return source.startswith((".", "/", "~"))


def host_path(source: str, base: Path, home: str | None = None) -> str:
    """``source`` as an absolute, normalised host path: ``~`` is ``home`` (default: the
    user's), a relative path is relative to ``base``."""
    if home is not None and (source == "~" or source.startswith("~/")):
        path = home + source[1:]
    else:
        path = os.path.expanduser(source)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(base, path))


def _short_volume(
    rep: Reporter, where: str, text: str, line: int, base: Path, home: str | None
) -> MountSpec:
    parts = text.split(":")
    if len(parts) == 1:  # compose's anonymous volume: a target alone
        return MountSpec("volume", "", _target(rep, where, line, text))
    if len(parts) > 3:
        raise rep.error(line, where, f"invalid volume {text!r}", 'use "SOURCE:TARGET[:MODE]"')
    source, target = parts[0], parts[1]
    modes = set(parts[2].split(",")) if len(parts) == 3 else set()
    bad = modes - _VOLUME_MODES
    if bad:
        raise rep.error(line, where, f"unknown volume mode {sorted(bad)[0]!r}", "use ro or rw")
    if {"z", "Z"} & modes:
        rep.warn(line, where, "SELinux relabelling (z, Z) is not done by envkit; ignored")
    if "nocopy" in modes:
        raise rep.error(line, where, "nocopy is not supported", "remove it")
    target = _target(rep, where, line, target)
    read_only = "ro" in modes
    if not source:
        raise rep.error(line, where, "empty volume source")
    if is_host_path(source):
        return MountSpec("bind", host_path(source, base, home), target, read_only)
    return MountSpec("volume", source, target, read_only)


def _target(rep: Reporter, where: str, line: int, target: str) -> str:
    """The container path, cleaned as compose cleans it (``/etc/x/`` -> ``/etc/x``)."""
    if not target.startswith("/"):
        raise rep.error(line, where, f"target {target!r} must be an absolute path")
    return posixpath.normpath(target)


def _long_volume(rep: Reporter, where: str, item: Map, base: Path, home: str | None) -> MountSpec:
    known = {"type", "source", "target", "read_only", "bind", "volume", "tmpfs", "consistency"}
    for key in item:
        if key not in known and not key.startswith("x-"):
            raise rep.error(item.line_of(key), f"{where}.{key}", "unknown key in a volume mapping")
    kind = item.get("type")
    target = item.get("target")
    if not isinstance(target, str):
        raise rep.error(item.line, where, "a volume mapping needs 'target'")
    target = _target(rep, where, item.line_of("target"), target)
    read_only = item.get("read_only", False) is True
    source = item.get("source")
    if kind == "tmpfs":
        if source:
            raise rep.error(item.line_of("source"), where, "a tmpfs has no source")
        options = []
        tmpfs = item.get("tmpfs") or Map()
        for key, value in tmpfs.items():
            if key == "size":
                options.append(f"size={value}")
            elif key == "mode":
                options.append(f"mode={value:o}" if isinstance(value, int) else f"mode={value}")
            else:
                raise rep.error(tmpfs.line_of(key), f"{where}.tmpfs.{key}", "not supported")
        if read_only:
            options.append("ro")
        return MountSpec("tmpfs", "", target, False, ",".join(options))
    if kind not in ("volume", "bind"):
        raise rep.error(
            item.line_of("type"),
            f"{where}.type",
            f"volume type {kind!r} is not supported",
            "use volume, bind or tmpfs",
        )
    if source is None or source == "":
        source = ""  # a volume without a source is compose's anonymous volume
    if not isinstance(source, str):
        raise rep.error(item.line_of("source"), f"{where}.source", "expected a string")
    if not source and kind == "bind":
        raise rep.error(item.line, where, "a bind mount needs 'source'")
    if kind == "bind":
        if _WINDOWS_PATH_RE.match(source):
            raise rep.error(
                item.line_of("source"),
                f"{where}.source",
                f"{source} is a Windows path",
                "give a path of this machine (absolute, or relative to the compose file)",
            )
        for key, value in (item.get("bind") or Map()).items():
            if key == "propagation" and value not in _PROPAGATION:
                raise rep.error(0, f"{where}.bind.propagation", f"invalid value {value!r}")
            if key == "selinux":
                rep.warn(
                    item.line, f"{where}.bind.selinux", "SELinux relabelling is not done; ignored"
                )
            elif key not in ("create_host_path", "propagation"):
                raise rep.error(item.line, f"{where}.bind.{key}", "not supported")
        return MountSpec("bind", host_path(source, base, home), target, read_only)
    for key, value in (item.get("volume") or Map()).items():
        if key == "nocopy" and value is False:
            continue
        raise rep.error(item.line, f"{where}.volume.{key}", "not supported", "remove it")
    return MountSpec("volume", source, target, read_only)
