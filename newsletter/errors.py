"""The one exception type for problems a user can fix, and where they happened."""

from __future__ import annotations

from typing import NamedTuple


class Location(NamedTuple):
    """A place in a file: 1-based line and column (0 when unknown)."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line and self.col:
            return f"{self.file}:{self.line}:{self.col}"
        if self.line:  # a CSV row: the line is known, the column is not
            return f"{self.file}:{self.line}"
        return self.file


class Problem(NamedTuple):
    """One finding of the checker: an error, or a warning that does not stop a build."""

    where: Location | None
    message: str
    warning: bool = False

    def order(self) -> tuple[int, int]:
        """Sort key: problems are reported in file order."""
        return (self.where.line, self.where.col) if self.where else (0, 0)

    def __str__(self) -> str:
        kind = "warning: " if self.warning else ""
        if self.where is None:
            return f"{kind}{self.message}"
        return f"{self.where}: {kind}{self.message}"


class NewsletterError(Exception):
    """A problem the user can fix. The CLI prints it and exits with ``exit_code``."""

    exit_code = 1

    def __init__(self, message: str, where: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def lines(self) -> list[str]:
        """What the CLI prints, one line per problem."""
        text = self.message if self.where is None else f"{self.where}: {self.message}"
        return [text + (f" ({self.hint})" if self.hint else "")]

    def __str__(self) -> str:
        return "\n".join(self.lines())


class Invalid(NewsletterError):
    """A file with one or more errors; every problem found is reported at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=Problem.order)
        errors = [p for p in problems if not p.warning]
        super().__init__(f"{len(errors)} error(s)")

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]
