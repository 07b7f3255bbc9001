"""Check an issue file against the issue format and turn it into the model.

Every problem in the file is collected and reported at once as ``FILE:LINE:COL``.
The format is declared once below (``ISSUE``); ``newsletter schema`` prints the same
declaration as JSON Schema.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from newsletter.authoring import images
from newsletter.authoring.arxivid import ARXIV_PATTERN
from newsletter.authoring.catalog import Catalog, check_across
from newsletter.authoring.mistakes import check_mistakes
from newsletter.authoring.model import SECTION_KEYS, Card, Image, Issue, Item, MorePost, Paper, Section
from newsletter.errors import Invalid, Problem
from newsletter.shapes import (
    Context,
    Custom,
    Date,
    Field,
    Integer,
    ListOf,
    Mapping,
    Markdown,
    Shape,
    Text,
    Url,
    is_web_url,
    url_problem,
)
from newsletter.source import Path_, Source, load_yaml
from newsletter.wording import label_overrides

PREHEADER_MAX = 150
LANG_PATTERN = r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*"


def _arxiv(value: Any, path: Path_, ctx: Context) -> Any:
    if isinstance(value, float):
        return ctx.error(path, f'quote the arXiv id, or YAML reads it as a number: "{value}"')
    if not isinstance(value, str):
        return ctx.error(path, "expected an arXiv id as text")
    value = value.strip()
    if not re.fullmatch(ARXIV_PATTERN, value):
        return ctx.error(
            path, f"'{value}' is not an arXiv id (like 2109.10686, 2109.10686v2 or cs/0112017)"
        )
    return value


class _AnyValue(Shape):
    """Lets a rule see the raw value (to give a better message than 'expected text')."""

    def check(self, value: Any, path: Path_, ctx: Context) -> Any:
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string"}


def _image_src(value: str, path: Path_, ctx: Context) -> Any:
    if "://" in value:
        if not is_web_url(value, ("https",)):
            return ctx.error(path, f"'{value}' is neither a file path nor an https URL")
        problem = url_problem(value)
        return ctx.error(path, f"'{value}' {problem}") if problem else value
    if "\\" in value:  # a folder separator on Windows, a letter elsewhere: `build` would differ
        return ctx.error(path, f"'{value}' holds a backslash; separate folders with '/' (like img/figure.png)")
    file = (ctx.base_dir / value).resolve()
    # `build` writes the image at the same relative path under build/<number>/: a `..`
    # that still resolves inside issues/ (img/../../issues/img/a.png) would leave that folder.
    if (PurePosixPath(value).is_absolute() or PureWindowsPath(value).drive or ".." in value.split("/")
            or not file.is_relative_to(ctx.base_dir.resolve())):
        return ctx.error(path, f"'{value}' must be a path inside {ctx.base_dir.name}/ (like img/figure.png)")
    if not file.is_file():
        return ctx.error(path, f"image file '{value}' does not exist")
    if images.size_of(file) is None:
        return ctx.error(path, f"'{value}' is not a PNG, JPEG, GIF or WebP image")
    return value


def _build_image(src: str, alt: str | None, caption: str | None, base_dir: Path) -> Image:
    file = None if "://" in src else (base_dir / src).resolve()
    width, height = (images.size_of(file) or (None, None)) if file else (None, None)
    return Image(src=src, alt=alt or "", caption=caption, file=file, width=width, height=height)


def web_host(url: str) -> str:
    """The host a browser opens for a checked URL, IDNA-encoded (xn--). The checker refused
    backslashes and logins, after which Python and browsers agree on it but for %-escapes."""
    host = urlsplit(url).hostname or ""
    if ":" in host:  # an IPv6 address, shown as browsers do
        return f"[{host}]"
    try:
        return unquote(host).encode("idna").decode("ascii").lower()
    except UnicodeError:  # an empty or overlong label: shown as written
        return host


def shown_host(host: str) -> str:
    """``host`` for readers: in its own letters, or as xn-- when they mix scripts (as browsers do)."""
    try:
        letters = host.encode("ascii").decode("idna")
    except UnicodeError:
        return host
    return host if any(len(_scripts(label)) > 1 for label in letters.split(".")) else letters


# Scripts that one name may mix (UTS 39, "highly restrictive"): Japanese, Chinese, Korean.
_TOGETHER = ({"Latin", "Han", "Hiragana", "Katakana"}, {"Latin", "Han", "Bopomofo"}, {"Latin", "Han", "Hangul"})
_COMMON = ("KATAKANA-HIRAGANA", "MODIFIER", "UNKNOWN")  # marks shared by scripts


def _scripts(label: str) -> set[str]:
    """The scripts of ``label``'s letters (by Unicode name), if they mix in a way a
    look-alike would (Latin with Cyrillic: pаypal); empty otherwise."""
    found = set()
    for ch in label:
        word = unicodedata.name(ch, "UNKNOWN").split()[0] if ch.isalpha() else "UNKNOWN"
        if word not in _COMMON:
            found.add("Han" if word in ("CJK", "IDEOGRAPHIC") else word.title())
    return found if len(found) > 1 and not any(found <= ok for ok in _TOGETHER) else set()


def _source_of(url: str) -> str:
    host = shown_host(web_host(url))
    return host[4:] if host.startswith("www.") else host


def _fills(*sources: tuple[str, str]) -> Callable[[dict], str]:
    """Says that `newsletter enrich` fills a missing value, and from what: the first (key, what)
    whose key the mapping has. The email needs the value, so it stays an error until then."""
    def hint(raw: dict) -> str:
        found = next((what for key, what in sources if raw.get(key)), None)
        return f"; run `newsletter enrich` to fill it from {found}" if found else ""
    return hint


def issue_format(base_dir: Path) -> Mapping:
    """The issue format. ``base_dir`` is where relative image paths start."""
    one_line = Text()
    image = Mapping(
        {
            "src": Field(Custom(Text(), _image_src), "A path relative to the issue file, or an https URL", True),
            "alt": Field(Text(), 'What the image shows, for screen readers ("" marks decoration)', True),
            "caption": Field(one_line, "Shown under the image"),
        },
        lambda src, alt, caption: _build_image(src, alt, caption, base_dir),
    )
    item = Mapping(
        {
            "title": Field(one_line, "The linked headline", True,
                           _fills(("url", "the linked page"), ("paper", "arXiv"))),
            "url": Field(Url(), "Where the title links (http or https)", True,
                         _fills(("paper", "the paper's arXiv id"))),
            "summary": Field(Markdown(), "A short summary in Markdown", True),
            "source": Field(one_line, "Shown after the title; default: the URL's host"),
            "image": Field(image, "An optional figure"),
            "paper": Field(
                Mapping(
                    {
                        "arxiv": Field(Custom(_AnyValue(), _arxiv, pattern=f"^(?:{ARXIV_PATTERN})$"),
                                       'The arXiv id, quoted: "2109.10686"', True),
                        "title": Field(one_line, "The paper's title", True, _fills(("arxiv", "arXiv"))),
                        "authors": Field(one_line, 'The first authors, like "Tay, Dehghani, et al."'),
                    },
                    Paper,
                ),
                "The paper this item is about",
            ),
            "card": Field(
                Mapping(
                    {
                        "title": Field(one_line, "The linked page's title", True),
                        "description": Field(one_line, "The linked page's description"),
                        "image": Field(Custom(Text(), _image_src),
                                       "A thumbnail of the page: a path relative to the issue file, or an https URL"),
                    },
                    lambda image, **f: Card(**f, image=_build_image(image, "", None, base_dir) if image else None),
                ),
                "A link preview, as newsletter services show one",
            ),
        },
        lambda source, **f: Item(source=source or _source_of(f["url"]), **f),
    )
    sections = Mapping({key: Field(ListOf(item), f"The {key.replace('_', ' ')} section") for key in SECTION_KEYS})
    more = Mapping(
        {
            "title": Field(one_line, "The post's title", True, _fills(("url", "the linked page"))),
            "url": Field(Url(), "The post's address", True),
            "description": Field(one_line, "One line about it"),
        },
        MorePost,
    )
    return Mapping(
        {
            "number": Field(Integer(), "The issue number, unique in issues/", True),
            "date": Field(Date(), "The issue date, YYYY-MM-DD", True),
            "title": Field(one_line, "The issue's title", True),
            "subject": Field(one_line, 'The email subject; default "<name> #<number>: <title>"'),
            "preheader": Field(one_line, f"Inbox preview text (at most {PREHEADER_MAX} characters)"),
            "lang": Field(Text(pattern=LANG_PATTERN), "Language code (en, ja, zh, ...)"),
            "intro": Field(Markdown(), "Opening paragraph(s) in Markdown"),
            "highlights": Field(ListOf(Markdown()), "The issue's highlights, one Markdown line each"),
            "sections": Field(sections, "The sections of linked items", True),
            "more": Field(ListOf(more), "More posts, listed at the end"),
            "outro": Field(Markdown(), "Closing words in Markdown, before the footer"),
            "labels": Field(label_overrides(), "This issue's own wording of the layouts' labels"),
        }
    )


class Checked(NamedTuple):
    issue: Issue
    warnings: list[Problem]


def check_issue(path: Path, default_lang: str = "en", display: str | None = None,
                catalog: Catalog | None = None) -> Checked:
    """Load and check one issue file. Raises ``Invalid`` with every problem found.
    ``catalog``: the folder's index, refreshed once for many checks (default: refreshed now)."""
    source = load_yaml(path, display, what="issue")
    ctx = Context(source, path.parent, list(source.problems))
    data = issue_format(path.parent).check(source.data, (), ctx)
    if isinstance(data, dict):
        _check_whole(data, source, ctx, path, catalog)
    errors = [p for p in ctx.problems if not p.warning]
    if errors or not isinstance(data, dict):
        raise Invalid(ctx.problems)
    sections = tuple(
        Section(key, tuple(data["sections"][key])) for key in SECTION_KEYS if data["sections"][key]
    )
    issue = Issue(
        path=path,
        number=data["number"],
        date=data["date"],
        title=data["title"],
        lang=data["lang"] or default_lang,
        sections=sections,
        subject=data["subject"],
        preheader=data["preheader"],
        intro=data["intro"],
        highlights=tuple(data["highlights"] or ()),
        more=tuple(data["more"] or ()),
        outro=data["outro"],
        labels=data["labels"] or {},
    )
    return Checked(issue, sorted(ctx.problems, key=Problem.order))


