"""Read a compose file's YAML into plain values that remember their line numbers.

PyYAML is imported here, lazily (only when a compose file is read). Scalars follow
YAML 1.2's core schema, as compose's Go reader (yaml.v3) does: ``no``, ``on`` and
``yes`` are strings, ``22:22`` is a string (YAML 1.1 would read a base-60 number),
only ``true``/``false`` are booleans. Anchors, aliases and ``<<`` merge keys work.
A key given twice in one mapping is an error, as in compose.

Line numbers are :class:`Line` values, which also name their file (several compose
files can be merged into one document). compose's merge tags are kept for the merge:
``!reset`` reads as :data:`RESET`, ``!override`` marks a mapping or sequence
(``override = True``); :func:`drop_resets` removes what ``!reset`` cleared.
"""

from __future__ import annotations

import re
from typing import Any

from envkit.errors import StackFileError


class Line(int):
    """A line number that knows its file (``source``, as shown in messages)."""

    source: str | None = None

    @classmethod
    def at(cls, number: int, source: str | None) -> Line:
        """Line ``number`` of file ``source``."""
        line = cls(number)
        line.source = source
        return line


class Map(dict[str, Any]):
    """A YAML mapping; ``line`` is where it starts, ``lines[key]`` where each key is."""

    line: int = 0
    override: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        """The line of ``key`` (the mapping's own line when the key is not there)."""
        return self.lines.get(key, self.line)


class Seq(list[Any]):
    """A YAML sequence; ``line`` is where it starts, ``lines[i]`` where item ``i`` is."""

    line: int = 0
    override: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []

    def line_of(self, index: int) -> int:
        """The line of item ``index``."""
        return self.lines[index] if 0 <= index < len(self.lines) else self.line


class _Reset:
    """The value of a ``!reset`` node: the attribute is cleared."""

    def __repr__(self) -> str:
        return "RESET"


#: What ``!reset`` reads as.
RESET = _Reset()


def drop_resets(node: Any) -> Any:
    """``node`` without the keys and items ``!reset`` cleared (in place); a reset
    value as a whole is ``None``."""
    if node is RESET:
        return None
    if isinstance(node, Map):
        for key in [k for k, v in node.items() if v is RESET]:
            del node[key]
        for key in node:
            node[key] = drop_resets(node[key])
    elif isinstance(node, Seq):
        kept = [(v, line) for v, line in zip(node, node.lines, strict=False) if v is not RESET]
        node[:] = [drop_resets(v) for v, _ in kept]
        node.lines = [line for _, line in kept]
    return node


_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


def load(text: str, source: str) -> Any:
    """The document in ``text`` (``source`` names the file in errors); ``None`` if empty."""
    import yaml  # lazy for start-up: PyYAML only when a file is read (see envkit.compose)

    class Loader(yaml.SafeLoader):
        pass

    # YAML 1.2 core schema: drop YAML 1.1's implicit types, add the core ones.
    Loader.yaml_implicit_resolvers = {}
    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
    Loader.add_implicit_resolver("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""])
    Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
    Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"])

    def construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
        text = str(loader.construct_scalar(node))
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)

    def construct_map(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
        result = Map()
        result.line = Line.at(node.start_mark.line + 1, source)
        yield result
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise StackFileError(
                        f"{source}:{line}: key {key_node.value!r} is already defined "
                        f"at line {seen[key_node.value]}",
                        hint="keep one of them",
                    )
                seen[key_node.value] = line
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, bool):
                key = "true" if key else "false"
            result[str(key) if key is not None else "null"] = loader.construct_object(
                value_node, deep=True
            )
            result.lines[str(key) if key is not None else "null"] = Line.at(
                key_node.start_mark.line + 1, source
            )

    def construct_seq(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> Any:
        result = Seq()
        result.line = Line.at(node.start_mark.line + 1, source)
        yield result
        for item in node.value:
            result.append(loader.construct_object(item, deep=True))
            result.lines.append(Line.at(item.start_mark.line + 1, source))

    def _untagged(loader: Loader, node: yaml.Node) -> Any:
        """The value of a tagged node as if it had no tag."""
        plain: yaml.Node
        if isinstance(node, yaml.MappingNode):
            plain = yaml.MappingNode(
                "tag:yaml.org,2002:map", node.value, node.start_mark, node.end_mark
            )
        elif isinstance(node, yaml.SequenceNode):
            plain = yaml.SequenceNode(
                "tag:yaml.org,2002:seq", node.value, node.start_mark, node.end_mark
            )
        else:
            tag = loader.resolve(yaml.ScalarNode, node.value, (True, False))  # type: ignore[no-untyped-call]
            plain = yaml.ScalarNode(tag, node.value, node.start_mark, node.end_mark)
        value = loader.construct_object(plain, deep=True)
        if isinstance(value, Map | Seq):
            value.override = True
        return value

    # compose's merge tags (see envkit.compose.merge)
    Loader.add_constructor("!reset", lambda loader, node: RESET)
    Loader.add_constructor("!override", _untagged)
    Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    Loader.add_constructor("tag:yaml.org,2002:map", construct_map)
    Loader.add_constructor("tag:yaml.org,2002:seq", construct_seq)

    try:
        return yaml.load(text, Loader=Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise StackFileError(
            f"{where}: not valid YAML: {exc.problem or exc.context}",
            hint="fix the YAML syntax at that line (indentation, quotes, a missing ':')",
        ) from None
    except yaml.YAMLError as exc:
        raise StackFileError(f"{source}: not valid YAML: {exc}") from None
