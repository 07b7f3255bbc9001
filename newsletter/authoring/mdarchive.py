"""One past issue written in Markdown, read as issue data (``newsletter import-archive``).

A title heading; before the first section, paragraphs (the intro) and a list (the
highlights); then a heading per section (``mdtext.PART_NAMES``) and an item per paragraph
or bullet that starts with its link: the title and URL, a source after a dash or in
parentheses, a ``[2109.10686] Paper title`` line, an image (the figure), then the summary.
Medium's link cards (``[](url) [## title``, a heading, ``host](url)``) become the item's card.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urljoin

from markdown_it.token import Token

from newsletter.authoring import mdtext as md
from newsletter.authoring.arxivid import ARXIV_PATTERN, arxiv_id
from newsletter.errors import Location, Problem
from newsletter.shapes import SECTION_KEYS, is_web_url
from newsletter.source import Path_

_PAPER = re.compile(rf"^\s*[\[【]\s*(?P<id>{ARXIV_PATTERN})\s*[\]】]\s*(?P<title>.*)$")
_LEADING = " .。:：,，;；—–"


class Parsed(NamedTuple):
    data: dict[str, Any]  # the issue without number and date
    values: dict[Path_, Location]  # where each value came from in the Markdown file
    figures: dict[Path_, Path]  # local image files, by the path of their image mapping
    problems: list[Problem]
    title: tuple[str, Location] | None
    unnamed: int  # arXiv items whose paper title is not given (enrich fills them)


class Reader:
    """Reads the blocks of one file in order, keeping track of the part and the item."""

    def __init__(self, display: str, text: str, folder: Path, base: str | None):
        self.display, self.text, self.folder, self.base = display, text, folder, base
        self.lines = text.split("\n")  # as markdown-it counts them
        self.sections: dict[str, list[dict]] = {key: [] for key in SECTION_KEYS}
        self.more: list[dict] = []
        self.prose: dict[str, list[str]] = {"intro": [], "highlights": [], "outro": []}
        self.values: dict[Path_, Location] = {}
        self.figures: dict[Path_, Path] = {}
        self.problems: list[Problem] = []
        self.title: tuple[str, Location] | None = None
        self.part: str | None = None  # a section key, intro, highlights, more or outro; None before them
        self.item: tuple[Path_, dict, dict] | None = None  # path, entry, what is gathered for it
        self.card: dict | None = None  # a Medium link card being read
        self.leading: list[md.Block] = []  # the bullets before the first section
        self.level = self.unnamed = 0

    def read(self) -> Parsed:
        found = md.blocks(self.text)
        self.toc = md.tables_of_contents(found)
        for b in found:
            if self.card is not None and self._card_goes_on(b):
                continue
            {"heading": self._heading, "code": lambda b: self._text(b, md.fenced(b.text))}.get(b.kind, self._para)(b)
        self._close()
        if not any(self.sections.values()) and self.leading:  # a plain list of links: the items
            self.prose["highlights"], self.part = [], "featured"
            for b in self.leading:
                self._para(b)
            self._close()
        data = {"title": None, **{k: "\n\n".join(v) for k, v in self.prose.items() if k != "highlights" and v},
                "highlights": self.prose["highlights"], "sections": self.sections, "more": self.more}
        return Parsed(data, self.values, self.figures, self.problems, self.title, self.unnamed)

    def at(self, line: int, needle: str | None = None) -> Location:
        raw = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        col = raw.find(needle) if needle else -1
        return Location(self.display, line, col + 1 if col >= 0 else len(raw) - len(raw.lstrip()) + 1)

    def warn(self, where: Location, message: str) -> None:
        self.problems.append(Problem(where, message, True))

    def resolve(self, href: str) -> str:
        return md.strip_utm(urljoin(self.base, href) if self.base else href)

    def _heading(self, b: md.Block) -> None:
        text = " ".join(md.plain(b.inline).split())
        if not text or md.RULE.fullmatch(text):
            return
        part, where = md.part_named(text), self.at(b.line)
        if self.part is None and self.title is None and md.part_named(text, exact=True) is None:
            self.title = (text, self.at(b.line, text[:1]))
            return
        self._close()
        if part is None and self.level and b.level > self.level:
            return self.warn(where, f"the heading '{text}' names no section; left out (what follows stays in "
                                    f"'{self.part}')")
        if part is None:
            self.warn(where, f"the heading '{text}' names no section; its items go to 'other' (name a section "
                             "like '## Papers' or '## 论文' to place them)")
            part = "other"
        self.part, self.level = part, min(self.level or b.level, b.level)

    def _para(self, b: md.Block) -> None:
        kids = b.inline
        if md.RULE.fullmatch(md.plain(kids).strip()) and not any(t.type == "image" for t in kids):
            return
        lead = next((i for i, t in enumerate(kids) if t.type not in ("strong_open", "em_open")
                     and not (t.type == "text" and not t.content.strip(" *"))), None)
        link = lead is not None and kids[lead].type == "link_open"
        if link:
            close = md.pairs(kids).get(lead, len(kids))
            inner = kids[lead + 1:close]
            if not md.plain(inner).strip() and not any(t.type == "image" for t in inner):
                self._close_card()
                after = md.plain(kids[close + 1:]).strip()  # "[## The page's title"
                title = after[3:].strip() or None if after.startswith("[##") else None
                self.card = {"href": kids[lead].attrGet("href") or "", "line": b.line, "title": title}
                return
        if self.part is None:
            return self._preamble(b)
        if self.part in self.prose:
            for img in (t for t in kids if t.type == "image"):
                self.warn(self.at(b.line, "!["), f"the image '{img.attrGet('src')}' is not in an item; left out")
            if self.part == "highlights" and b.first:
                self.prose["highlights"].append(md.markdown(kids, self.resolve, " "))
                return
            return self._text(b, md.markdown(kids, self.resolve))
        if link and self._starts_item(b, kids, lead):
            return self._start(b, kids, lead)
        if self.item is None:
            return self.warn(self.at(b.line), f"text before the first item of '{self.part}'; left out")
        self._more_of_item(b, kids)

    def _preamble(self, b: md.Block) -> None:
        kids = b.inline
        links = [i for i, t in enumerate(kids) if t.type == "link_open"]
        label = md.plain(kids[:links[0]]).strip() if len(links) == 1 else "-"
        if b.quoted and label[-1:] in ("", ":", "：") and md.pairs(kids).get(links[0]) == len(kids) - 1:
            self.base = self.base or md.strip_utm(kids[links[0]].attrGet("href") or "")  # "> 原文：<https://...>"
            return
        for img in (t for t in kids if t.type == "image"):
            self.warn(self.at(b.line, "!["), f"the image '{img.attrGet('src')}' is not in an item; left out")
        if b.group in self.toc:
            return
        if b.first:
            self.leading.append(b)
            self.values.setdefault(("highlights", len(self.prose["highlights"])), self.at(b.line))
            self.prose["highlights"].append(md.markdown(kids, self.resolve, " "))
        elif b.level == 0:
            self._text(b, md.markdown(kids, self.resolve), "intro")

    def _text(self, b: md.Block, text: str, part: str | None = None) -> None:
        part = part or self.part or "intro"
        if not text:
            return
        if part in self.prose:
            self.values.setdefault((part,), self.at(b.line))
            self.prose[part].append(text)
        elif self.item is not None:
            self.item[2]["summary"].append(text)

    def _starts_item(self, b: md.Block, kids: list[Token], lead: int) -> bool:
        if self.item is None or (b.first and b.level == 1):
            return True
        if b.level > 1:
            return False
        close = md.pairs(kids).get(lead, len(kids))
        end = next((i for i in range(close, len(kids)) if kids[i].type in md.BREAKS), len(kids))
        tail = md.plain(kids[close + 1:end]).strip(" *")
        return not tail or md.source_after(tail) is not None

    def _start(self, b: md.Block, kids: list[Token], lead: int) -> None:
        self._close()
        close = md.pairs(kids).get(lead, len(kids))
        href = kids[lead].attrGet("href") or ""
        url, title = self.resolve(href), " ".join(md.plain(kids[lead + 1:close]).split())
        end = next((i for i in range(close, len(kids)) if kids[i].type in md.BREAKS), len(kids))
        source = md.source_after(md.plain(kids[close + 1:end]).strip(" *")) if self.part != "more" else None
        self._begin(b.line, title, url, href)
        if source:
            self.item[1]["source"] = source
        self._more_of_item(b, kids[end + 1:] if source else kids[close + 1:], kids[lead + 1:close])

    def _begin(self, line: int, title: str, url: str, href: str) -> None:
        entries = self.more if self.part == "more" else self.sections[self.part]
        path: Path_ = ("more", len(entries)) if self.part == "more" else ("sections", self.part, len(entries))
        entry = {"title": title, "url": url}
        entries.append(entry)
        self.item = (path, entry, {"summary": [], "line": line})
        where = self.at(line, "[") if self.part != "more" or href else self.at(line)
        self.values.update({path: where, (*path, "title"): where, (*path, "url"): self.at(line, href or None)})
        if not is_web_url(url):
            relative = "" if ":" in url else "; it is relative: give the page it came from as 'url:' in front matter"
            self.problems.append(Problem(self.at(line, href or None), f"'{href}' is not an http(s) link{relative}"))

    def _more_of_item(self, b: md.Block, kids: list[Token], title: list[Token] = ()) -> None:
        path, entry, got = self.item
        for img in (t for t in [*title, *kids] if t.type == "image"):
            self._figure(img, b.line)
        if self.part == "more":
            text = " ".join(md.plain(kids).split()).lstrip(_LEADING)
            if text and "description" not in entry:
                entry["description"] = text
            return
        kids = md.trim(kids)
        brk = next((i for i, t in enumerate(kids) if t.type in md.BREAKS), len(kids))
        paper = _PAPER.match(md.plain(kids[:brk]).strip(" *"))
        if paper and "arxiv" not in got:  # its line: the paragraph's first that names the id
            line = next((n for n in range(b.line, len(self.lines) + 1) if paper["id"] in self.lines[n - 1]), b.line)
            got.update(arxiv=paper["id"], paper_title=paper["title"].strip(" *"), paper_line=line)
            kids = kids[brk + 1:]
        text = md.markdown(kids, self.resolve).lstrip(_LEADING)
        if text:
            self.values.setdefault((*path, "summary"), self.at(b.line))
            got["summary"].append(f"- {text}" if b.first and b.level and not title else text)  # a bullet of its own

    def _figure(self, img: Token, line: int) -> None:
        path, _, got = self.item
        image, file, why = md.figure(img, self.folder, self.base)
        if self.part == "more" or "image" in got:
            why = f"the image '{img.attrGet('src')}' is a second image of its item (or in a more post); left out"
        if why:
            self.warn(self.at(line, "!["), why)
            return
        if file is not None:
            self.figures[(*path, "image")] = file
        got["image"] = image
        self.values.setdefault((*path, "image"), self.at(line, "!["))

    def _card_goes_on(self, b: md.Block) -> bool:
        """A Medium link card continues with a heading (its description) and ends with ``host](url)``."""
        card = self.card
        if b.kind == "heading" and "description" not in card:
            card["description"] = " ".join(md.plain(b.inline).split())
            return True
        for i, tok in enumerate(b.inline if b.kind == "para" else ()):
            end = tok.content.find(f"]({card['href']})") if tok.type == "text" else -1
            if end >= 0:
                self._close_card()
                rest = tok.content[end + len(card["href"]) + 3:]
                remaining = ([Token("text", "", 0, content=rest)] if rest.strip() else []) + b.inline[i + 1:]
                if remaining:
                    self._para(b._replace(inline=remaining))
                return True
        self._close_card()
        return False

    def _close_card(self) -> None:
        card, self.card = self.card, None
        if card is None:
            return
        url, title, description = self.resolve(card["href"]), card["title"], card.get("description")
        if self.item is not None and self.item[1]["url"].rstrip("/") == url.rstrip("/"):
            if title and self.part != "more":
                self.item[1]["card"] = {"title": title, **({"description": description} if description else {})}
            return
        if self.part in (None, *self.prose) or (self.part == "more" and not title):
            self.warn(self.at(card["line"]), f"the link card of {url} is not in an item; left out")
            return
        self._close()  # an item of its own; without a title, a "[2109.10686] Paper title" line may name it
        self._begin(card["line"], title or "", url, card["href"])
        if description:
            self.item[1 if self.part == "more" else 2]["description"] = description

    def _close(self) -> None:
        """Finish the item being read: its keys in the format's order."""
        if self.card is not None:
            self._close_card()
        if self.item is None:
            return
        path, entry, got = self.item
        self.item = None
        if path[0] == "more":
            return
        summary = "\n\n".join(got["summary"]).strip() or got.get("description")
        arxiv = got.get("arxiv") or arxiv_id(entry["url"])
        out = {"title": entry["title"] or got.get("paper_title") or None, "url": entry["url"]}
        out.update({"source": entry["source"]} if "source" in entry else {})
        if "image" in got:
            out["image"] = got["image"]
        if arxiv and got.get("paper_title"):
            out["paper"] = {"arxiv": arxiv, "title": got["paper_title"]}
            self.values[(*path, "paper")] = self.at(got["paper_line"])
        elif arxiv_id(entry["url"]):  # `newsletter enrich` fills the paper of an arXiv link
            self.unnamed += 1
        if "card" in entry:
            out["card"] = entry["card"]
        if not out["title"]:
            self.problems.append(Problem(self.values[path], "the item's link has no text; write its title "
                                                            "between [ and ]"))
        if summary:
            out["summary"] = summary
        else:
            self.problems.append(Problem(self.values[path], f"the item '{entry['title']}' has no summary; write a "
                                                            "sentence or two after its link"))
        entries = self.sections[path[1]]
        entries[path[2]] = out
