"""What a Markdown file says about its issue besides the content: front matter (the
``---`` block at the top), dates written in titles and file names, and the language."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from newsletter.authoring.check import LANG_PATTERN
from newsletter.errors import Location, NewsletterError, Problem
from newsletter.shapes import is_web_url

FRONT_MATTER = ("number", "date", "title", "subject", "preheader", "lang", "url")
_DATE = re.compile(r"(\d{4})\s*[-/.年_]\s*(\d{1,2})\s*[-/.月_]\s*(\d{1,2})(?!\d)")
_MONTH = re.compile(r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(\d{1,2}),?\s+(\d{4})\b", re.I)
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_NAME_MONTH = re.compile(r"(?<!\d)(\d{4})[-_](\d{2})(?!\d)")


def front_matter(text: str, display: str, problems: list[Problem]) -> tuple[dict, dict[str, Location], str]:
    """The ``---`` block at the top of a file as values and their places, and the text
    after it (the block's lines left blank, so lines keep their numbers)."""
    lines = text.split("\n")
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if lines[0].rstrip() != "---" or end is None:
        return {}, {}, text
    try:
        root = yaml.compose("\n".join(lines[1:end]), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = Location(display, mark.line + 2, mark.column + 1) if mark else Location(display, 2, 1)
        raise NewsletterError(f"front matter: invalid YAML: {getattr(e, 'problem', None) or e}", where) from None
    meta: dict[str, Any] = {}
    where: dict[str, Location] = {}
    for key, node in root.value if isinstance(root, yaml.MappingNode) else ():
        at = Location(display, node.start_mark.line + 2, node.start_mark.column + 1)
        name = str(key.value)
        if name not in FRONT_MATTER:
            problems.append(Problem(at, f"front matter: '{name}' is not used (known: {', '.join(FRONT_MATTER)})", True))
        elif not isinstance(node, yaml.ScalarNode):
            problems.append(Problem(at, f"front matter: {name}: give one value"))
        else:  # where: also of a value that is wrong, which was reported
            where[name] = at
            if (value := _front_value(name, node, at, problems)) is not None:
                meta[name] = value
    if root is not None and not isinstance(root, yaml.MappingNode):
        problems.append(Problem(Location(display, 2, 1), "front matter: write it as 'key: value' lines"))
    return meta, where, "\n" * (end + 1) + "\n".join(lines[end + 1:])


def _front_value(name: str, node: yaml.ScalarNode, at: Location, problems: list[Problem]) -> Any:
    raw = node.value.strip()
    if name == "number":
        if raw.isdigit() and int(raw) > 0:
            return int(raw)
        problems.append(Problem(at, f"front matter: number: '{raw}' is not a whole number like 12"))
    elif name == "date":
        try:
            value = SafeConstructor().construct_object(node)
        except (ValueError, ConstructorError):
            value = None
        if isinstance(value, dt.date):
            return value.date() if isinstance(value, dt.datetime) else value
        problems.append(Problem(at, f"front matter: date: '{raw}' is not a date like 2021-10-17"))
    elif name == "lang" and not re.fullmatch(LANG_PATTERN, raw):
        problems.append(Problem(at, f"front matter: lang: '{raw}' is not a language code like en or zh"))
    elif name == "url" and not is_web_url(raw):
        problems.append(Problem(at, f"front matter: url: '{raw}' is not an http(s) address"))
    else:
        return raw or None
    return None


def date_in(text: str) -> dt.date | None:
    for m in _DATE.finditer(text):
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            continue
    if m := _MONTH.search(text):
        try:
            return dt.date(int(m[3]), _MONTHS.index(m[1].lower()) + 1, int(m[2]))
        except ValueError:
            return None
    return None


def number_in_name(name: str) -> int | None:
    """The last number in a file's name, dates left out: ``issue-12`` -> 12, ``2023-05`` -> None."""
    digits = re.findall(r"\d+", _NAME_MONTH.sub("", _DATE.sub("", name)))
    return int(digits[-1]) if digits and int(digits[-1]) > 0 else None


def month_in(name: str) -> dt.date | None:
    """A monthly issue's file name, ``2023-05.md``: the first of the month."""
    m = _NAME_MONTH.search(name)
    return dt.date(int(m[1]), int(m[2]), 1) if m and 1 <= int(m[2]) <= 12 else None


def detect_lang(text: str) -> str | None:
    """zh, ja or ko when CJK characters outnumber Latin words, else None (the workspace's language)."""
    han = sum("\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf" for c in text)
    kana = sum("\u3040" <= c <= "\u30ff" for c in text)
    hangul = sum("\uac00" <= c <= "\ud7af" for c in text)
    if han + kana + hangul <= len(re.findall(r"[A-Za-z]+", text)):
        return None
    return "ko" if hangul > han + kana else "ja" if kana * 10 > han else "zh"
