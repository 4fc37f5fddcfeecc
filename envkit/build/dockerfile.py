"""Import a Dockerfile as :class:`~envkit.spec.image.Image` objects, as BuildKit reads it.

:mod:`~envkit.build.dockerfile_parser` turns the text into BuildKit's node tree; this
module applies BuildKit's instruction rules (``frontend/dockerfile/instructions`` and
``dockerfile2llb``) to it. :func:`parse_dockerfile` turns each ``FROM`` stage into an
Image of ordinary steps and returns the final one (or the stage named by ``target``);
``COPY --from=<stage>`` becomes ``copy(from_=<that stage's Image>)``. :func:`expand`
replaces the ``dockerfile`` base that ``Image.from_dockerfile`` records by the imported
steps. Variables the Dockerfile does not define are the base image's: words naming them
are expanded at build time (:mod:`~envkit.build.dockerfile_expand`). What an Image cannot
express (ONBUILD, ADD from a URL, ...) and what Docker refuses raise
:class:`~envkit.errors.SpecError` naming the file and line; what Docker warns about is
logged (``envkit.dockerfile``) and collected in ``warnings``. See
docs/reference/dockerfile.md.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from envkit.build.dockerfile_expand import (
    DEFAULT_PATH,
    SPLIT_WORDS,
    config_steps,
    deferred_config,
)
from envkit.build.dockerfile_flags import FlagError, parse_flags, run_mount
from envkit.build.dockerfile_lex import ShellLex, WordResult, parse_duration
from envkit.build.dockerfile_parser import (
    Node,
    ParseError,
    chomp_heredoc,
    parse,
    parse_heredoc,
)
from envkit.build.dockerfile_steps import (
    AddArchive,
    Deferred,
    ExpandCopy,
    ExpandWriteFile,
    SetAuthor,
    WriteFile,
)
from envkit.errors import EnvkitError, SpecError
from envkit.records import Record, Value, field, replace
from envkit.spec import steps as st
from envkit.spec.bases import Dockerfile
from envkit.spec.healthcheck import DEFAULT_START_INTERVAL, Healthcheck
from envkit.spec.image import SHELL, Image
from envkit.spec.secret import Secret

log = logging.getLogger("envkit.dockerfile")
_logged: set[tuple[str, str]] = set()  # a Dockerfile is read more than once per build

_REFUSED = {
    "ONBUILD": "triggers run in a later build from this image; envkit images have no triggers",
}
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
_URL_RE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@)", re.IGNORECASE)
_GLOB_CHARS = re.compile(r"[*?\[]")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9-_.]*$")


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armv7l": "arm"}
# a variant that names the architecture's baseline, as containerd's platforms.Normalize drops it
_BASELINE_VARIANTS = {("amd64", "v1"), ("arm64", "v8")}


def _platform_args() -> dict[str, str]:
    machine = platform.machine().lower()
    arch = _ARCH_ALIASES.get(machine, machine)
    plat = f"linux/{arch}"
    return {
        "TARGETPLATFORM": plat, "TARGETOS": "linux", "TARGETARCH": arch, "TARGETVARIANT": "",
        "BUILDPLATFORM": plat, "BUILDOS": "linux", "BUILDARCH": arch, "BUILDVARIANT": "",
    }  # fmt: skip


def _normalised_platform(text: str) -> str:
    """``os/arch[/variant]`` as containerd normalises it: aliases of an architecture and
    its baseline variant are the architecture (``linux/x86_64``, ``linux/amd64/v1``:
    ``linux/amd64``); a lone architecture is Linux's."""
    parts = text.strip().lower().split("/")
    if len(parts) == 1 and parts[0] != "linux":
        parts = ["linux", *parts]
    if len(parts) < 2:
        return "/".join(parts)
    arch = _ARCH_ALIASES.get(parts[1], parts[1])
    rest = parts[2:]
    if rest and (arch, rest[0]) in _BASELINE_VARIANTS:
        rest = rest[1:]
    return "/".join([parts[0], arch, *rest])


