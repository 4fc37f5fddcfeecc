"""Where a compose file is wrong: one message naming the file, line and key."""

from __future__ import annotations

from envkit.errors import StackFileError
from envkit.records import Record, field


class Reporter(Record):
    """Collects warnings and raises errors for one compose file (``source``)."""

    source: str
    warnings: list[str] = field(default_factory=list)

    def place(self, line: int) -> str:
        """``file:line``; the file is the one ``line`` came from, when it says so
        (:class:`~envkit.compose.yaml_lines.Line`), else this reporter's."""
        source = getattr(line, "source", None) or self.source
        return f"{source}:{line}" if line else source

    def error(self, line: int, where: str, message: str, hint: str | None = None) -> StackFileError:
        """An error to raise: ``compose.yaml:12: services.web.ports[0]: message``."""
        place = self.place(line)
        return StackFileError(
            f"{place}: {where}: {message}" if where else f"{place}: {message}", hint=hint
        )

    def warn(self, line: int, where: str, message: str) -> None:
        """Record a warning the caller shows (the CLI on stderr)."""
        place = self.place(line)
        self.warnings.append(f"{place}: {where}: {message}" if where else f"{place}: {message}")