def _check_whole(data: dict[str, Any], source: Source, ctx: Context, path: Path, catalog: Catalog | None) -> None:
    """Rules across fields: at least one item, repeated and look-alike URLs, preheader
    length, numbers."""
    raw_sections = source.data.get("sections")
    if isinstance(raw_sections, dict) and not any(raw_sections.get(k) for k in SECTION_KEYS):
        ctx.error(("sections",), "has no items; add at least one item to a section")
    if data.get("preheader") and len(data["preheader"]) > PREHEADER_MAX:
        ctx.warn(("preheader",), f"is {len(data['preheader'])} characters; inboxes show about {PREHEADER_MAX}")
    _warn_about_urls(source, ctx)
    check_mistakes(source, ctx)  # arXiv ids against their links, placeholders of `newsletter new`
    check_across(data, source, ctx, path, catalog)  # numbers, dates and links across issues/


def _warn_about_urls(source: Source, ctx: Context) -> None:
    found: list[tuple[str, Path_]] = []
    sections = source.data.get("sections") if isinstance(source.data, dict) else None
    for key, items in (sections or {}).items() if isinstance(sections, dict) else ():
        for i, item in enumerate(items if isinstance(items, list) else ()):
            if isinstance(item, dict) and isinstance(item.get("url"), str):
                found.append((item["url"].strip(), ("sections", key, i, "url")))
    for i, post in enumerate(source.data.get("more") or () if isinstance(source.data.get("more"), list) else ()):
        if isinstance(post, dict) and isinstance(post.get("url"), str):
            found.append((post["url"].strip(), ("more", i, "url")))
    counts = Counter(url for url, _ in found)
    first: dict[str, Path_] = {}
    for url, where in found:
        if counts[url] > 1 and url in first:
            line = source.where(first[url]).line
            ctx.warn(where, f"the same URL is already linked on line {line}")
        first.setdefault(url, where)
        if is_web_url(url) and not url_problem(url):
            _warn_look_alike(url, where, ctx)


def _warn_look_alike(url: str, where: Path_, ctx: Context) -> None:
    """A host whose letters mix scripts (a Cyrillic 'а' in pаypal.com) names another site
    than the one it looks like; browsers show such hosts as xn--, and so does the email."""
    host = web_host(url)
    try:
        letters = host.encode("ascii").decode("idna")
    except UnicodeError:
        return
    for label in letters.split("."):
        if scripts := _scripts(label):
            ctx.warn(where, f"the host {letters} mixes {' and '.join(sorted(scripts))} letters; it is "
                            f"{host}, not the site it looks like")
            return