class _Stage(Record):
    """One FROM stage being imported.

    ``scope`` is the build environment the Dockerfile defines, in BuildKit's order (ARG
    and ENV as they come); a value of None is known only at build time. ``from_args``
    names the entries an ARG set last; ``config_env`` what ENV set (a later ``FROM
    <stage>`` starts from it). ``base_known``: the base's Env is known (FROM scratch).
    """

    image: Image
    name: str | None
    base_known: bool
    scope: dict[str, str | None] = field(default_factory=dict)
    from_args: set[str] = field(default_factory=set)
    config_env: dict[str, str | None] = field(default_factory=dict)
    shell: tuple[str, ...] = SHELL
    shell_set: bool = False
    seen: set[str] = field(default_factory=set)

    def env(self) -> dict[str, str]:
        """What ``$VAR`` expands to at import time."""
        found = {k: v for k, v in self.scope.items() if v is not None}
        return {"PATH": DEFAULT_PATH, **found} if self.base_known else found

    def needs_base(self, unmatched: set[str]) -> bool:
        """Whether a word naming ``unmatched`` waits for the base image's Env."""
        names = {n for n in unmatched if _IDENT_RE.fullmatch(n)}
        if self.base_known:
            return any(n in self.scope for n in names)  # set to a build-time value
        return bool(names)

    def args_in_force(self) -> dict[str, str]:
        """The build args that override the image's Env here (RUN sees them too)."""
        return {k: v for k in sorted(self.from_args) if (v := self.scope.get(k)) is not None}

    def set_env(self, key: str, value: str | None) -> None:
        self.scope[key] = value
        self.config_env[key] = value
        self.from_args.discard(key)


