"""Dockerfile instructions whose words are expanded when the build reaches them.

BuildKit expands ``$VAR`` in ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL and
COPY/ADD against the build's environment at that instruction: the base image's config
``Env`` (with a default ``PATH`` when it has none), then the Dockerfile's ARG and ENV in
order. The import resolves what the Dockerfile itself defines; a word naming anything
else (``ENV PATH=/opt/venv/bin:$PATH``) becomes a step holding a
:class:`~envkit.build.dockerfile_steps.Deferred`, which :func:`resolve` turns into ordinary
steps against the image's config once the build has it.

:func:`config_steps` is shared by both paths, so an instruction gives the same steps
whether it was expanded at import or at build time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from envkit.build.dockerfile_lex import ShellLex
from envkit.build.dockerfile_steps import (
    AddArchive,
    Deferred,
    ExpandConfig,
    ExpandCopy,
    ExpandWriteFile,
    SetStopSignal,
    SetVolumes,
    WriteFile,
)
from envkit.errors import BuildError, SpecError
from envkit.spec import steps as st
from envkit.spec.image import Image

#: BuildKit's PATH for an image whose config has none (``system.DefaultPathEnv``).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Instructions whose arguments are split into several words after expansion.
SPLIT_WORDS = frozenset({"EXPOSE"})


def config_env(settings: Mapping[str, Any]) -> dict[str, str]:
    """The config's ``Env`` as a mapping, ``PATH`` defaulted as BuildKit does."""
    env: dict[str, str] = {}
    for item in settings.get("Env") or []:
        if isinstance(item, str):
            key, _, value = item.partition("=")
            env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def expand_words(deferred: Deferred, env: Mapping[str, str]) -> list[str]:
    """The deferred words expanded in ``env`` (ValueError when one is malformed)."""
    lex = ShellLex(deferred.escape)
    if deferred.instruction in SPLIT_WORDS:
        return [w for word in deferred.words for w in lex.process_words(word, env)]
    return [lex.process_word(word, env).result for word in deferred.words]


def config_steps(instruction: str, words: Sequence[str]) -> list[st.Step]:
    """The steps of a config instruction given its expanded words.

    ENV and LABEL take ``key, value`` pairs; EXPOSE ``80``, ``53/udp`` or ``9000-9010``.
    Raises SpecError (without a position) for what the Image spec refuses.
    """
    image = Image.scratch()
    if instruction in ("ENV", "LABEL"):
        pairs = dict(zip(words[::2], words[1::2], strict=True))
        image = image.env(pairs) if instruction == "ENV" else image.label(pairs)
    elif instruction == "WORKDIR":
        image = image.workdir(words[0])
    elif instruction == "USER":
        image = image.user(words[0])
    elif instruction == "EXPOSE":
        image = _expose(image, words)
    elif instruction == "VOLUME":
        paths = tuple(w.strip() for w in words)
        if any(not p for p in paths):
            raise SpecError("VOLUME", "VOLUME specified can not be an empty string")
        return [SetVolumes((), paths)]
    elif instruction == "STOPSIGNAL":
        return [SetStopSignal((), check_signal(words[0]))]
    else:
        raise SpecError(instruction, "cannot be expanded at build time (envkit bug)")
    return list(image.steps)


def _expose(image: Image, words: Sequence[str]) -> Image:
    for item in words:
        port, _, proto = item.partition("/")
        low, dash, high = port.partition("-")
        protocol = (proto or "tcp").lower()
        if dash and low.isdigit() and high.isdigit():
            if int(high) < int(low):
                raise SpecError("EXPOSE", f"invalid port range {port}", hint="e.g. 9000-9010")
            if int(high) - int(low) > 1024:
                raise SpecError("EXPOSE", f"port range {port} is too wide", hint="<= 1024 ports")
            for number in range(int(low), int(high) + 1):
                image = image.expose(number, protocol)
        else:
            image = image.expose(port, protocol)
    return image


#: moby/sys/signal's SignalMap on Linux (names without SIG), plus RTMIN+n / RTMAX-n.
SIGNALS = frozenset(
    [
        "ABRT",
        "ALRM",
        "BUS",
        "CHLD",
        "CLD",
        "CONT",
        "FPE",
        "HUP",
        "ILL",
        "INT",
        "IO",
        "IOT",
        "KILL",
        "PIPE",
        "POLL",
        "PROF",
        "PWR",
        "QUIT",
        "SEGV",
        "STKFLT",
        "STOP",
        "SYS",
        "TERM",
        "TRAP",
        "TSTP",
        "TTIN",
        "TTOU",
        "UNUSED",
        "URG",
        "USR1",
        "USR2",
        "VTALRM",
        "WINCH",
        "XCPU",
        "XFSZ",
        "RTMIN",
        "RTMAX",
    ]
    + [f"RTMIN+{n}" for n in range(1, 16)]
    + [f"RTMAX-{n}" for n in range(1, 15)]
)


def check_signal(text: str) -> str:
    """``text`` if it names a signal as moby's ``signal.ParseSignal`` reads it."""
    try:
        number = int(text)
    except ValueError:
        number = -1 if text.upper().removeprefix("SIG") in SIGNALS else 0
    if number == 0:
        raise SpecError("STOPSIGNAL", f"invalid signal: {text}", hint="e.g. SIGQUIT or 3")
    return text


def resolve(step: st.Step, settings: Mapping[str, Any]) -> list[st.Step]:
    """``step`` with its deferred words expanded against ``settings`` (the config's
    ``config`` object at that step); other steps as they are. BuildError on failure."""
    if isinstance(step, ExpandConfig | ExpandCopy | ExpandWriteFile):
        deferred = step.deferred
        env = {**config_env(settings), **dict(deferred.scope)}
        try:
            if isinstance(step, ExpandConfig):
                return config_steps(deferred.instruction, expand_words(deferred, env))
            if isinstance(step, ExpandWriteFile):
                head = Deferred(deferred.instruction, deferred.words[:3], (), deferred.escape)
                words = expand_words(head, env)
                content = deferred.words[3]
                raw = ShellLex("\\", skip_process_quotes=True)
                words.append(raw.process_word(content, env).result if content else step.content)
                return [_copy(step, words)]
            return [_copy(step, expand_words(deferred, env))]
        except (ValueError, SpecError) as exc:
            text = exc.message if isinstance(exc, SpecError) else str(exc)
            raise BuildError(f"{deferred.instruction} {' '.join(deferred.words)}: {text}") from None
    return [step]


def _copy(step: ExpandCopy | ExpandWriteFile, words: list[str]) -> st.Copy:
    dst, chown, chmod = words[0], words[1] or None, words[2] or None
    made = Image.scratch().copy(step.src, dst, from_=step.from_, chown=chown, chmod=chmod)
    base = made.steps[-1]
    assert isinstance(base, st.Copy)
    if isinstance(step, ExpandWriteFile):
        target = base.dst + step.src if dst.endswith("/") else base.dst
        return WriteFile(base.src, target, None, (), base.chown, base.chmod, words[3])
    cls = AddArchive if step.extract else st.Copy
    return cls(base.src, base.dst, step.from_, step.ignore, base.chown, base.chmod)


def deferred_config(
    instruction: str, words: Sequence[str], scope: Mapping[str, str], escape: str
) -> ExpandConfig:
    """The step of a config instruction whose words wait for the base image's Env."""
    pairs = tuple(sorted(scope.items()))
    return ExpandConfig((), Deferred(instruction, tuple(words), pairs, escape))
