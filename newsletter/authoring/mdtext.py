"""The vocabulary of Markdown archives, read from markdown-it tokens: the names of an
issue's parts in headings, the blocks of a file, plain text, and Markdown written back
from tokens (for summaries) with text escaped, so nothing becomes markup it was not."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urljoin

from markdown_it import MarkdownIt
from markdown_it.token import Token

from newsletter.authoring import images
from newsletter.shapes import is_web_url

BREAKS = ("softbreak", "hardbreak")
RULE = re.compile(r"[\s*_=~—–-]*")  # a line of dashes: a separator, not text
_MD = MarkdownIt("commonmark", {"html": False})  # raw HTML stays text

PART_NAMES: dict[str, tuple[str, ...]] = {
    "intro": ("intro", "introduction", "前言", "导语", "开篇"),
    "highlights": ("highlights", "this week's highlights", "本期要点", "亮点", "要点"),
    "featured": ("featured", "featured news", "news", "top stories", "headlines", "精选", "精选新闻", "特稿",
                 "新闻", "头条"),
    "use_cases": ("use cases", "use case", "applications", "case studies", "in practice", "应用案例", "应用",
                  "用例", "案例"),
    "papers": ("papers", "paper", "research", "research papers", "论文"),
    "articles": ("articles", "technical articles", "tech articles", "tutorials", "blog posts", "技术文章",
                 "文章", "教程"),
    "other": ("other", "others", "other topics", "other news", "misc", "miscellaneous", "其他", "其它",
              "其他主题"),
    "more": ("more", "more posts", "other blogs", "other posts", "further reading", "其他博客", "更多文章",
             "往期文章", "推荐阅读", "延伸阅读"),
    "outro": ("outro", "closing", "about me", "about the author", "关于我", "关于作者", "结语", "后记"),
}
_NUMBERING = re.compile(r"^\s*(?:\d+|[一二三四五六七八九十]+)\s*[.、)）:：]\s*")

def part_named(heading: str, exact: bool = False) -> str | None:
    """The part of an issue a heading names (a section key, intro, highlights, more or outro):
    the name itself, or (unless ``exact``) the longest name it contains ("3. ML papers")."""
    words = " ".join(re.findall(r"[\w']+", _NUMBERING.sub("", heading.lower())))
    best: tuple[int, str] | None = None
    for part, names in PART_NAMES.items():
        for name in names:
            if words == name or words.replace(" ", "") == name.replace(" ", ""):
                return part
            hit = f" {name} " in f" {words} " if name.isascii() else name in words.replace(" ", "")
            if hit and (best is None or len(name) > best[0]):
                best = (len(name), part)
    return best[1] if best and not exact else None


class Block(NamedTuple):
    kind: str  # heading, para or code
    level: int  # a heading's level; a paragraph's list depth (0: not in a list)
    inline: list[Token]
    line: int
    first: bool = False  # the first paragraph of a list item
    quoted: bool = False
    group: int = -1  # the top-level list it is in
    text: str = ""  # a code block's text


def blocks(text: str) -> list[Block]:
    """The paragraphs, headings and code blocks of ``text``, with their lists and lines."""
    out: list[Block] = []
    depth = quote = 0
    fresh, group = False, -1
    tokens = _MD.parse(text)
    for i, tok in enumerate(tokens):
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
            group = i if depth == 1 else group
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
        elif tok.type in ("blockquote_open", "blockquote_close"):
            quote += 1 if tok.type.endswith("open") else -1
        elif tok.type == "list_item_open":
            fresh = True
        elif tok.type in ("heading_open", "paragraph_open") and tok.map:
            kind = "heading" if tok.type == "heading_open" else "para"
            level = int(tok.tag[1]) if kind == "heading" else depth
            out.append(Block(kind, level, tokens[i + 1].children or [], tok.map[0] + 1, fresh and kind == "para",
                             quote > 0, group if depth else -1))
            fresh = False
        elif tok.type in ("fence", "code_block") and tok.map:
            out.append(Block("code", depth, [], tok.map[0] + 1, text=tok.content))
    return out


def source_after(tail: str) -> str | None:
    """The source named after an item's link: "— arxiv.org", "(The Gradient)", "——【arxiv.org】"."""
    text = tail.strip()
    if text[:1] in "—–-" or (text[:1] in "(（" and text[-1:] in ")）"):
        name = text.lstrip("—–- ").strip("()（）【】[] *")
        if name and len(name) <= 60 and name[-1] not in ".。!！?？" and len(name.split()) <= 6:
            return name
    return None


def tables_of_contents(found: list[Block]) -> set[int]:
    """Lists without links whose entries mostly name sections: a table of contents, left out."""
    groups: dict[int, list[Block]] = {}
    for b in found:
        if b.group >= 0 and b.first:
            groups.setdefault(b.group, []).append(b)
    return {g for g, entries in groups.items()
            if not any(t.type == "link_open" for b in entries for t in b.inline)
            and 2 * sum(part_named(plain(b.inline)) is not None for b in entries) >= len(entries)}


