"""Instruction flags (``--chown=1:1``) as BuildKit's ``BFlags`` parse them, and
``RUN --mount`` options as envkit supports them.

:func:`parse_flags` and :func:`run_mount` raise :class:`FlagError` (message and hint);
the importer adds the file and line.
"""

from __future__ import annotations

import os

from envkit.errors import SpecError
from envkit.records import Value
from envkit.spec.secret import Secret

#: BuildKit's flags per instruction: name -> "bool" | "string" | "strings".
FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": "string"},
    "RUN": {"mount": "strings", "network": "string", "security": "string", "device": "strings"},
    "COPY": {
        "chown": "string", "chmod": "string", "from": "string", "link": "bool",
        "exclude": "strings", "parents": "bool",
    },
    "ADD": {
        "chown": "string", "chmod": "string", "link": "bool", "keep-git-dir": "bool",
        "checksum": "string", "unpack": "bool", "exclude": "strings",
    },
    "HEALTHCHECK": {
        "interval": "string", "timeout": "string", "start-period": "string",
        "start-interval": "string", "retries": "string",
    },
}  # fmt: skip

#: Flags Docker accepts that envkit cannot honour, and why.
UNSUPPORTED = {
    ("RUN", "security"): "envkit runs build steps with the default security only",
    ("RUN", "device"): "envkit gives build steps no devices",
    ("COPY", "exclude"): "not supported yet; use a .dockerignore",
    ("ADD", "exclude"): "not supported yet; use a .dockerignore",
    ("COPY", "parents"): "not supported yet",
    ("ADD", "checksum"): "remote content is not supported",
    ("ADD", "keep-git-dir"): "remote content is not supported",
    ("ADD", "unpack"): "not supported yet",
}


class FlagError(ValueError):
    """A flag Docker or envkit refuses."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def parse_flags(flags: list[str], name: str) -> dict[str, list[str]]:
    """The values of ``flags`` (``["--chown=1", "--link"]``) for instruction ``name``."""
    allowed = FLAGS.get(name, {})
    found: dict[str, list[str]] = {}
    for arg in flags:
        if arg == "--":
            break
        if not arg.startswith("--"):
            raise FlagError(f"{name}: arg should start with -- : {arg}")
        flag, eq, value = arg.partition("=")
        key = flag[2:]
        kind = allowed.get(key)
        if kind is None:
            hint = "flags: " + (", ".join(f"--{f}" for f in allowed) or "none")
            raise FlagError(f"{name}: unknown flag: {flag}", hint)
        if key in found and kind != "strings":
            raise FlagError(f"{name}: duplicate flag specified: {flag}")
        if kind == "bool":
            if eq and not value:
                raise FlagError(f"{name}: missing a value on flag: {flag}")
            if value.lower() not in ("", "true", "false"):
                raise FlagError(f"{name}: expecting boolean value for flag {flag}, not: {value}")
            value = "false" if value.lower() == "false" else "true"
        elif not eq:
            raise FlagError(f"{name}: missing a value on flag: {flag}")
        found.setdefault(key, []).append(value)
        reason = UNSUPPORTED.get((name, key))
        if reason is not None:
            raise FlagError(f"{name} --{key} is not supported: {reason}")
    return found


class Mount(Value):
    """What one ``RUN --mount`` gives: a build secret, a cache (target, id) or a bind of
    the build context (target, source)."""

    secret: Secret | None = None
    cache: tuple[str, str] | None = None
    bind: tuple[str, str] | None = None


def run_mount(text: str, given: dict[str, Secret]) -> Mount:
    """``RUN --mount=<text>``: ``type=secret`` (its source from ``given`` by id, else the
    environment variable of that name), ``type=cache`` or ``type=bind`` (the default
    type: a build context path, ``.`` unless ``source=`` says); other types, and a bind
    ``from=`` another stage or image, are refused."""
    options: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        options[key.strip().lower()] = value.strip() if eq else "true"
    kind = options.pop("type", "bind")
    target = options.pop("target", None) or options.pop("dst", None)
    target = target or options.pop("destination", None)
    if kind == "secret":
        return Mount(secret=_secret(options, target, given))
    if kind == "cache":
        if not target:
            raise FlagError("RUN: a cache mount needs target=", "target=/root/.cache")
        options.pop("sharing", None)
        ident = options.pop("id", None) or target.strip("/").replace("/", "_") or "root"
        _reject(options, kind)
        return Mount(cache=(target, ident))
    if kind == "bind":
        if not target:
            raise FlagError("RUN: a bind mount needs target=", "target=requirements.txt")
        if "from" in options:
            raise FlagError(
                "RUN --mount=type=bind,from= is not supported yet",
                "COPY --from=STAGE what the step needs first",
            )
        source = options.pop("source", None) or options.pop("src", None) or "."
        for flag in ("rw", "readwrite", "ro", "readonly"):
            options.pop(flag, None)  # writes to a bind are discarded either way
        _reject(options, kind)
        return Mount(bind=(target, source))
    raise FlagError(
        f"RUN --mount=type={kind} is not supported",
        "envkit supports type=secret, type=cache and type=bind; copy files with COPY",
    )


def _secret(options: dict[str, str], target: str | None, given: dict[str, Secret]) -> Secret:
    ident = options.pop("id", None) or (os.path.basename(target) if target else None)
    if not ident:
        raise FlagError("RUN: a secret mount needs id=", "--mount=type=secret,id=token")
    required = options.pop("required", "false").lower() in ("true", "1")
    if "env" in options:
        raise FlagError(
            "RUN: secret mounts with env= are not supported yet",
            "read /run/secrets/<id> in the command instead",
        )
    name = ident
    if target is not None:
        if not target.startswith("/"):
            target = "/run/secrets/" + target
        if os.path.dirname(target) != "/run/secrets":
            raise FlagError(
                f"RUN: secret target {target} is outside /run/secrets",
                "envkit mounts build secrets at /run/secrets/<name>",
            )
        name = os.path.basename(target)
    _reject(options, "secret")
    found = given.get(ident)
    source = found.source if found is not None else f"env:{ident}"
    try:
        return Secret(name, source, required=required)
    except SpecError as exc:
        raise FlagError(f"RUN: {exc.message}", exc.hint) from None


def _reject(options: dict[str, str], kind: str) -> None:
    if options:
        raise FlagError(f"RUN --mount=type={kind} option {sorted(options)[0]}= is not supported")
