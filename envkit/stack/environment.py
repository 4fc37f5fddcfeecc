"""The environment of a service's container, from the Python objects and from files.

Precedence, lowest first (a later source wins for the same variable):

1. the image's ``ENV``;
2. ``.env`` beside the stack file (only for a stack loaded from a file: ``base_dir``;
   not for the services of a compose file, labelled ``com.docker.compose.project``:
   compose reads ``.env`` for interpolation only);
3. the service's ``env_file=`` files, in the order given;
4. the service's ``env=`` mapping.

The process environment of ``envkit up`` is never read, and no ``$VAR`` in a value is
expanded: what a file says is what the container gets.

File format (docker's ``--env-file`` with compose's quotes): one ``KEY=VALUE`` a line;
blank lines and lines starting with ``#`` are skipped; ``export KEY=VALUE`` is accepted;
a value in double quotes may use ``\\n``, ``\\t``, ``\\"`` and ``\\\\``; in single quotes
it is literal; unquoted, it is trimmed and a `` #`` starts a comment.
"""

from __future__ import annotations

import re
from pathlib import Path

from envkit.errors import SpecError
from envkit.spec import Stack

DOTENV = ".env"
#: The label envkit.compose puts on a compose file's services (compose labels its
#: containers so too).
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse(text: str, source: str) -> dict[str, str]:
    """The variables of an env file's ``text`` (``source`` names it in errors)."""
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY_RE.match(key):
            raise SpecError(
                f"{source}:{number}",
                "expected KEY=VALUE",
                value=raw,
                hint="one variable a line, e.g. APP_ENV=staging",
            )
        found[key] = _value(value.strip(), f"{source}:{number}")
    return found


def _value(text: str, where: str) -> str:
    if text[:1] in ("'", '"'):
        quote = text[0]
        end = _closing(text, quote)
        if end < 0:
            raise SpecError(where, f"no closing {quote}", value=text)
        body = text[1:end]
        if quote == "'":
            return body
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body)
    comment = text.find(" #")
    return (text[:comment] if comment >= 0 else text).strip()


def _closing(text: str, quote: str) -> int:
    i = 1
    while i < len(text):
        if text[i] == "\\" and quote == '"':
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return -1


def read(path: Path) -> dict[str, str]:
    """The variables of env file ``path``; a missing or unreadable one is an error
    naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(
            "env_file",
            f"cannot read {path}: {exc.strerror or exc}",
            hint="create the file, or fix the path (relative paths start at the stack file's dir)",
        ) from None
    return parse(text, str(path))


def service_env(stack: Stack, service: str) -> dict[str, str]:
    """The variables ``service`` sets over its image's ``ENV``, in the order above."""
    base = stack.base_dir or Path.cwd()
    env: dict[str, str] = {}
    spec = stack[service]
    from_compose = any(key == COMPOSE_PROJECT_LABEL for key, _ in spec.labels)
    if stack.base_dir is not None and not from_compose and (stack.base_dir / DOTENV).is_file():
        env.update(read(stack.base_dir / DOTENV))
    for name in spec.env_file:
        env.update(read(base / Path(name).expanduser()))
    env.update(spec.env)
    return env
