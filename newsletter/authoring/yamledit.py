"""Add keys to an issue file in place, keeping its comments, key order and formatting.

Why ruamel.yaml: it is the one Python YAML library whose round trip keeps comments, key
order, quoting and block scalars (PyYAML drops comments on load). It is not trusted
blindly, though:

- ruamel writes every block sequence with one indentation, so the file's own style is
  found first by trying the usual ones on the untouched file until one reproduces it
  byte for byte (a file that mixes styles is made uniform, and the caller says so);
- new keys go after their natural neighbours (``order``), never before a list item's
  first key, so the lines the author wrote stay as they are and only new lines appear;
- ruamel reads YAML 1.2 and ``check`` reads YAML 1.1 (where ``yes`` is true), so new text
  is quoted whenever the checker's reader would not see it as text, and the result is
  read back with PyYAML and must equal the original plus exactly the edits made.
"""

from __future__ import annotations

import io
from typing import Any

import yaml
from yaml.resolver import Resolver

from newsletter.errors import NewsletterError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = Resolver()
_STR = "tag:yaml.org,2002:str"


class Document:
    """An issue file loaded for editing; ``set`` records edits, ``text`` writes them."""

    def __init__(self, text: str, display: str):
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        self.display = display
        self.bom = text.startswith("\ufeff")
        self.crlf = "\r\n" in text
        self.source = text.lstrip("\ufeff").replace("\r\n", "\n")
        self.edits: list[tuple[tuple[Any, ...], str, Any]] = []
        self.reformatted = False
        try:
            self.yaml = YAML()  # round-trip mode
            self.yaml.preserve_quotes = True
            self.yaml.width = 1_000_000  # never fold a long line the author wrote on one
            self.data = self.yaml.load(self.source)
        except YAMLError as e:
            raise NewsletterError(f"{display}: cannot be edited: {e}") from None
        self._match_style()

    def _match_style(self) -> None:
        """Pick the indentation that reproduces the untouched file exactly (or best)."""
        from ruamel.yaml.util import load_yaml_guess_indent

        _, indent, dash = load_yaml_guess_indent(self.source)
        tries: list[tuple[int, int, int]] = []
        guess = (indent or 2, (indent or 2) + (dash or 0), dash or 0)
        for m in (2, 4, 3):
            tries += [(m, m + 2, m), (m, 2, 0), (m, m, m - 2), (m, 4, 2), (m, 2 * m, m)]
        best: tuple[int, tuple[int, int, int]] | None = None
        original = self.source.splitlines()
        for style in dict.fromkeys([guess, (2, 4, 2), *tries]):
            self.yaml.indent(mapping=style[0], sequence=style[1], offset=style[2])
            self.yaml.explicit_start = self.source.lstrip().startswith("---")
            out = self._dump()
            if out == self.source:
                return
            lines = out.splitlines()
            differ = sum(a != b for a, b in zip(original, lines, strict=False)) + abs(len(lines) - len(original))
            if best is None or differ < best[0]:
                best = (differ, style)
        assert best is not None
        self.yaml.indent(mapping=best[1][0], sequence=best[1][1], offset=best[1][2])
        self.reformatted = True

    def _dump(self) -> str:
        out = io.StringIO()
        self.yaml.dump(self.data, out)
        return out.getvalue()

    def node(self, path: tuple[Any, ...]) -> Any:
        value = self.data
        for part in path:
            value = value[part]
        return value

    def set(self, path: tuple[Any, ...], key: str, value: Any, order: tuple[str, ...] = (),
            force: bool = False) -> bool:
        """Give the mapping at ``path`` its ``key`` unless it has a value (or ``force``).

        A new key goes right after the last present key that comes before it in ``order``,
        or after the mapping's first key. Returns whether anything changed.
        """
        mapping = self.node(path)
        current = mapping.get(key)
        if not blank(current) and (not force or _plain(current) == value):
            return False
        new = _styled(value)
        if key in mapping:
            mapping[key] = new
        else:
            keys = list(mapping)
            before = order[: order.index(key)] if key in order else order
            at = max((keys.index(k) + 1 for k in before if k in keys), default=1 if keys else 0)
            mapping.insert(at, key, new)
        self.edits.append((path, key, value))
        return True

    def text(self) -> str:
        """The edited file; checked to read back (as ``check`` reads it) as intended."""
        out = self._dump()
        expected = yaml.load(self.source, Loader=_Loader)
        for path, key, value in self.edits:
            target = expected
            for part in path:
                target = target[part]
            target[key] = value
        if yaml.load(out, Loader=_Loader) != expected:
            raise NewsletterError(f"{self.display}: enrich could not write its changes faithfully; "
                                  "nothing was changed (please report this file)")
        if self.crlf:
            out = out.replace("\n", "\r\n")
        return ("\ufeff" if self.bom else "") + out


def blank(value: Any) -> bool:
    """Absent, empty or only spaces: a value the author has not given."""
    return value is None or (isinstance(value, str) and not value.strip())


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, str) else value


def _styled(value: Any) -> Any:
    """``value`` as ruamel should write it: block mappings, and text quoted where YAML 1.1
    would read it as something else (``yes``, ``2109.10686``, ``null``, ``1:20``)."""
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    if isinstance(value, dict):
        mapping = CommentedMap()
        for k, v in value.items():
            mapping[k] = _styled(v)
        mapping.fa.set_block_style()
        return mapping
    if isinstance(value, str):
        if _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) != _STR or value != value.strip():
            return DoubleQuotedScalarString(value)
    return value