class _Importer:
    def __init__(
        self,
        path: str,
        context: Path,
        build_args: Mapping[str, str],
        secrets: Mapping[str, Secret],
    ) -> None:
        self.path = path
        self.context = context
        self.build_args = dict(build_args)
        self.secrets = dict(secrets)
        self.global_args: dict[str, str | None] = {}
        self.stages: list[_Stage] = []
        self.escape = "\\"
        self.warnings: list[str] = []

    # -- helpers -----------------------------------------------------------------------

    def error(self, node: Node, message: str, hint: str | None = None) -> SpecError:
        return SpecError(f"{self.path}:{node.start_line}", message, hint=hint)

    def warn(self, node: Node, rule: str, message: str) -> None:
        self.note(f"{rule}: {message} (line {node.start_line})")

    def note(self, text: str) -> None:
        self.warnings.append(text)
        if (self.path, text) not in _logged:
            _logged.add((self.path, text))
            log.warning("%s: %s", self.path, text)

    def stage(self, node: Node) -> _Stage:
        if not self.stages:
            raise self.error(
                node, f"{node.value.upper()} comes before the first FROM", hint="start with FROM"
            )
        return self.stages[-1]

    def lex(
        self, node: Node, word: str, env: Mapping[str, str], lex: ShellLex | None = None
    ) -> WordResult:
        try:
            return (lex or ShellLex(self.escape)).process_word(word, env)
        except ValueError as exc:
            raise self.error(node, f"{node.value.upper()}: {exc}") from None

    def word(self, node: Node, stage: _Stage, word: str) -> str | None:
        """``word`` expanded, or None when it names variables only the build knows."""
        try:
            found = ShellLex(self.escape).process_word(word, stage.env())
        except ValueError as exc:
            # ${X:?msg} and the like fail on an unset X, which the base image may set
            lenient = ShellLex(self.escape, skip_unset_env=True)
            if stage.needs_base(self.lex(node, word, stage.env(), lenient).unmatched):
                return None
            raise self.error(node, f"{node.value.upper()}: {exc}") from None
        return None if stage.needs_base(found.unmatched) else found.result

    def known_word(self, node: Node, stage: _Stage, word: str, what: str) -> str:
        found = self.word(node, stage, word)
        if found is None:
            raise self.error(
                node,
                f"{node.value.upper()}: {what} {word!r} names a variable the Dockerfile does "
                "not define (the base image's); envkit needs it when it reads the Dockerfile",
                hint="define it with ARG or ENV in the Dockerfile",
            )
        return found

    def flags(self, node: Node, name: str) -> dict[str, list[str]]:
        """BuildKit's BFlags.Parse of the node's flags for instruction ``name``."""
        try:
            return parse_flags(node.flags, name)
        except FlagError as exc:
            raise self.error(node, str(exc), exc.hint) from None

    def append(self, steps: Sequence[st.Step]) -> None:
        """Append ``steps`` to the current stage."""
        stage = self.stages[-1]
        stage.image = Image(stage.image.base, (*stage.image.steps, *steps))

    def config(self, node: Node, name: str, words: Sequence[str]) -> list[str] | None:
        """Apply config instruction ``name``; its expanded words, None when deferred."""
        stage = self.stage(node)
        lex = ShellLex(self.escape)
        expanded: list[str] = []
        deferred = False
        for raw in words:
            found = self.word(node, stage, raw)
            deferred = deferred or found is None
            if deferred:
                continue
            if name in SPLIT_WORDS:
                expanded.extend(lex.process_words(raw, stage.env()))
            else:
                expanded.append(found or "")
        if deferred:
            scope = stage.args_in_force()
            self.append([deferred_config(name, words, scope, self.escape)])
            return None
        try:
            steps = config_steps(name, expanded)
        except SpecError as exc:
            raise self.error(node, f"{name}: {exc.message}", exc.hint) from None
        self.append(steps)
        return expanded

    def json_or_shell(self, node: Node) -> tuple[list[str], bool]:
        """BuildKit's handleJSONArgs: the argv, and whether a shell is prepended."""
        args = node.args()
        if node.is_json:
            return args, False
        return ([" ".join(args)] if args else []), True

    def command(self, node: Node, stage: _Stage, args: list[str], shell: bool) -> list[str]:
        return [*stage.shell, *args] if shell else args

    # -- instructions ------------------------------------------------------------------

    def run_all(self, root: Node) -> None:
        for node in root.children:
            name = node.value.upper()
            if name in _REFUSED:
                raise self.error(node, f"{name}: not supported: {_REFUSED[name]}")
            handler = getattr(self, f"do_{node.value.lower()}", None)
            if handler is None:
                raise self.error(
                    node,
                    f"unknown instruction: {node.value}",
                    hint="see docs/reference/dockerfile.md",
                )
            handler(node)

    def do_from(self, node: Node) -> None:
        flags = self.flags(node, "FROM")
        args = node.args()
        name: str | None = None
        if len(args) == 3 and args[1].lower() == "as":
            name = args[2].lower()
            if not _STAGE_NAME_RE.match(name):
                raise self.error(
                    node,
                    f"invalid name for build stage: {json.dumps(args[2])}, name can't start "
                    "with a number or contain symbols",
                )
            if args[2] != name:
                self.warn(node, "StageNameCasing", f"Stage name '{args[2]}' should be lowercase")
            command = node.value
            if (command == command.lower() and args[1] != args[1].lower()) or (
                command == command.upper()
                and command != command.lower()
                and args[1] != args[1].upper()
            ):
                self.warn(
                    node,
                    "FromAsCasing",
                    f"'{args[1]}' and '{node.value}' keywords' casing do not match",
                )
        elif len(args) != 1:
            raise self.error(
                node, "FROM requires either one or three arguments", hint="FROM busybox AS build"
            )
        # BuildKit's global scope: the automatic platform args, then the ARGs before FROM
        scope = {**_platform_args()}
        scope.update({k: v for k, v in self.global_args.items() if v is not None})
        for wanted in flags.get("platform", []):
            self.check_platform(node, wanted, scope, name)
        ref = self.lex(node, args[0], scope).result
        if not ref:
            raise self.error(node, f"FROM: base name ({args[0]}) should not be blank")
        parent = self.find_stage(ref)
        if parent is not None:
            inherited = dict(parent.config_env)
            stage = _Stage(
                parent.image,
                name,
                parent.base_known,
                dict(inherited),
                set(),
                inherited,
                parent.shell,
                parent.shell_set,
            )
        elif ref.lower() == "scratch":
            stage = _Stage(Image.scratch(), name, True)
        else:
            try:
                image = Image.from_(ref)
            except SpecError as exc:
                raise self.error(node, f"FROM: {exc.message}", exc.hint) from None
            stage = _Stage(image, name, False)
        self.stages.append(stage)

    def check_platform(
        self, node: Node, word: str, scope: Mapping[str, str], stage_name: str | None
    ) -> None:
        """``FROM --platform=word``: envkit builds for the host, so the word must name the
        host's platform (``$BUILDPLATFORM``, ``$TARGETPLATFORM``, ``linux/amd64`` on amd64)."""
        found = self.lex(node, word, scope)
        host = _platform_args()["TARGETPLATFORM"]
        if not found.matched and not found.unmatched:
            # BuildKit's lint, and its opt-out: a stage named after the platform
            parts = [p for p in found.result.lower().split("/") if p]
            if not any(p in (stage_name or "") for p in parts):
                quoted = json.dumps(found.result)
                self.warn(
                    node,
                    "FromPlatformFlagConstDisallowed",
                    f"FROM --platform flag should not use constant value {quoted}",
                )
        if _normalised_platform(found.result) != host:
            raise self.error(
                node,
                f"FROM --platform={found.result}: envkit builds for the host platform ({host}) "
                "and runs no other",
                hint="drop --platform, or write --platform=$BUILDPLATFORM",
            )

    def find_stage(self, ref: str) -> _Stage | None:
        for stage in self.stages:
            if stage.name is not None and stage.name == ref.lower():
                return stage
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None

    def do_arg(self, node: Node) -> None:
        args = node.args()
        if not args:
            raise self.error(node, "ARG requires at least one argument", hint="ARG VERSION=1")
        target = self.stages[-1] if self.stages else None
        for item in args:
            key, eq, default = item.partition("=")
            if eq and not key:
                raise self.error(node, "ARG names can not be blank")
            value: str | None = None
            if key in self.build_args:
                value = self.build_args[key]
            elif eq:
                if target is None:
                    env = {k: v for k, v in self.global_args.items() if v is not None}
                    value = self.lex(node, default, env).result
                else:
                    value = self.word(node, target, default)
                    if value is None:
                        raise self.error(
                            node,
                            f"ARG {key}: its default {default!r} names a variable of the base "
                            "image; envkit resolves ARG defaults when it reads the Dockerfile",
                            hint="use ENV for values built from the base image's variables",
                        )
            elif target is not None and key in self.global_args:
                value = self.global_args[key]
            else:
                value = _platform_args().get(key)
            if target is None:
                self.global_args[key] = value
            elif value is not None:
                target.scope[key] = value
                target.from_args.add(key)

    def kvps(self, node: Node, name: str) -> list[tuple[str, str]]:
        """BuildKit's parseKvps: (key, value) pairs; warns about ``KEY value``."""
        args = node.args()
        if not args:
            raise self.error(
                node, f"{name} requires at least one argument", hint=f"{name} KEY=value"
            )
        pairs = []
        for i in range(0, len(args) - 2, 3):
            key, value, sep = args[i : i + 3]
            if not key:
                raise self.error(node, f"{name} names can not be blank")
            if not sep:
                self.warn(
                    node,
                    "LegacyKeyValueFormat",
                    f'"{name} key=value" should be used instead of legacy '
                    f'"{name} key value" format',
                )
            pairs.append((key, value))
        return pairs

    def do_env(self, node: Node) -> None:
        stage = self.stage(node)
        self.flags(node, "ENV")
        pairs = self.kvps(node, "ENV")
        keys = [self.known_word(node, stage, k, "the name") for k, _ in pairs]
        values = [self.word(node, stage, v) for _, v in pairs]
        self.config(node, "ENV", [w for pair in pairs for w in pair])
        for key, value in zip(keys, values, strict=True):
            stage.set_env(key, value)

    def do_label(self, node: Node) -> None:
        self.stage(node)
        self.flags(node, "LABEL")
        pairs = self.kvps(node, "LABEL")
        self.config(node, "LABEL", [w for pair in pairs for w in pair])

    def do_maintainer(self, node: Node) -> None:
        self.stage(node)
        args = node.args()
        if len(args) != 1:
            raise self.error(node, "MAINTAINER requires exactly one argument")
        self.flags(node, "MAINTAINER")
        self.warn(
            node,
            "MaintainerDeprecated",
            "Maintainer instruction is deprecated in favor of using label",
        )
        self.append([SetAuthor((), args[0])])

    def one_arg(self, node: Node, name: str) -> list[str]:
        args = node.args()
        if len(args) != 1:
            raise self.error(node, f"{name} requires exactly one argument")
        return args

    def do_workdir(self, node: Node) -> None:
        stage = self.stage(node)
        args = self.one_arg(node, "WORKDIR")
        self.flags(node, "WORKDIR")
        if not args[0].startswith(("/", "$")) and "WORKDIR" not in stage.seen:
            self.warn(
                node,
                "WorkdirRelativePath",
                f"Relative workdir {json.dumps(args[0])} can have unexpected results "
                "if the base image changes",
            )
        stage.seen.add("WORKDIR")
        self.config(node, "WORKDIR", args)

    def do_user(self, node: Node) -> None:
        self.stage(node)
        args = self.one_arg(node, "USER")
        self.flags(node, "USER")
        self.config(node, "USER", args)

    def do_expose(self, node: Node) -> None:
        self.stage(node)
        args = node.args()
        if not args:
            raise self.error(node, "EXPOSE requires at least one argument", hint="EXPOSE 8080")
        self.flags(node, "EXPOSE")
        self.config(node, "EXPOSE", sorted(args))

    def do_volume(self, node: Node) -> None:
        self.stage(node)
        args = node.args()
        if not args:
            raise self.error(node, "VOLUME requires at least one argument", hint="VOLUME /data")
        self.flags(node, "VOLUME")
        if any(not a.strip() for a in args):
            raise self.error(node, "VOLUME specified can not be an empty string")
        self.config(node, "VOLUME", args)

    def do_stopsignal(self, node: Node) -> None:
        self.stage(node)
        self.config(node, "STOPSIGNAL", self.one_arg(node, "STOPSIGNAL"))

    def do_shell(self, node: Node) -> None:
        stage = self.stage(node)
        self.flags(node, "SHELL")
        args, shell = self.json_or_shell(node)
        if not args:
            raise self.error(node, "SHELL requires at least one argument")
        if shell:
            raise self.error(
                node,
                "SHELL requires the arguments to be in JSON form",
                hint='SHELL ["/bin/bash", "-c"]',
            )
        stage.shell, stage.shell_set = tuple(args), True

    def once(self, node: Node, stage: _Stage, name: str) -> None:
        if name in stage.seen:
            self.warn(
                node,
                "MultipleInstructionsDisallowed",
                f"Multiple {name} instructions should not be used in the same stage "
                "because only the last one will be used",
            )
        stage.seen.add(name)

    def do_cmd(self, node: Node) -> None:
        self.entry(node, "CMD")

    def do_entrypoint(self, node: Node) -> None:
        self.entry(node, "ENTRYPOINT")

    def entry(self, node: Node, name: str) -> None:
        stage = self.stage(node)
        self.flags(node, name)
        self.once(node, stage, name)
        args, shell = self.json_or_shell(node)
        if shell and not stage.shell_set:
            self.warn(
                node,
                "JSONArgsRecommended",
                f"JSON arguments recommended for {name} to prevent unintended behavior "
                "related to OS signals",
            )
        argv = self.command(node, stage, args, shell) if args else []
        image = stage.image
        try:
            made = image.cmd(argv) if name == "CMD" else image.entrypoint(argv)
        except SpecError as exc:
            raise self.error(node, f"{name}: {exc.message}", exc.hint) from None
        stage.image = made

    def do_healthcheck(self, node: Node) -> None:
        stage = self.stage(node)
        args = node.args()
        if not args:
            raise self.error(node, "HEALTHCHECK requires at least one argument")
        kind = args[0].upper()
        if kind == "NONE":
            if len(args) != 1:
                raise self.error(node, "HEALTHCHECK NONE takes no arguments")
            check = Healthcheck(["NONE"])
        elif kind == "CMD":
            flags = self.flags(node, "HEALTHCHECK")
            if node.is_json:
                test: list[str] | str = args[1:]
            else:
                test = " ".join(args[1:])
            if not test:
                raise self.error(node, "Missing command after HEALTHCHECK CMD")
            options: dict[str, float] = {}
            for name in ("interval", "timeout", "start-period", "start-interval"):
                text = flags.get(name, [""])[-1]
                if text:
                    try:
                        seconds = parse_duration(text)
                    except ValueError as exc:
                        raise self.error(
                            node, f"HEALTHCHECK --{name}: {exc}", hint="e.g. 30s, 1m30s"
                        ) from None
                    if 0 < seconds < 0.001:
                        raise self.error(
                            node, f'HEALTHCHECK: Interval "{name}" cannot be less than 1ms'
                        )
                    options[name.replace("-", "_")] = seconds
            retries = flags.get("retries", [""])[-1]
            try:
                count = int(retries) if retries else 3
                if count < 0:
                    raise ValueError(f"--retries cannot be negative ({count})")
                check = Healthcheck(
                    test,
                    interval=options.get("interval") or 30.0,
                    timeout=options.get("timeout") or 30.0,
                    start_period=options.get("start_period", 0.0),
                    start_interval=options.get("start_interval") or DEFAULT_START_INTERVAL,
                    retries=count,
                )
            except (SpecError, ValueError) as exc:
                raise self.error(node, f"HEALTHCHECK: {exc}") from None
        else:
            raise self.error(
                node,
                f'Unknown type "{args[0]}" in HEALTHCHECK (try CMD)',
                hint="HEALTHCHECK CMD pg_isready",
            )
        self.once(node, stage, "HEALTHCHECK")
        stage.image = stage.image.healthcheck(check)

    def do_run(self, node: Node) -> None:
        stage = self.stage(node)
        flags = self.flags(node, "RUN")
        secrets: list[Secret] = []
        caches: dict[str, str] = {}
        binds: dict[str, str] = {}
        for spec in flags.get("mount", []):
            text = self.known_word(node, stage, spec, "--mount")
            try:
                mount = run_mount(text, self.secrets)
            except FlagError as exc:
                raise self.error(node, str(exc), exc.hint) from None
            if mount.secret is not None:
                secrets.append(mount.secret)
            if mount.cache is not None:
                caches[mount.cache[0]] = mount.cache[1]
            if mount.bind is not None:
                binds[mount.bind[0]] = mount.bind[1]
        network = flags.get("network", [None])[-1]
        if network not in (None, "default", "none", "host"):
            raise self.error(
                node, f"RUN --network={network} is not supported", hint="none, host or default"
            )
        net: Literal["host", "none"] | None = (
            "none" if network == "none" else "host" if network == "host" else None
        )
        args, shell = self.json_or_shell(node)
        if node.heredocs:
            args = self.heredoc_script(node, args)
        if not args or not "".join(args).strip():
            raise self.error(node, "RUN has no command", hint="RUN make")
        argv = self.command(node, stage, args, shell)
        env = stage.args_in_force()
        try:
            stage.image = stage.image.run(
                argv, secrets=secrets, caches=caches, network=net, env=env, binds=binds
            )
        except SpecError as exc:
            raise self.error(node, f"RUN: {exc.message}", exc.hint) from None

    def heredoc_script(self, node: Node, args: list[str]) -> list[str]:
        """BuildKit's RUN with heredocs: a lone heredoc is the script, else the shell
        gets the line and the documents whole (it implements heredocs)."""
        first = node.heredocs[0]
        if parse_heredoc(args[0]) is not None:
            data = chomp_heredoc(first.content) if first.chomp else first.content
            if data.startswith("#!"):
                interpreter, _, script = data.partition("\n")
                return [f"{interpreter[2:].strip()} <<'{first.name}'\n{script}{first.name}\n"]
            return [data]
        return [args[0] + "".join("\n" + h.content + h.name for h in node.heredocs)]

    def do_copy(self, node: Node) -> None:
        self.copy(node, add=False)

    def do_add(self, node: Node) -> None:
        self.copy(node, add=True)

    def copy(self, node: Node, *, add: bool) -> None:
        name = "ADD" if add else "COPY"
        stage = self.stage(node)
        flags = self.flags(node, name)
        args = node.args()
        if len(args) < 2:
            raise self.error(
                node,
                f"{name} requires at least two arguments, but only one was provided. "
                "Destination could not be determined",
                hint=f"{name} src /dst/",
            )
        *sources, dst_raw = args
        if parse_heredoc(dst_raw) is not None:
            raise self.error(node, f"{name} cannot accept a heredoc as a destination")
        if len(sources) > 1 and not dst_raw.endswith("/"):
            raise self.error(node, f"{name}: with several sources the destination must end with /")
        raw = [dst_raw, flags.get("chown", [""])[-1], flags.get("chmod", [""])[-1]]
        words = [self.word(node, stage, w) if w else "" for w in raw]
        from_ref = flags.get("from", [None])[-1]
        from_image = None
        if from_ref is not None:
            ref = self.known_word(node, stage, from_ref, "--from")
            found = self.find_stage(ref)
            if found is not None:
                from_image = found.image
            else:
                try:
                    from_image = Image.from_(ref)
                except SpecError as exc:
                    raise self.error(node, f"{name} --from: {exc.message}", exc.hint) from None
        for src in sources:
            try:
                doc = parse_heredoc(src)
            except ValueError as exc:
                raise self.error(node, f"{name}: {exc}") from None
            if doc is not None:
                self.write_file(node, stage, doc.name, words, raw)
                continue
            path = self.known_word(node, stage, src, "source")
            if add and _URL_RE.match(path):
                raise self.error(
                    node,
                    f"ADD from a URL ({path}) is not supported: its content is not pinned",
                    hint="download it in a RUN step (with a checksum), or into the context",
                )
            extract = add and self.is_archive(node, path)
            self.copy_step(node, stage, path, words, raw, from_image, extract)

    def copy_step(
        self,
        node: Node,
        stage: _Stage,
        src: str,
        words: list[str | None],
        raw: list[str],
        from_image: Image | None,
        extract: bool,
    ) -> None:
        if None in words:
            deferred = Deferred(
                node.value.upper(),
                tuple(raw),
                tuple(sorted(stage.args_in_force().items())),
                self.escape,
            )
            step: st.Step = ExpandCopy(src, raw[0], from_image, deferred=deferred, extract=extract)
            self.append([step])
            return
        dst, chown, chmod = (w or None for w in words)
        try:
            made = stage.image.copy(src, dst or "", from_=from_image, chown=chown, chmod=chmod)
        except SpecError as exc:
            raise self.error(node, f"{node.value.upper()}: {exc.message}", exc.hint) from None
        if extract:
            last = made.steps[-1]
            assert isinstance(last, st.Copy)
            archive = AddArchive(
                last.src, last.dst, last.from_, last.ignore, last.chown, last.chmod
            )
            made = Image(made.base, (*made.steps[:-1], archive))
        stage.image = made

    def write_file(
        self,
        node: Node,
        stage: _Stage,
        name: str,
        words: list[str | None],
        raw: list[str],
    ) -> None:
        """``COPY <<EOF dst``: a file written from the document (BuildKit's ExpandRaw)."""
        found = next((h for h in node.heredocs if h.name == name), None)
        content = "" if found is None else found.content
        if found is not None and found.chomp:
            content = chomp_heredoc(content)
        expand = found is None or found.expand
        env = stage.env()
        deferred = None in words
        if expand:
            try:
                result = ShellLex("\\", skip_process_quotes=True).process_word(content, env)
            except ValueError as exc:
                raise self.error(node, f"{node.value.upper()}: {exc}") from None
            deferred = deferred or stage.needs_base(result.unmatched)
            text = result.result
        else:
            text = content
        if deferred:
            scope = tuple(sorted(stage.args_in_force().items()))
            doc = Deferred(
                node.value.upper(), (*raw, content if expand else ""), scope, self.escape
            )
            self.append([ExpandWriteFile(name, raw[0], None, (), None, None, text, deferred=doc)])
            return
        dst, chown, chmod = (w or None for w in words)
        target = (dst or "") + name if (dst or "").endswith("/") else dst or ""
        try:
            made = stage.image.copy(name, target, chown=chown, chmod=chmod)
        except SpecError as exc:
            raise self.error(node, f"{node.value.upper()}: {exc.message}", exc.hint) from None
        last = made.steps[-1]
        assert isinstance(last, st.Copy)
        step = WriteFile(last.src, last.dst, None, (), last.chown, last.chmod, text)
        self.append([step])

    def is_archive(self, node: Node, src: str) -> bool:
        if _GLOB_CHARS.search(src):
            if any(_is_archive_file(p) for p in self.context.glob(src.lstrip("/"))):
                raise self.error(
                    node,
                    f"ADD {src}: a glob matching archives is not supported",
                    hint="ADD each archive on its own line",
                )
            return False
        return _is_archive_file(self.context / src.lstrip("/"))


