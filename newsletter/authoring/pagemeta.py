"""What a web page says about itself: title, description, preview image, site name.

Why extruct: it is the parser made for this (Scrapy's project), reading OpenGraph and
JSON-LD (including ``@graph`` documents and the malformed JSON found in the wild) from
an lxml tree; regular expressions over HTML break on attribute order, quoting,
entities and comments. Twitter cards, ``<title>``, ``<meta name=description>`` and
``<base href>`` are read from the same lxml tree with XPath. The sources are tried in
that order: OpenGraph, Twitter, JSON-LD, then the plain HTML.
"""

from __future__ import annotations

import codecs
from typing import Any, NamedTuple
from urllib.parse import urljoin

from newsletter.authoring.fetch import is_fetchable

TITLE_MAX = 200
DESCRIPTION_MAX = 200
# JSON-LD nodes that describe the site or its furniture, not the page's content.
_NOT_CONTENT = {"Organization", "Person", "WebSite", "BreadcrumbList", "ListItem", "ImageObject",
                "SiteNavigationElement", "SearchAction", "EntryPoint", "Brand", "Logo"}


class PageMeta(NamedTuple):
    title: str | None = None
    description: str | None = None
    image: str | None = None  # an absolute http(s) URL
    site_name: str | None = None


def clean(text: Any, limit: int | None = None) -> str | None:
    """One line of text: whitespace collapsed, control characters dropped, cut at ``limit``."""
    if not isinstance(text, str):
        return None
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if limit and len(text) > limit:
        cut = text[: limit - 1]
        space = cut.rfind(" ")
        text = (cut[:space] if space > limit * 0.6 else cut).rstrip(" ,;:.-–—") + "…"
    return text or None


def page_meta(body: bytes, final_url: str, charset: str | None = None) -> PageMeta:
    """The metadata of an HTML page fetched from ``final_url`` (after redirects)."""
    import extruct  # imported here: it costs a third of a second, and `check` never needs it
    from extruct.utils import parse_html
    from lxml.etree import ParserError

    try:
        tree = parse_html(body, encoding=_encoding(body, charset))
    except (ParserError, ValueError, LookupError):
        return PageMeta()
    if tree is None:
        return PageMeta()
    base = final_url
    for href in tree.xpath("//base/@href"):
        base = urljoin(final_url, href.strip())
        break
    data = extruct.extract(tree, base_url=base, syntaxes=["opengraph", "json-ld"], uniform=True, errors="ignore")
    og: dict[str, Any] = {}
    for obj in data.get("opengraph") or ():
        og.update({k: v for k, v in obj.items() if k not in og})
    twitter = _named_meta(tree, "twitter:")
    plain = _named_meta(tree, "description")
    ld = _json_ld_nodes(data.get("json-ld") or [])
    content = next((n for n in ld if not _types(n) & _NOT_CONTENT and (n.get("headline") or n.get("name"))), {})

    title = _first(og.get("og:title"), twitter.get("twitter:title"), content.get("headline"),
                   content.get("name"), _title_element(tree), limit=TITLE_MAX)
    description = _first(og.get("og:description"), twitter.get("twitter:description"),
                         content.get("description"), plain.get("description"), limit=DESCRIPTION_MAX)
    site = _first(og.get("og:site_name"), _name_of(content.get("publisher")),
                  next((n.get("name") for n in ld if "WebSite" in _types(n)), None), limit=TITLE_MAX)
    image = None
    for candidate in (og.get("og:image:secure_url"), og.get("og:image:url"), og.get("og:image"),
                      twitter.get("twitter:image"), twitter.get("twitter:image:src"),
                      _image_of(content.get("image")), _image_of(content.get("thumbnailUrl"))):
        if isinstance(candidate, str) and candidate.strip():
            absolute = urljoin(base, candidate.strip())
            if is_fetchable(absolute):
                image = absolute
                break
    return PageMeta(title, description, image, site)


def _encoding(body: bytes, charset: str | None) -> str | None:
    """The header's charset; else UTF-8 when the bytes are UTF-8 (most of the web, and
    lxml would read them as Latin-1); else None, letting lxml follow a ``<meta charset>``."""
    if charset:
        try:
            return codecs.lookup(charset).name
        except LookupError:
            pass
    try:
        codecs.getincrementaldecoder("utf-8")().decode(body, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return None


def _named_meta(tree: Any, prefix: str) -> dict[str, str]:
    """``<meta name|property="prefix..." content>``, first value of each (names lowercased)."""
    found: dict[str, str] = {}
    for el in tree.xpath("//meta[@content]"):
        name = (el.get("name") or el.get("property") or "").strip().lower()
        if name.startswith(prefix) and name not in found:
            found[name] = el.get("content")
    return found


def _title_element(tree: Any) -> str | None:
    for el in tree.xpath("//head/title | //title"):
        text = el.text_content()
        if text and text.strip():
            return text
    return None


def _json_ld_nodes(items: list[Any]) -> list[dict[str, Any]]:
    """Every JSON-LD object, ``@graph`` members flattened, in document order."""
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, dict):
            out.append(item)
            graph = item.get("@graph")
            if isinstance(graph, list):
                out.extend(n for n in graph if isinstance(n, dict))
    return out


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("@type")
    if isinstance(kind, str):
        return {kind}
    return {k for k in kind if isinstance(k, str)} if isinstance(kind, list) else set()


def _name_of(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value.get("name") if isinstance(value, dict) else value if isinstance(value, str) else None


def _image_of(value: Any) -> str | None:
    """A JSON-LD image: a URL, a list of them, or an ImageObject with ``url``/``contentUrl``."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("url") or value.get("contentUrl")
    return value if isinstance(value, str) else None


def _first(*values: Any, limit: int) -> str | None:
    for value in values:
        text = clean(value, limit)
        if text:
            return text
    return None
