"""The checked issue: frozen dataclasses that the renderers read and nothing mutates."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

# The fixed sections, in the order they are rendered.
SECTION_KEYS = ("featured", "use_cases", "papers", "articles", "other")


@dataclass(frozen=True)
class Image:
    src: str  # as written: a path relative to the issue file, or an https URL
    alt: str
    caption: str | None = None
    file: Path | None = None  # the local file, when src is a path
    width: int | None = None  # intrinsic size in pixels, when known
    height: int | None = None


@dataclass(frozen=True)
class Paper:
    arxiv: str
    title: str

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"


@dataclass(frozen=True)
class Card:
    title: str
    description: str | None = None


@dataclass(frozen=True)
class Item:
    title: str
    url: str
    summary: str
    source: str
    image: Image | None = None
    paper: Paper | None = None
    card: Card | None = None


@dataclass(frozen=True)
class Section:
    key: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class MorePost:
    title: str
    url: str
    description: str | None = None


@dataclass(frozen=True)
class Issue:
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

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(item for section in self.sections for item in section.items)

    @property
    def images(self) -> tuple[Image, ...]:
        return tuple(i.image for i in self.items if i.image is not None)
