"""Markdown for the author's prose: to safe HTML (raw HTML escaped, only http(s) and
mailto links live, UTM added) and to plain text with every link written out; plus
link tagging and line wrapping that knows CJK text has no spaces.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

LinkRewrite = Callable[[str], str]
_LIVE_SCHEMES = ("http", "https", "mailto")


def add_utm(url: str, params: dict[str, str]) -> str:
    """Append ``params`` to an http(s) URL's query, keeping every key the author wrote."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not params:
        return url
    present = {k.lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    extra = [(k, v) for k, v in params.items() if k.lower() not in present]
    if not extra:
        return url
    query = parts.query + ("&" if parts.query else "") + urlencode(extra, quote_via=quote)
    return urlunsplit(parts._replace(query=query))


def _is_live(url: str) -> bool:
    scheme = urlsplit(url).scheme.lower()
    return scheme in _LIVE_SCHEMES


class Prose(NamedTuple):
    """One Markdown field, rendered both ways from a single parse."""

    html: Markup
    text: str


class Markdown:
    """One configured parser, reused for every field of an issue."""

    def __init__(self) -> None:
        # CommonMark, raw HTML off (escaped), no images: pictures come from `image:`.
        self.md = MarkdownIt("commonmark", {"html": False}).disable("image")

    def convert(self, source: str | None, rewrite: LinkRewrite, inline: bool = False) -> Prose:
        """Markdown to HTML (links through ``rewrite``, for UTM tags) and to plain text
        (links written out as ``label <url>``, as the author wrote them)."""
        if not source:
            return Prose(Markup(""), "")
        env: dict = {}
        tokens = self.md.parseInline(source, env) if inline else self.md.parse(source, env)
        _join_cjk_lines(tokens)
        text = _plain(tokens)
        for token in _walk(tokens):
            if token.type == "link_open":
                href = str(token.attrGet("href") or "")
                # markdown-it already refuses javascript:, data: and the like; we also
                # refuse relative links, which point nowhere in an email.
                token.attrSet("href", rewrite(href) if _is_live(href) else "#")
        html = self.md.renderer.render(tokens, self.md.options, env)
        return Prose(Markup(html.strip()), text)


def _plain(tokens: list[Token]) -> str:
    """Block structure as plain text: paragraphs, ``- `` and ``1. `` lists, ``> `` quotes."""
    blocks: list[str] = []
    prefix: list[str] = []
    number: list[int] = []
    for token in tokens:
        if token.type == "bullet_list_open":
            number.append(0)
        elif token.type == "ordered_list_open":
            number.append(int(token.attrGet("start") or 1))
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            number.pop()
        elif token.type == "list_item_open":
            if number and number[-1]:
                prefix.append(f"{number[-1]}. ")
                number[-1] += 1
            else:
                prefix.append("- ")
        elif token.type == "blockquote_open":
            prefix.append("> ")
        elif token.type in ("list_item_close", "blockquote_close"):
            prefix.pop()
        elif token.type == "inline":
            blocks.append("".join(prefix) + _inline_text(token.children or []))
            prefix[:] = [" " * len(p) if p != "> " else p for p in prefix]
        elif token.type in ("code_block", "fence"):
            blocks.append("\n".join("    " + line for line in token.content.rstrip("\n").split("\n")))
    return "\n\n".join(blocks)


def _walk(tokens: list[Token]):
    for token in tokens:
        yield token
        if token.children:
            yield from _walk(token.children)


def _join_cjk_lines(tokens: list[Token]) -> None:
    """A line break between two CJK characters is not a space (CJK has none): drop it."""
    for token in tokens:
        kids = token.children or []
        for i, t in enumerate(kids):
            if t.type == "softbreak" and 0 < i < len(kids) - 1:
                before, after = kids[i - 1].content, kids[i + 1].content
                if before and after and _is_wide(before[-1]) and _is_wide(after[0]):
                    t.type, t.content = "text", ""


def _inline_text(children: list[Token]) -> str:
    out: list[str] = []
    hrefs: list[tuple[str, int]] = []
    for t in children:
        if t.type in ("text", "html_inline"):
            out.append(t.content)
        elif t.type == "code_inline":
            out.append(f"`{t.content}`")
        elif t.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif t.type in ("em_open", "em_close"):
            out.append("_")
        elif t.type in ("strong_open", "strong_close"):
            out.append("**")  # as written: a single * reads as emphasis to Markdown-minded readers
        elif t.type == "link_open":
            hrefs.append((str(t.attrGet("href") or ""), len(out)))
        elif t.type == "link_close" and hrefs:
            href, start = hrefs.pop()
            label = "".join(out[start:])
            if _is_live(href) and href.removeprefix("mailto:") != label:
                out.append(f" <{href}>")
    return "".join(out)


def _width(text: str) -> int:
    """Display columns of ``text``: CJK characters take two."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _is_wide(ch: str) -> bool:
    return not ch.isascii() and unicodedata.east_asian_width(ch) in "WF"


# Characters that may not begin a line (kinsoku): they stay with what precedes them.
_NO_BREAK_BEFORE = frozenset("，。、；：！？）」』”’》〉】,.;:!?)")


def wrap(text: str, width: int = 72, indent: str = "", first: str | None = None) -> str:
    """Fill ``text`` to ``width`` display columns. CJK text may break between any two
    characters; words and URLs are never broken. Blank lines separate paragraphs."""
    first = indent if first is None else first
    return "\n\n".join(
        _fill(_units(para.split()), width, first if n == 0 else indent, indent)
        for n, para in enumerate(text.split("\n\n"))
    )


def _units(words: list[str]) -> list[tuple[str, bool]]:
    """Split words into unbreakable units: (text, whether a space goes before it)."""
    units: list[tuple[str, bool]] = []
    for word in words:
        if word.isascii():
            units.append((word, True))
            continue
        run, space = "", True
        for ch in word:
            if ch in _NO_BREAK_BEFORE and (run or units and not space):
                if run:
                    run += ch
                else:
                    units[-1] = (units[-1][0] + ch, units[-1][1])
            elif _is_wide(ch):
                if run:
                    units.append((run, space))
                    run, space = "", False
                units.append((ch, space))
                space = False
            else:
                run += ch
        if run:
            units.append((run, space))
    return units


def _fill(units: list[tuple[str, bool]], width: int, first: str, indent: str) -> str:
    lines: list[str] = []
    parts, used, empty = [first], _width(first), True
    for text, space in units:
        w = _width(text)
        gap = 1 if space and not empty else 0
        if not empty and used + gap + w > width:
            lines.append("".join(parts).rstrip())
            parts, used, empty, gap = [indent], _width(indent), True, 0
        parts.append(" " + text if gap else text)
        used += gap + w
        empty = False
    lines.append("".join(parts).rstrip())
    return "\n".join(lines)
