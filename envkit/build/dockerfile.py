"""Import a Dockerfile as :class:`~envkit.spec.image.Image` objects.

:func:`parse_dockerfile` turns each ``FROM`` stage into an Image of ordinary steps and
returns the final one (or the stage named by ``target``); ``COPY --from=<stage>`` becomes
``copy(from_=<that stage's Image>)``. :func:`expand` replaces the ``dockerfile`` base that
``Image.from_dockerfile`` records by the imported steps. What an Image cannot express
(ONBUILD, STOPSIGNAL, VOLUME, ADD from a URL, ...) raises :class:`~envkit.errors.SpecError`
naming the file and line. See docs/reference/dockerfile.md for the full list.
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Literal

from envkit.build._old_dockerfile_lex import (
    Heredoc,
    Instruction,
    Source,
    expand_word,
    expand_words,
    parse_duration,
    split,
    take_flags,
)
from envkit.build.extra_steps import AddArchive, WriteFile
from envkit.errors import EnvkitError, SpecError
from envkit.spec import steps as st
from envkit.spec.bases import Dockerfile
from envkit.spec.healthcheck import Healthcheck
from envkit.spec.image import SHELL, Image
from envkit.spec.secret import Secret

_REFUSED = {
    "ONBUILD": "triggers run in a later build from this image; envkit images have no triggers",
    "STOPSIGNAL": "an Image has no stop signal; set it on the Service",
    "VOLUME": "an Image declares no volumes; mount a Volume on the Service instead",
}
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
_URL_RE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@)", re.IGNORECASE)
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass
class _Stage:
    image: Image
    name: str | None
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str | None] = field(default_factory=dict)
    shell: tuple[str, ...] = SHELL

    def scope(self) -> dict[str, str]:
        """What ``$VAR`` expands to: declared build args, overridden by ENV."""
        found = {k: v for k, v in self.args.items() if v is not None}
        return {**found, **self.env}


def _platform_args() -> dict[str, str]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)
    plat = f"linux/{arch}"
    return {
        "TARGETPLATFORM": plat, "TARGETOS": "linux", "TARGETARCH": arch, "TARGETVARIANT": "",
        "BUILDPLATFORM": plat, "BUILDOS": "linux", "BUILDARCH": arch, "BUILDVARIANT": "",
    }  # fmt: skip


class _Parser:
    def __init__(
        self,
        source: Source,
        context: Path,
        build_args: Mapping[str, str],
        secrets: Mapping[str, Secret],
    ) -> None:
        self.src = source
        self.context = context
        self.build_args = dict(build_args)
        self.secrets = dict(secrets)
        self.global_args: dict[str, str | None] = {}
        self.stages: list[_Stage] = []

    # -- helpers -----------------------------------------------------------------------

    def error(self, inst: Instruction, message: str, hint: str | None = None) -> SpecError:
        return self.src.error(inst.line, f"{inst.name}: {message}", hint)

    def word(self, inst: Instruction, text: str, env: Mapping[str, str]) -> str:
        try:
            return expand_word(text, env, self.src.escape)
        except ValueError as exc:
            raise self.error(inst, str(exc)) from None

    def words(self, inst: Instruction, text: str, env: Mapping[str, str]) -> list[str]:
        try:
            return expand_words(text, env, self.src.escape)
        except ValueError as exc:
            raise self.error(inst, str(exc)) from None

    def stage(self, inst: Instruction) -> _Stage:
        if not self.stages:
            raise self.error(inst, "comes before the first FROM", hint="start with FROM")
        return self.stages[-1]

    def flag(self, inst: Instruction, name: str, env: Mapping[str, str]) -> str | None:
        values = inst.flags.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise self.error(inst, f"--{name} given more than once")
        return self.word(inst, values[-1], env)

    def exec_form(self, text: str) -> list[str] | None:
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        return None

    def command(self, inst: Instruction, stage: _Stage) -> list[str] | str:
        argv = self.exec_form(inst.rest)
        if argv is not None:
            return argv
        if not inst.rest:
            raise self.error(inst, "has no command")
        return inst.rest if stage.shell == SHELL else [*stage.shell, inst.rest]

    def spec(self, inst: Instruction, make: Callable[[], Image]) -> Image:
        """Call a spec builder, re-raising its SpecError with this line's position."""
        try:
            return make()
        except SpecError as exc:
            raise self.src.error(inst.line, f"{inst.name}: {exc.message}", exc.hint) from None

    # -- instructions ------------------------------------------------------------------

    def run(self) -> None:
        for inst in self.src.instructions:
            handler = getattr(self, f"do_{inst.name.lower()}", None)
            if inst.name in _REFUSED:
                raise self.error(inst, "not supported: " + _REFUSED[inst.name])
            if handler is None:
                raise self.error(
                    inst, "unknown instruction", hint="see docs/reference/dockerfile.md"
                )
            handler(inst)
        if not self.stages:
            raise self.src.error(1, "no FROM instruction", hint="a Dockerfile starts with FROM")

    def do_from(self, inst: Instruction) -> None:
        take_flags(inst, self.src, frozenset({"platform"}))
        if "platform" in inst.flags:
            raise self.error(inst, "--platform is not supported: envkit builds for the host")
        scope = {k: v for k, v in self.global_args.items() if v is not None}
        words = self.words(inst, inst.rest, scope)
        if len(words) == 3 and words[1].lower() == "as":
            ref, name = words[0], words[2].lower()
        elif len(words) == 1:
            ref, name = words[0], None
        else:
            raise self.error(inst, "expected FROM image [AS name]", hint="FROM busybox AS build")
        parent = self.find_stage(ref)
        if parent is not None:
            stage = _Stage(parent.image, name, dict(parent.env), {}, parent.shell)
        elif ref.lower() == "scratch":
            stage = _Stage(Image.scratch(), name)
        else:
            stage = _Stage(self.spec(inst, lambda: Image.from_(ref)), name)
        self.stages.append(stage)

    def find_stage(self, ref: str) -> _Stage | None:
        for stage in self.stages:
            if stage.name is not None and stage.name == ref.lower():
                return stage
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None

    def do_arg(self, inst: Instruction) -> None:
        target = self.stages[-1] if self.stages else None
        scope = target.scope() if target else {k: v for k, v in self.global_args.items() if v}
        for item in self.words(inst, inst.rest, scope):
            name, eq, default = item.partition("=")
            value: str | None = default if eq else None
            if name in self.build_args:
                value = self.build_args[name]
            elif value is None and target is not None and name in self.global_args:
                value = self.global_args[name]
            elif value is None:
                value = _platform_args().get(name)
            if target is None:
                self.global_args[name] = value
            else:
                target.args[name] = value

    def do_env(self, inst: Instruction) -> None:
        stage = self.stage(inst)
        pairs = self.pairs(inst, stage.scope(), legacy=True)
        stage.env.update(pairs)
        stage.image = self.spec(inst, lambda: stage.image.env(dict(pairs)))

    def do_label(self, inst: Instruction) -> None:
        stage = self.stage(inst)
        pairs = self.pairs(inst, stage.scope(), legacy=False)
        stage.image = self.spec(inst, lambda: stage.image.label(dict(pairs)))

    def do_maintainer(self, inst: Instruction) -> None:
        stage = self.stage(inst)
        stage.image = self.spec(inst, lambda: stage.image.label(maintainer=inst.rest))

    def pairs(
        self, inst: Instruction, env: Mapping[str, str], legacy: bool
    ) -> list[tuple[str, str]]:
        words = self.words(inst, inst.rest, env)
        if not words:
            raise self.error(inst, "needs at least one key=value")
        if legacy and "=" not in words[0]:
            key, _, value = inst.rest.partition(" ")
            return [(key, self.word(inst, value.strip(), env))]
        out = []
        for item in words:
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise self.error(inst, f"expected key=value, got {item!r}")
            out.append((key, value))
        return out

    def do_workdir(self, inst: Instruction) -> None:
        stage = self.stage(inst)
        path = self.word(inst, inst.rest, stage.scope())
        stage.image = self.spec(inst, lambda: stage.image.workdir(path))

    def do_user(self, inst: Instruction) -> None:
        stage = self.stage(inst)
        user = self.word(inst, inst.rest, stage.scope())
        stage.image = self.spec(inst, lambda: stage.image.user(user))

    def do_expose(self, inst: Instruction) -> None:
        stage = self.stage(inst)
        for item in self.words(inst, inst.rest, stage.scope()):
            port, _, proto = item.partition("/")
            low, dash, high = port.partition("-")
            if dash and low.isdigit() and high.isdigit() and int(high) - int(low) > 1024:
                raise self.error(
                    inst, f"port range {port} is too wide", hint="expose <= 1024 ports"
                )
            ports: Sequence[int | str] = (
                range(int(low), int(high) + 1)
                if dash and low.isdigit() and high.isdigit()
                else [port]
            )
            protocol = (proto or "tcp").lower()
            for number in ports:
                stage.image = self.spec(inst, partial(stage.image.expose, number, protocol))

    def do_shell(self, inst: Instruction) -> None:
        stage = self.stage(inst)
        argv = self.exec_form(inst.rest)
        if not argv:
            raise self.error(inst, "needs the JSON form", hint='SHELL ["/bin/bash", "-c"]')
        stage.shell = tuple(argv)

    def do_cmd(self, inst: Instruction) -> None:
        stage = self.stage(inst)
        argv = self.exec_form(inst.rest) if inst.rest else []
        value = argv if argv is not None else self.command(inst, stage)
        stage.image = self.spec(inst, lambda: stage.image.cmd(value))

    def do_entrypoint(self, inst: Instruction) -> None:
        stage = self.stage(inst)
        argv = self.exec_form(inst.rest) if inst.rest else []
        value = argv if argv is not None else self.command(inst, stage)
        stage.image = self.spec(inst, lambda: stage.image.entrypoint(value))

    def do_healthcheck(self, inst: Instruction) -> None:
        stage = self.stage(inst)
        take_flags(
            inst,
            self.src,
            frozenset({"interval", "timeout", "start-period", "retries", "start-interval"}),
        )
        if "start-interval" in inst.flags:
            raise self.error(inst, "--start-interval is not supported by envkit's Healthcheck")
        kind, _, rest = inst.rest.partition(" ")
        if kind.upper() == "NONE":
            check = Healthcheck(["NONE"])
        elif kind.upper() == "CMD":
            cmd = rest.strip()
            argv = self.exec_form(cmd)
            test: list[str] | str = argv if argv is not None else cmd
            options: dict[str, float] = {}
            for name in ("interval", "timeout", "start-period"):
                text = self.flag(inst, name, stage.scope())
                if text is not None:
                    try:
                        options[name.replace("-", "_")] = parse_duration(text)
                    except ValueError as exc:
                        raise self.error(inst, f"--{name}: {exc}", hint="e.g. 30s, 1m30s") from None
            retries = self.flag(inst, "retries", stage.scope())
            try:
                check = Healthcheck(
                    test,
                    interval=options.get("interval", 30.0),
                    timeout=options.get("timeout", 30.0),
                    start_period=options.get("start_period", 0.0),
                    retries=int(retries) if retries is not None else 3,
                )
            except (SpecError, ValueError) as exc:
                raise self.error(inst, str(exc)) from None
        else:
            raise self.error(inst, "expected NONE or CMD", hint="HEALTHCHECK CMD pg_isready")
        stage.image = self.spec(inst, lambda: stage.image.healthcheck(check))

    def do_run(self, inst: Instruction) -> None:
        stage = self.stage(inst)
        take_flags(inst, self.src, frozenset({"mount", "network"}))
        scope = stage.scope()
        secrets: list[Secret] = []
        caches: dict[str, str] = {}
        for spec in inst.flags.get("mount", []):
            self.mount(inst, self.word(inst, spec, scope), secrets, caches)
        network = self.flag(inst, "network", scope)
        if network not in (None, "default", "none", "host"):
            raise self.error(inst, f"--network={network} is not supported", hint="none or host")
        net: Literal["host", "none"] | None = (
            "none" if network == "none" else "host" if network == "host" else None
        )
        cmd = self.heredoc_script(inst, stage) if inst.heredocs else self.command(inst, stage)
        env = {k: v for k, v in stage.args.items() if v is not None and k not in stage.env}
        stage.image = self.spec(
            inst,
            lambda: stage.image.run(
                cmd,
                secrets=secrets,
                caches=caches,
                network=net,
                env=env,
            ),
        )

    def heredoc_script(self, inst: Instruction, stage: _Stage) -> list[str] | str:
        """A RUN with heredocs, given whole to the shell (which implements heredocs)."""
        first = inst.heredocs[0]
        if inst.rest.strip() in (f"<<{first.name}", f"<<-{first.name}") and len(inst.heredocs) == 1:
            body = first.body
            if body.startswith("#!"):
                interpreter, _, script = body.partition("\n")
                return [
                    *stage.shell,
                    f"{interpreter[2:].strip()} <<'{first.name}'\n{script}{first.name}\n",
                ]
            return body if stage.shell == SHELL else [*stage.shell, body]
        script = inst.rest + "\n" + "".join(_heredoc_text(h) for h in inst.heredocs)
        return script if stage.shell == SHELL else [*stage.shell, script]

    def mount(
        self, inst: Instruction, text: str, secrets: list[Secret], caches: dict[str, str]
    ) -> None:
        options: dict[str, str] = {}
        for part in text.split(","):
            key, eq, value = part.partition("=")
            options[key.strip().lower()] = value.strip() if eq else "true"
        kind = options.pop("type", "bind")
        target = (
            options.pop("target", None)
            or options.pop("dst", None)
            or options.pop("destination", None)
        )
        if kind == "secret":
            ident = options.pop("id", None) or (os.path.basename(target) if target else None)
            if not ident:
                raise self.error(
                    inst, "a secret mount needs id=", hint="--mount=type=secret,id=token"
                )
            required = options.pop("required", "false").lower() in ("true", "1")
            if "env" in options:
                raise self.error(
                    inst,
                    "secret mounts with env= are not supported yet",
                    hint="read /run/secrets/<id> in the command instead",
                )
            name = ident
            if target is not None:
                if not target.startswith("/"):
                    target = "/run/secrets/" + target
                if os.path.dirname(target) != "/run/secrets":
                    raise self.error(
                        inst,
                        f"secret target {target} is outside /run/secrets",
                        hint="envkit mounts build secrets at /run/secrets/<name>",
                    )
                name = os.path.basename(target)
            self.reject_options(inst, options, kind)
            given = self.secrets.get(ident)
            source = given.source if given is not None else f"env:{ident}"
            try:
                secrets.append(Secret(name, source, required=required))
            except SpecError as exc:
                raise self.error(inst, exc.message, exc.hint) from None
        elif kind == "cache":
            if not target:
                raise self.error(inst, "a cache mount needs target=", hint="target=/root/.cache")
            options.pop("sharing", None)
            ident = options.pop("id", None) or target.strip("/").replace("/", "_") or "root"
            self.reject_options(inst, options, kind)
            caches[target] = ident
        else:
            raise self.error(
                inst,
                f"--mount=type={kind} is not supported",
                hint="envkit supports type=secret and type=cache; copy files with COPY",
            )

    def reject_options(self, inst: Instruction, options: Mapping[str, str], kind: str) -> None:
        if options:
            raise self.error(
                inst, f"--mount=type={kind} option {sorted(options)[0]}= is not supported"
            )

    def do_copy(self, inst: Instruction) -> None:
        self.copy(inst, add=False)

    def do_add(self, inst: Instruction) -> None:
        self.copy(inst, add=True)

    def copy(self, inst: Instruction, *, add: bool) -> None:
        stage = self.stage(inst)
        allowed = {"chown", "chmod", "link"} | (set() if add else {"from"})
        take_flags(inst, self.src, frozenset(allowed))
        scope = stage.scope()
        argv = self.exec_form(inst.rest)
        args = argv if argv is not None else self.words(inst, inst.rest, scope)
        if len(args) < 2:
            raise self.error(inst, "needs a source and a destination", hint="COPY src /dst/")
        *sources, dst = args
        if len(sources) > 1 and not dst.endswith("/"):
            raise self.error(inst, "with several sources the destination must end with /")
        chown = self.flag(inst, "chown", scope)
        chmod = self.flag(inst, "chmod", scope)
        from_ref = self.flag(inst, "from", scope)
        from_image = None
        if from_ref is not None:
            found = self.find_stage(from_ref)
            from_image = found.image if found else self.spec(inst, lambda: Image.from_(from_ref))
        heredocs = {h.name: h for h in inst.heredocs}
        for src in sources:
            heredoc = heredocs.get(src.lstrip("<-").strip("'\""))
            if src.startswith("<<") and heredoc is not None:
                stage.image = self.write_file(inst, stage, heredoc, dst, chown, chmod)
                continue
            if add and _URL_RE.match(src):
                raise self.error(
                    inst,
                    f"ADD from a URL ({src}) is not supported: its content is not pinned",
                    hint="download it in a RUN step (with a checksum), or into the context",
                )
            extract = add and self.is_archive(inst, src)
            copy = partial(stage.image.copy, src, dst, from_=from_image, chown=chown, chmod=chmod)
            image = self.spec(inst, copy)
            if extract:
                image = _swap_last(image, AddArchive)
            stage.image = image

    def is_archive(self, inst: Instruction, src: str) -> bool:
        if _GLOB_CHARS.search(src):
            if any(_is_archive_file(p) for p in self.context.glob(src.lstrip("/"))):
                raise self.error(
                    inst,
                    f"ADD {src}: a glob matching archives is not supported",
                    hint="ADD each archive on its own line",
                )
            return False
        return _is_archive_file(self.context / src.lstrip("/"))

    def write_file(
        self,
        inst: Instruction,
        stage: _Stage,
        doc: Heredoc,
        dst: str,
        chown: str | None,
        chmod: str | None,
    ) -> Image:
        content = doc.body
        if doc.expand:
            content = "".join(
                self.word(inst, line, stage.scope()) + "\n" if line else "\n"
                for line in content.splitlines()
            )
        target = dst + doc.name if dst.endswith("/") else dst
        image = self.spec(
            inst, lambda: stage.image.copy(doc.name, target, chown=chown, chmod=chmod)
        )
        last = image.steps[-1]
        assert isinstance(last, st.Copy)
        step = WriteFile(last.src, last.dst, None, (), last.chown, last.chmod, content)
        return Image(stage.image.base, (*stage.image.steps, step))


def _heredoc_text(doc: Heredoc) -> str:
    return doc.body + doc.name + "\n"


def _swap_last(image: Image, cls: type[AddArchive]) -> Image:
    last = image.steps[-1]
    assert isinstance(last, st.Copy)
    step = cls(last.src, last.dst, last.from_, last.ignore, last.chown, last.chmod)
    return Image(image.base, (*image.steps[:-1], step))


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
    an Image cannot express.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvkitError(
            f"{file}: cannot read Dockerfile: {exc.strerror}", hint="check the path"
        ) from None
    by_id = dict(secrets) if isinstance(secrets, Mapping) else {s.name: s for s in secrets}
    parser = _Parser(split(text, str(file)), Path(context), build_args or {}, by_id)
    parser.run()
    if target is None:
        return parser.stages[-1].image
    found = parser.find_stage(target)
    if found is None:
        raise SpecError(f"{file}", f"no stage named {target!r}", hint="check FROM ... AS <name>")
    return found.image


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
    parsed = expand(parse_dockerfile(df_path, df_context), df_context)
    return Image(parsed.base, (*parsed.steps, *steps))


def _resolve(path: str, base: Path) -> Path:
    return Path(path) if os.path.isabs(path) else base / path