def plain(tokens: list[Token], br: str = " ") -> str:
    """The text of inline tokens, link texts included, images left out."""
    return "".join(t.content if t.type in ("text", "code_inline") else br if t.type in BREAKS else ""
                   for t in tokens)


def trim(tokens: list[Token]) -> list[Token]:
    """``tokens`` without the line breaks and blank text they start with."""
    start = next((i for i, t in enumerate(tokens) if t.type not in BREAKS and (t.type != "text" or t.content.strip())),
                 len(tokens))
    return tokens[start:]


def pairs(tokens: list[Token]) -> dict[int, int]:
    """Opening and closing emphasis and link tokens that match within ``tokens`` (a slice of a
    paragraph may hold the close of an emphasis opened before it), both ways."""
    out: dict[int, int] = {}
    stack: list[int] = []
    for i, t in enumerate(tokens):
        if t.type.endswith("_open"):
            stack.append(i)
        elif t.type.endswith("_close") and stack and tokens[stack[-1]].type == t.type[:-5] + "open":
            j = stack.pop()
            out[i], out[j] = j, i
    return out


_ESCAPE = re.compile(r"([\\`*_\[\]<>&])")
_BLOCK_START = re.compile(r"^(\s*)(?:([#>+=-])|(\d+)([.)]))")


def markdown(tokens: list[Token], resolve: Callable[[str], str], br: str = "\n") -> str:
    """Markdown for inline tokens: text escaped, emphasis and links kept (links through
    ``resolve``), images left out, empty or unmatched emphasis dropped."""
    matched = pairs(tokens)
    out: list[str] = []
    for i, t in enumerate(tokens):
        if t.type == "text":
            out.append(_ESCAPE.sub(r"\\\1", t.content))
        elif t.type == "code_inline":
            ticks = "`" * (max(map(len, re.findall("`+", t.content)), default=0) + 1)
            out.append(f"{ticks} {t.content} {ticks}" if "`" in t.content else f"{ticks}{t.content}{ticks}")
        elif t.type in BREAKS:
            out.append(br)
        elif i not in matched or not plain(tokens[min(i, matched[i]) + 1:max(i, matched[i])]).strip():
            continue
        elif t.type in ("strong_open", "strong_close", "em_open", "em_close"):
            out.append(t.markup)
        elif t.type == "link_open":
            out.append("[")
        elif t.type == "link_close":
            out.append(f"]({_destination(resolve(tokens[matched[i]].attrGet('href') or ''))})")
    lines = "".join(out).split("\n")
    return "\n".join(_BLOCK_START.sub(_escape_start, line) for line in lines).strip()


def fenced(code: str) -> str:
    """A code block's text as a fenced block, its fence longer than any run of backticks in it."""
    fence = "`" * max(3, max(map(len, re.findall("`+", code)), default=0) + 1)
    return f"{fence}\n{code}{fence}"


def _escape_start(m: re.Match) -> str:
    return f"{m[1]}\\{m[2]}" if m[2] else f"{m[1]}{m[3]}\\{m[4]}"


def _destination(url: str) -> str:
    url = url.replace(" ", "%20").replace("<", "%3C").replace(">", "%3E")
    return f"<{url}>" if "(" in url or ")" in url else url


def strip_utm(url: str) -> str:
    """``url`` without the utm_* parameters of the platform it was first sent from."""
    base, mark, rest = url.partition("?")
    query, hash_, fragment = rest.partition("#")
    kept = "&".join(p for p in query.split("&") if p and not p.lower().startswith("utm_"))
    return base + (f"?{kept}" if kept else "") + hash_ + fragment if mark else url


def figure(img: Token, folder: Path, base: str | None) -> tuple[dict | None, Path | None, str]:
    """An image token as an item's ``image:`` and the local file to copy, or why it is left out."""
    src = img.attrGet("src") or ""
    if src.startswith("/") and base:
        src = urljoin(base, src)
    image = {"src": src, "alt": " ".join(img.content.split())}
    if title := " ".join((img.attrGet("title") or "").split()):
        image["caption"] = title
    if "://" in src:
        ok = is_web_url(src, ("https",))
        return (image, None, "") if ok else (None, None, f"the image '{src}' is not an https address; left out")
    file = (folder / unquote(src.split("?")[0].split("#")[0])).resolve()
    if file.is_file() and images.size_of(file) is not None:
        return image, file, ""
    what = "is not a PNG, JPEG, GIF or WebP image" if file.is_file() else f"is not in {folder}"
    return None, None, f"the image '{src}' {what}; left out"
