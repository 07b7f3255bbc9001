"""An issue file written from values, laid out as an author writes one (block mappings
and lists, Markdown fields as ``|`` blocks, text plain unless it needs quotes), and read
back, as ``check`` reads it, to the very same values before anyone sees it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import yaml

from newsletter.authoring.scaffold import SCHEMA_FILE
from newsletter.errors import NewsletterError

MARKDOWN_KEYS = ("intro", "summary", "outro")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def issue_yaml(data: dict[str, Any]) -> str:
    """``data`` (an issue's values: text, whole numbers, dates, lists and mappings) as YAML."""
    out = [f"# yaml-language-server: $schema=../{SCHEMA_FILE}\n"]
    _mapping(data, 0, out, "")
    text = "".join(out)
    if yaml.load(text, Loader=_Loader) != _as_read(data):
        raise NewsletterError("the issue could not be written faithfully as YAML (please report this file)")
    return text


def _mapping(mapping: dict[str, Any], indent: int, out: list[str], first: str) -> None:
    pad = " " * indent
    for i, (key, value) in enumerate(mapping.items()):
        lead = first if i == 0 and first else pad
        if isinstance(value, dict) and value:
            out.append(f"{lead}{key}:\n")
            _mapping(value, indent + 2, out, "")
        elif isinstance(value, list) and value:
            out.append(f"{lead}{key}:\n")
            for entry in value:
                if isinstance(entry, dict):
                    _mapping(entry, indent + 4, out, f"{pad}  - ")
                else:
                    out.append(f"{pad}  - {_scalar(entry, indent + 4)}\n")
        elif isinstance(value, (dict, list)):
            out.append(f"{lead}{key}: {json.dumps(value)}\n")
        else:
            out.append(f"{lead}{key}: {_scalar(value, indent + 2, key in MARKDOWN_KEYS)}\n")


def _scalar(value: Any, indent: int, markdown: bool = False) -> str:
    """One value: a ``|`` block for Markdown, plain text where YAML reads it back as the
    same text, else a double-quoted (JSON) string, which YAML reads alike."""
    if isinstance(value, (int, dt.date)) and not isinstance(value, bool):
        return str(value)
    text = value.rstrip("\n") + "\n" if markdown else value
    if markdown or "\n" in text:
        chomp = "" if markdown else "-"
        block = f"|{chomp}\n" + "\n".join(" " * indent + line if line else "" for line in text.rstrip("\n").split("\n"))
        if _reads_as(block, text):
            return block
    elif _reads_as(text, text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _reads_as(written: str, text: str) -> bool:
    try:
        return yaml.load(f"k: {written}\n", Loader=_Loader) == {"k": text}
    except yaml.YAMLError:
        return False


def _as_read(value: Any, key: str = "") -> Any:
    """``value`` as the file reads back: Markdown fields end with a line break."""
    if isinstance(value, dict):
        return {k: _as_read(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_read(v) for v in value]
    if key in MARKDOWN_KEYS and isinstance(value, str):
        return value.rstrip("\n") + "\n"
    return value