def _is_archive_file(path: Path) -> bool:
    """Whether ``path`` is a tar archive, plain or compressed (by content, as Docker)."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(512)
    except (IsADirectoryError, FileNotFoundError, NotADirectoryError):
        return False
    if head.startswith(_ARCHIVE_MAGIC):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


class ImportedDockerfile(Value):
    """What :func:`import_dockerfile` read: the stages by name and the warnings."""

    image: Image
    stages: dict[str, Image]
    warnings: tuple[str, ...]


def import_dockerfile(
    path: str | os.PathLike[str],
    context: str | os.PathLike[str] = ".",
    build_args: Mapping[str, str] | None = None,
    *,
    target: str | None = None,
    secrets: Mapping[str, Secret] | Sequence[Secret] = (),
) -> ImportedDockerfile:
    """:func:`parse_dockerfile`, also giving the named stages and Docker's warnings."""
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise EnvkitError(
            f"{file}: cannot read Dockerfile: {exc.strerror}", hint="check the path"
        ) from None
    try:
        parsed = parse(text)
    except ParseError as exc:
        raise SpecError(f"{file}:{max(exc.line, 1)}", str(exc)) from None
    by_id = dict(secrets) if isinstance(secrets, Mapping) else {s.name: s for s in secrets}
    importer = _Importer(str(file), Path(context), build_args or {}, by_id)
    importer.escape = parsed.escape
    for warning in parsed.warnings:
        importer.note(f"NoEmptyContinuation: {warning.short} (line {warning.line})")
    importer.run_all(parsed.root)
    if not importer.stages:
        raise SpecError(f"{file}:1", "no FROM instruction", hint="a Dockerfile starts with FROM")
    named = {s.name: s.image for s in importer.stages if s.name is not None}
    if target is None:
        image = importer.stages[-1].image
    else:
        found = importer.find_stage(target)
        if found is None:
            raise SpecError(
                f"{file}", f"no stage named {target!r}", hint="check FROM ... AS <name>"
            )
        image = found.image
    return ImportedDockerfile(image, named, tuple(importer.warnings))


