"""The checked issue: immutable records that the renderers read and nothing mutates.

NamedTuples rather than frozen dataclasses: the same immutability, at a third of the
import cost, which every ``newsletter check`` pays.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from newsletter.shapes import SECTION_KEYS


class Image(NamedTuple):
    src: str  # as written: a path relative to the issue file, or an https URL
    alt: str
    caption: str | None = None
    file: Path | None = None  # the local file, when src is a path
    width: int | None = None  # intrinsic size in pixels, when known
    height: int | None = None


class Paper(NamedTuple):
    arxiv: str
    title: str
    authors: str | None = None  # the first authors, like "Tay, Dehghani, et al."

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"


class Card(NamedTuple):
    title: str
    description: str | None = None
    image: Image | None = None  # a thumbnail of the linked page (alt "": the title says it)


class Item(NamedTuple):
    title: str
    url: str
    summary: str
    source: str
    image: Image | None = None
    paper: Paper | None = None
    card: Card | None = None


class Section(NamedTuple):
    key: str
    items: tuple[Item, ...]


class MorePost(NamedTuple):
    title: str
    url: str
    description: str | None = None


class Issue(NamedTuple):
    path: Path
    number: int
    date: dt.date
    title: str
    lang: str
    sections: tuple[Section, ...]
    subject: str | None = None
    preheader: str | None = None
    intro: str | None = None
    highlights: tuple[str, ...] = ()
    more: tuple[MorePost, ...] = ()
    outro: str | None = None
    labels: dict[str, str | dict[str, str]] = {}  # noqa: RUF012 (never mutated): this issue's own wording
    assets: tuple[Image, ...] = ()  # pictures the layouts add (the newsletter's logo), set by the renderer

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(item for section in self.sections for item in section.items)

    @property
    def images(self) -> tuple[Image, ...]:
        """Every picture the issue shows: figures and link-card thumbnails."""
        figures = [i.image for i in self.items if i.image is not None]
        thumbs = [i.card.image for i in self.items if i.card is not None and i.card.image is not None]
        return tuple(figures + thumbs) + self.assets


def raw_picks(data: Any) -> Iterator[tuple[tuple, dict]]:
    """The items and more-posts of an issue's raw (unchecked) data, with their key paths,
    in file order; whatever is not a mapping is skipped (the checker reports it). For the
    tools that read many issues without building the model (index, link check)."""
    sections = data.get("sections") if isinstance(data, dict) else None
    for key in SECTION_KEYS if isinstance(sections, dict) else ():
        items = sections.get(key)
        for i, item in enumerate(items if isinstance(items, list) else ()):
            if isinstance(item, dict):
                yield ("sections", key, i), item
    more = data.get("more") if isinstance(data, dict) else None
    for i, post in enumerate(more if isinstance(more, list) else ()):
        if isinstance(post, dict):
            yield ("more", i), post
