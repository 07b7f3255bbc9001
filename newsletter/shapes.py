"""A small vocabulary for describing YAML files: each shape checks a value and
describes itself as JSON Schema, so the checker and ``newsletter schema`` cannot drift.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from newsletter.errors import Problem
from newsletter.source import Invalid, Path_, Source, intended_number

# The fixed sections of an issue, in the order they are rendered.
SECTION_KEYS = ("featured", "use_cases", "papers", "articles", "other")

MISSING: Any = object()


class Context:
    """What a check needs besides the value: the source for locations, and the problems."""

    def __init__(self, source: Source, base_dir: Path, problems: list[Problem] | None = None):
        self.source = source
        self.base_dir = base_dir
        self.problems = problems if problems is not None else []

    def error(self, path: Path_, message: str, key: bool = False, label: Path_ | None = None) -> Any:
        """Record an error at ``path`` (its key when ``key``), named by ``label`` (default: path)."""
        where = self.source.key_where(path) if key else self.source.where(path)
        label = path if label is None else label
        self.problems.append(Problem(where, f"{dotted(label)}: {message}" if label else message))
        return MISSING

    def warn(self, path: Path_, message: str) -> None:
        self.problems.append(Problem(self.source.where(path), f"{dotted(path)}: {message}", True))


def dotted(path: Path_) -> str:
    """``("sections", "papers", 2, "url")`` -> ``sections.papers[2].url``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return next((name for kind, name in _TYPE_NAMES if isinstance(value, kind)), "text")


_TYPE_NAMES = ((bool, "true/false"), ((int, float), "a number"), (dt.date, "a date"), (list, "a list"),
               (dict, "a mapping"))


class Shape:
    """Base: ``check`` returns the clean value or MISSING after recording a problem."""

    description = ""

    def check(self, value: Any, path: Path_, ctx: Context) -> Any:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError


class Text(Shape):
    """A string. Single-line text (titles, subjects) may not hold line breaks or tabs; no
    text may hold other control characters (they break MJML, headers and terminals)."""

    def __init__(self, multiline: bool = False, pattern: str = ""):
        self.multiline = multiline
        self.pattern = pattern

    def check(self, value: Any, path: Path_, ctx: Context) -> Any:
        if not isinstance(value, str):
            return ctx.error(path, f"expected text, got {_type_name(value)}")
        if not self.multiline and ("\n" in value.strip() or "\r" in value):
            return ctx.error(path, "must be a single line (no line breaks)")
        bad = (_CONTROL if self.multiline else _ONE_LINE_CONTROL).search(value.strip("\n"))
        if bad:
            what = "a tab; use a space" if bad[0] == "\t" else f"a control character (U+{ord(bad[0]):04X}); remove it"
            return ctx.error(path, f"holds {what}")
        if self.pattern and not re.fullmatch(self.pattern, value):
            return ctx.error(path, f"'{value}' does not look like {self.description or self.pattern}")
        return value.strip() if not self.multiline else value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", **({"pattern": f"^(?:{self.pattern})$"} if self.pattern else {})}


# C0 and C1 controls, and Unicode's line and paragraph separators (tab and LF/CR: multi-line only).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_ONE_LINE_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class Markdown(Text):
    """CommonMark text: inline links, emphasis, code; raw HTML is shown as text."""

    def __init__(self) -> None:
        super().__init__(multiline=True)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "contentMediaType": "text/markdown"}


class Integer(Shape):
    """A whole number written in plain decimal: YAML 1.1 reads 034 as 28 and 0x22 as 34."""

    def __init__(self, minimum: int = 1):
        self.minimum = minimum

    def check(self, value: Any, path: Path_, ctx: Context) -> Any:
        text = ctx.source.texts.get(path, value if isinstance(value, str) else None)
        if text is not None and not _DECIMAL.fullmatch(text):
            meant = intended_number(text)
            if meant is not None or isinstance(value, int):
                read = f" (YAML reads it as {value})" if isinstance(value, int) and value != meant else ""
                hint = f"; write {meant}" if meant is not None else ""
                return ctx.error(path, f"'{text}' is not a plain decimal number{read}{hint}")
        if not isinstance(value, int) or isinstance(value, bool):
            quoted = f"; write {value} without quotes" if isinstance(value, str) and _DECIMAL.fullmatch(value) else ""
            return ctx.error(path, f"expected a whole number, got {_type_name(value)}{quoted}")
        if value < self.minimum:
            return ctx.error(path, f"must be {self.minimum} or more, not {value}")
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum}


_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)")


class Number(Shape):
    def __init__(self, minimum: float = 0):
        self.minimum = minimum

    def check(self, value: Any, path: Path_, ctx: Context) -> Any:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return ctx.error(path, f"expected a number, got {_type_name(value)}")
        if value < self.minimum:
            return ctx.error(path, f"must be {self.minimum} or more, not {value}")
        return float(value)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "number", "minimum": self.minimum}


class Boolean(Shape):
    def check(self, value: Any, path: Path_, ctx: Context) -> Any:
        if not isinstance(value, bool):
            return ctx.error(path, f"expected true or false, got {_type_name(value)}")
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class Date(Shape):
    def check(self, value: Any, path: Path_, ctx: Context) -> Any:
        if isinstance(value, dt.date):
            return value.date() if isinstance(value, dt.datetime) else value
        return ctx.error(path, f"expected a date as YYYY-MM-DD, got {_type_name(value)}")

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date"}


