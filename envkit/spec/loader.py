"""Loading a stack file: run a Python file and find the Stack it defines.

Every failure is one :class:`~envkit.errors.StackFileError` whose message names the file
and line, never a traceback: a missing file, a syntax error, an exception raised while the
file runs (a :class:`~envkit.errors.SpecError` included), no Stack, or several Stacks and
no choice among them.
"""

from __future__ import annotations

import itertools
import sys
import types
from pathlib import Path

from envkit.errors import SpecError, StackFileError
from envkit.spec.image import Image

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.spec.stack import Stack

#: Default stack file name, looked up in the current directory.
DEFAULT_FILE = "stack.py"

_counter = itertools.count()


def load_stack(path: Path, name: str | None = None) -> Stack:
    """Run the stack file at ``path`` and return its Stack (the one named ``name``).

    The file runs as a fresh module (``__name__`` is not ``"__main__"``) with its
    directory first on ``sys.path``, so it can import helper modules next to it. The
    returned Stack has ``base_dir`` set to that directory.
    """
    shown = str(path)
    module = _run(path, shown)
    stacks = _find_stacks(module)
    stack = _choose(stacks, name, shown)
    return stack.with_base_dir(path.absolute().parent)


def load_image(path: Path, name: str) -> Image:
    """Run the Python file at ``path`` (as :func:`load_stack` does) and return the Image
    bound to ``name`` in it (``envkit build app.py:web``)."""
    shown = str(path)
    module = _run(path, shown)
    value = getattr(module, name, None)
    if not isinstance(value, Image):
        found = sorted(k for k, v in vars(module).items() if isinstance(v, Image))
        what = "nothing" if value is None else f"a {type(value).__name__}"
        raise StackFileError(
            f"{shown}: {name!r} is {what}, not an Image",
            hint=f"images defined there: {', '.join(found) or 'none'}",
        )
    return value


def _run(path: Path, shown: str) -> types.ModuleType:
    try:
        source = path.read_bytes()
    except FileNotFoundError:
        raise StackFileError(
            f"{shown}: no such stack file",
            hint="create it, or give the path of your stack file",
        ) from None
    except IsADirectoryError:
        raise StackFileError(
            f"{shown}: is a directory, not a stack file",
            hint=f"give the file inside it, e.g. {path / DEFAULT_FILE}",
        ) from None
    except OSError as exc:
        raise StackFileError(f"{shown}: cannot read: {exc.strerror}") from None
    filename = str(path.absolute())
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"{shown}:{exc.lineno or 0}:{exc.offset or 0}"
        raise StackFileError(
            f"{where}: syntax error: {exc.msg}",
            hint="fix the Python syntax at that line",
        ) from None
    except ValueError as exc:  # source with NUL bytes
        raise StackFileError(f"{shown}: not a Python file: {exc}") from None

    modname = f"_envkit_stack_{next(_counter)}"
    module = types.ModuleType(modname)
    module.__file__ = filename
    directory = str(path.absolute().parent)
    # Registered while it runs: dataclasses and pickling defined in the file look it up.
    sys.modules[modname] = module
    sys.path.insert(0, directory)
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:
        raise _error_from(exc, filename, shown) from None
    finally:
        sys.modules.pop(modname, None)
        if directory in sys.path:
            sys.path.remove(directory)
    return module


def _error_from(exc: BaseException, filename: str, shown: str) -> StackFileError:
    """One message for an exception raised while the file ran: FILE:LINE and the cause."""
    import traceback  # only for an error: a cached `envkit build` never pays for it

    line = 0
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno or 0
    where = f"{shown}:{line}" if line else shown
    if isinstance(exc, SpecError):
        return StackFileError(f"{where}: {exc.message}", hint=exc.hint)
    if isinstance(exc, StackFileError):
        return StackFileError(f"{where}: {exc.message}", hint=exc.hint)
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return StackFileError(
        f"{where}: {detail}",
        hint="fix the stack file at that line (ENVKIT_DEBUG=1 shows the traceback)",
    )


def _find_stacks(module: types.ModuleType) -> list[Stack]:
    # lazy for start-up: `envkit build app.py:web` (load_image) needs no Stack
    from envkit.spec.stack import Stack

    found: list[Stack] = []
    for value in vars(module).values():
        # One Stack bound to two names (or two equal ones) is one choice, not two.
        if isinstance(value, Stack) and value not in found:
            found.append(value)
    return found


def _choose(stacks: list[Stack], name: str | None, shown: str) -> Stack:
    names = ", ".join(sorted(s.name for s in stacks))
    if name is not None:
        matching = [s for s in stacks if s.name == name]
        if not matching:
            raise StackFileError(
                f"{shown}: no stack named {name!r} (found: {names or 'none'})",
                hint="pass one of the names found with --stack NAME",
            )
        if len(matching) > 1:
            raise StackFileError(
                f"{shown}: several different stacks are named {name!r}",
                hint="give each Stack its own name",
            )
        return matching[0]
    if not stacks:
        raise StackFileError(
            f"{shown}: no Stack found",
            hint=f'define a Stack in {shown}: stack = Stack("myapp", services=[...])',
        )
    if len(stacks) > 1:
        raise StackFileError(
            f"{shown}: found stacks {names}; choose one with --stack NAME",
            hint="or keep a single Stack at the top level of the file",
        )
    return stacks[0]