def parse_dockerfile(
    path: str | os.PathLike[str],
    context: str | os.PathLike[str] = ".",
    build_args: Mapping[str, str] | None = None,
    *,
    target: str | None = None,
    secrets: Mapping[str, Secret] | Sequence[Secret] = (),
) -> Image:
    """The Image of the Dockerfile at ``path``: its last stage, or the stage ``target``.

    ``build_args`` are ``--build-arg`` values. A ``RUN --mount=type=secret,id=X`` reads
    the secret named ``X`` in ``secrets`` (as ``docker build --secret id=X``), else the
    environment variable ``X``. Raises :class:`SpecError` naming ``path:line`` for what
    Docker refuses and what an Image cannot express; Docker's warnings are logged.
    """
    return import_dockerfile(path, context, build_args, target=target, secrets=secrets).image


def expand(image: Image, base_dir: str | os.PathLike[str] = ".") -> Image:
    """``image`` with a Dockerfile base replaced by the Dockerfile's steps (recursively in
    stage copies); relative paths resolve against ``base_dir``.

    Copies imported from a Dockerfile read its own context; :func:`envkit.build.keys.plan`
    keeps track of that.
    """
    root = Path(base_dir)
    steps = tuple(
        replace(s, from_=expand(s.from_, root)) if isinstance(s, st.Copy) and s.from_ else s
        for s in image.steps
    )
    if not isinstance(image.base, Dockerfile):
        return Image(image.base, steps)
    df_path = _resolve(image.base.path, root)
    df_context = _resolve(image.base.context, root)
    df = image.base
    parsed = expand(
        parse_dockerfile(df_path, df_context, dict(df.args), target=df.target), df_context
    )
    return Image(parsed.base, (*parsed.steps, *steps))


def _resolve(path: str, base: Path) -> Path:
    return Path(path) if os.path.isabs(path) else base / path