class Url(Text):
    """An absolute http(s) URL with a host, that browsers and this tool read alike."""

    def __init__(self, https_only: bool = False):
        super().__init__()
        self.schemes = ("https",) if https_only else ("http", "https")

    def check(self, value: Any, path: Path_, ctx: Context) -> Any:
        value = super().check(value, path, ctx)
        if value is MISSING:
            return value
        if not is_web_url(value, self.schemes):
            return ctx.error(path, f"'{value}' is not an {'/'.join(self.schemes)} URL")
        problem = url_problem(value)
        return ctx.error(path, f"'{value}' {problem}") if problem else value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "uri", "pattern": f"^({'|'.join(self.schemes)})://"}


def is_web_url(value: str, schemes: tuple[str, ...] = ("http", "https")) -> bool:
    """True for an absolute URL of one of ``schemes`` with a host and no whitespace."""
    if any(c.isspace() or ord(c) < 32 for c in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in schemes and bool(parts.hostname)


def url_problem(url: str) -> str | None:
    """Why a browser could open another host than the one Python reads from a web URL:
    browsers read '\\' as '/' (Python reads ``https://a.com\\@b.com`` as host b.com, a
    browser as a.com), and a login before '@' makes ``https://paypal.com@evil.com``."""
    if "\\" in re.split("[?#]", url, maxsplit=1)[0]:
        return "holds a backslash, which browsers read as '/'; write '/' (or %5C)"
    if "@" in urlsplit(url).netloc:
        return "holds a user name or password before '@' (browsers open the host after it); remove it"
    return None


class OneOf(Text):
    def __init__(self, *choices: str):
        super().__init__()
        self.choices = choices

    def check(self, value: Any, path: Path_, ctx: Context) -> Any:
        value = super().check(value, path, ctx)
        if value is not MISSING and value not in self.choices:
            return ctx.error(path, f"'{value}' is not one of: {', '.join(self.choices)}")
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices)}


class Custom(Shape):
    """A shape with one extra rule on top of another: ``rule(value) -> message | None``."""

    def __init__(self, base: Shape, rule: Callable[[Any, Path_, Context], Any], **schema: Any):
        self.base = base
        self.rule = rule
        self.schema = schema

    def check(self, value: Any, path: Path_, ctx: Context) -> Any:
        value = self.base.check(value, path, ctx)
        return value if value is MISSING else self.rule(value, path, ctx)

    def json_schema(self) -> dict[str, Any]:
        return {**self.base.json_schema(), **self.schema}


class ListOf(Shape):
    def __init__(self, item: Shape, min_items: int = 0):
        self.item = item
        self.min_items = min_items

    def check(self, value: Any, path: Path_, ctx: Context) -> Any:
        if not isinstance(value, list):
            return ctx.error(path, f"expected a list (lines starting with '- '), got {_type_name(value)}")
        if len(value) < self.min_items:
            return ctx.error(path, "is empty; give at least one entry or remove it")
        out = [MISSING if isinstance(v, Invalid) else self.item.check(v, path + (i,), ctx)
               for i, v in enumerate(value)]
        return [v for v in out if v is not MISSING]

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": describe(self.item), **({"minItems": n} if (n := self.min_items) else {})}


class Field(NamedTuple):
    shape: Shape
    description: str
    required: bool = False
    hint: Callable[[dict], str] | None = None  # more words when it is missing, given the mapping


class Mapping(Shape):
    """A mapping with known keys. ``build`` turns the checked values into a model object."""

    def __init__(self, fields: dict[str, Field], build: Callable[..., Any] | None = None):
        self.fields = fields
        self.build = build

    def check(self, value: Any, path: Path_, ctx: Context) -> Any:
        if not isinstance(value, dict):
            return ctx.error(path, f"expected a mapping (key: value lines), got {_type_name(value)}")
        ok = True
        suggested = set()
        for key in value:
            if key not in self.fields:
                ok = False
                from difflib import get_close_matches  # only needed when there is a typo

                near = get_close_matches(str(key), list(self.fields), n=1, cutoff=0.6)
                hint = f"; did you mean '{near[0]}'?" if near else f"; known keys: {', '.join(self.fields)}"
                suggested.update(near)
                ctx.error(path + (key,), f"unknown key '{key}'{hint}", key=True, label=path)
        clean: dict[str, Any] = {}
        for name, f in self.fields.items():
            if isinstance(value.get(name), Invalid):  # already reported where it was read
                ok = False
                clean[name] = None
                continue
            if name not in value or value[name] is None:
                hint = f.hint(value) if f.hint else ""
                if f.required and name in value:
                    ctx.error(path + (name,), "must not be empty" + hint)
                elif f.required and name not in suggested:  # "did you mean" said it already
                    ctx.error(path, f"'{name}' is required{hint}", key=True)
                ok = ok and not f.required
                clean[name] = None
                continue
            checked = f.shape.check(value[name], path + (name,), ctx)
            ok = ok and checked is not MISSING
            clean[name] = None if checked is MISSING else checked
        if not ok:
            return MISSING
        return self.build(**clean) if self.build else clean

    def json_schema(self) -> dict[str, Any]:
        required = [n for n, f in self.fields.items() if f.required]
        properties = {n: {**describe(f.shape), "description": f.description} for n, f in self.fields.items()}
        return {"type": "object", "additionalProperties": False, "required": required, "properties": properties}


def describe(shape: Shape) -> dict[str, Any]:
    """The JSON Schema of ``shape``."""
    return shape.json_schema()
