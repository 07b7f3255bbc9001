"""Render an issue once: Jinja2 (autoescape) -> MJML -> HTML -> inlined CSS for the
email, the text part from its own layout, and the web page.

Personal fields (the reader's name, the unsubscribe link) are left as markers that
``Rendered.fill`` replaces per recipient, so the costly work happens once per issue.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote, urlsplit

import css_inline
import jinja2
import mjml
from markupsafe import Markup

from newsletter.authoring.labels import format_date, joined, labels_for
from newsletter.authoring.labels import greeting as greet
from newsletter.authoring.look import logo_image, look
from newsletter.authoring.markup import Markdown, Prose, add_utm, wrap
from newsletter.authoring.model import Image, Issue
from newsletter.config import Settings
from newsletter.errors import Location, NewsletterError

# A local image's src as written -> its URL. Callers join a base and the src; where the URL
# ends with the src, the renderer percent-encodes that part (img/my figure.png).
ImageUrl = Callable[[str], str]
GMAIL_CLIP_BYTES = 102 * 1024
# Appended to the preheader so inboxes do not fill the preview with the body's first words.
_PREVIEW_FILLER = "&#847;&zwnj;&nbsp;" * 24


class Rendered(NamedTuple):
    """One issue rendered: the parts with personal markers still in them."""

    issue: Issue
    subject: str
    preheader: str
    html: str
    text: str
    web: str
    marker: str  # unique per render, so no author text can be mistaken for a marker
    labels: dict[str, str] = {}  # noqa: RUF012 (never mutated): the wording this issue was rendered with

    def greeting(self, name: str) -> str:
        """The ``greeting`` personal field for a reader called ``name`` (may be empty)."""
        return greet(self.labels, name) if self.labels.get("greeting") else ""

    def split(self, part: str) -> list[str]:
        """``part`` cut at its personal fields: static text, field name, static text, ..."""
        return re.split(f"{self.marker}([A-Za-z0-9_]+){self.marker}", part)

    def fill(self, values: dict[str, str]) -> tuple[str, str]:
        """The email's HTML and text with personal ``values`` filled in (escaped for HTML).
        Sending does the same on pre-encoded bytes (``personalize``)."""

        values = {"greeting": self.greeting(values.get("name", "")), **values}

        def fill_part(part: str, escape: bool) -> str:
            pieces = self.split(part)
            for n in range(1, len(pieces), 2):
                value = " ".join(values.get(pieces[n], "").split())  # no line breaks, ever
                pieces[n] = html.escape(value) if escape else value
            return "".join(pieces)

        return fill_part(self.html, True), fill_part(self.text, False)

    @property
    def html_size(self) -> int:
        """Bytes of the email's HTML, as Gmail counts them for clipping."""
        return len(self.html.encode("utf-8"))


class Tracker(Protocol):
    """Tracked links for a send's email and text part (``mailing.tracking.LinkBook``)."""

    canary: str  # the hidden link no human clicks

    def link(self, url: str, tagged: str) -> str: ...  # the redirect to ``tagged`` (``url`` with UTM)


class Renderer:
    """Templates, Markdown and the CSS inliner, set up once for many renders."""

    def __init__(self, settings: Settings):
        self.settings = settings
        layouts = settings.layouts
        if not (layouts / "email.mjml").is_file():
            raise NewsletterError(f"{layouts}: no email.mjml layout here", hint="set layouts: in newsletter.yaml")
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(layouts),
            bytecode_cache=_bytecode_cache(),
            autoescape=jinja2.select_autoescape(("html", "mjml", "xml"), default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["wrap"] = wrap
        self.md = Markdown()
        css_file = layouts / "email.css"
        self.inliner = css_inline.CSSInliner(
            inline_style_tags=False,  # keep @media and dark-mode rules in <style>, untouched
            keep_style_tags=True,
            load_remote_stylesheets=False,
            # email.css is a layout too: the brand's colours are filled in once, here.
            extra_css=self.template("email.css", look(settings, settings.lang)) if css_file.is_file() else None,
        )
        self.logo = logo_image(settings)

    def render(self, issue: Issue, image_url: ImageUrl | None = None, email_only: bool = False,
               site_root: str | None = None, track: Tracker | None = None) -> Rendered:
        """Render ``issue``. A local image's ``src`` becomes ``image_url(src)`` (default:
        the path as written, for pages with the images beside them). ``email_only`` skips
        the text part and the web page (``check`` only measures the email). ``site_root``
        is the archive's root relative to the web page ("../"): its links then stay
        within the site, wherever it is served (default: absolute, from base_url). ``track``
        (a send's): the email and its text part link through it; the web page never does."""
        marker = "NL" + os.urandom(6).hex()
        issue = issue._replace(assets=(self.logo,)) if self.logo else issue
        context = self.context(issue, marker, image_url, track)
        if site_root is not None:
            context["archive_url"] = site_root + "index.html"
            context["subscribe_url"] = site_root + "subscribe" if self.settings.base_url else None
        email_html = self.inline_css(self.compile_mjml(self.template("email.mjml", context)))
        text = "" if email_only else self.template("email.txt", context)
        if track is not None and not email_only:
            context = self.context(issue, marker, image_url)  # the web page links directly
        web = "" if email_only else self.template("web.html", context)
        return Rendered(issue, context["subject"], context["preheader"], email_html, text, web, marker,
                        context["labels"])

    def compile_mjml(self, source: str) -> str:
        """MJML to HTML, with no remote fonts."""
        try:
            return mjml.mjml2html(source, fonts={}, disable_comments=True)
        except Exception as e:  # MRML raises its own error types; all mean a bad layout
            raise NewsletterError(f"{self.settings.layouts / 'email.mjml'}: MJML could not compile it: {e}") from None

    def inline_css(self, email_html: str) -> str:
        """Inline email.css into the elements; <style> blocks (media queries) stay as they are."""
        return self.inliner.inline(email_html)

    def site_context(self, lang: str | None = None) -> dict[str, Any]:
        """What the archive index, the feed and the web side's pages see."""
        s = self.settings
        lang = lang or s.lang
        return {
            "lang": lang,
            "name": s.name,
            "labels": labels_for(lang, s.labels),
            "about": s.about,
            **look(s, lang),
            "base_url": s.base_url,
            "subscribe_url": "subscribe" if s.base_url else None,  # the archive's root page
            "md": lambda text: self.md.convert(text, lambda url: url).html,
        }

    def template(self, name: str, context: dict[str, Any]) -> str:
        """Render one layout, turning template mistakes into errors that name the layout."""
        try:
            return self.env.get_template(name).render(context)
        except jinja2.TemplateNotFound:
            raise NewsletterError(f"{self.settings.layouts / name}: layout not found") from None
        except jinja2.TemplateSyntaxError as e:
            where = Location(str(self.settings.layouts / name), e.lineno or 0, 1)
            raise NewsletterError(f"layout error: {e.message}", where) from None
        except jinja2.UndefinedError as e:
            raise NewsletterError(f"{self.settings.layouts / name}: layout error: {e.message}") from None

    def context(self, issue: Issue, marker: str, image_url: ImageUrl | None = None,
                track: Tracker | None = None) -> dict[str, Any]:
        """What the layouts see: the issue, labels, settings and helper functions; with
        ``track``, the email's links go through it."""
        s = self.settings
        labels = labels_for(issue.lang, s.labels, issue.labels)
        utm = {}
        if s.utm.enabled:
            campaign = s.utm.campaign.replace("{name}", s.name).replace("{number}", str(issue.number))
            utm = {"utm_source": s.utm.source, "utm_medium": s.utm.medium, "utm_campaign": campaign}

        # The email and the web page share these: each link and each Markdown field is
        # worked out once per render, however many layouts show it.
        tagged: dict[str, str] = {}
        prose: dict[tuple[str, bool], Prose] = {}
        hrefs: dict[tuple[str, bool], list[str]] = {}  # each field's live links, as its text part shows them
        markers = _Markers(marker)

        def tag(url: str) -> str:
            if url not in tagged:
                tagged[url] = add_utm(url, utm)
            return tagged[url]

        def follow(url: str) -> str:  # an http(s) link as the email gives it: tagged, tracked if asked
            if track is None or urlsplit(url).scheme.lower() not in ("http", "https"):
                return tag(url)
            tracked = track.link(url, tag(url))
            return f"{tracked}/{markers.click}" if s.tracking.per_subscriber else tracked

        def convert(text: str | None, inline: bool) -> Prose:
            key = (text or "", inline)
            if key not in prose:
                hrefs[key] = []
                prose[key] = self.md.convert(text, lambda url: hrefs[key].append(url) or follow(url), inline)
            return prose[key]

        def md_text(text: str | None, inline: bool = False) -> str:
            out = convert(text, inline).text
            for url in hrefs[(text or "", inline)] if track is not None else ():
                out = out.replace(f" <{url}>", f" <{follow(url)}>")
            return out

        def image_src(image: Image) -> str:
            if "://" in image.src:
                return image.src
            if image_url is None:
                return quote(image.src)
            url = image_url(image.src)
            return url[: -len(image.src)] + quote(image.src) if url.endswith(image.src) else url

        title_line = labels["issue"].format(number=issue.number)
        return {
            "issue": issue,
            "name": s.name,
            "subject": issue.subject or f"{s.name} #{issue.number}: {issue.title}",
            "preheader": issue.preheader or "",
            "preview_filler": Markup(_PREVIEW_FILLER),
            "labels": labels,
            "issue_line": f"{title_line} · {format_date(issue.date, issue.lang)}",
            "sections": [(sec.key, labels[sec.key], sec.items) for sec in issue.sections],
            "web_url": f"{s.base_url}/{issue.number}/" if s.base_url else None,
            "archive_url": f"{s.base_url}/" if s.base_url else None,
            "subscribe_url": f"{s.base_url}/subscribe" if s.base_url else None,
            "about": s.about,
            **look(s, issue.lang, self.logo),
            "greeting": bool(labels["greeting"]),
            "joined": lambda head, tail: joined(head, tail, issue.lang),
            "postal_address": s.postal_address,
            "why": labels["why"].format(name=s.name),
            "personal": markers,
            "md": lambda text: convert(text, False).html,
            "md_inline": lambda text: convert(text, True).html,
            "md_text": md_text,
            "link": follow,
            "text_link": lambda url: url if track is None else follow(url),  # the text part: as written, or tracked
            "canary": track.canary if track is not None else None,
            "image_src": image_src,
            "image_width": lambda image, limit=552: min(image.width or limit, limit),
            # With both attributes the reader's app reserves the space before the image
            # arrives, so nothing below it jumps.
            "image_height": lambda image, limit=552: (round(image.height * min(image.width, limit) / image.width)
                                                      if image.width and image.height else None),
        }


class _Markers:
    """``personal.name``, ``personal.unsubscribe_url``, ``personal.<CSV column>`` in a
    layout: a marker that each recipient's value replaces at send time."""

    def __init__(self, marker: str):
        self.marker = marker

    def __getattr__(self, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_]+", name) or name.startswith("_"):
            raise AttributeError(name)
        return f"{self.marker}{name}{self.marker}"

    __getitem__ = __getattr__


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled layouts cached per user (keyed by the layout's checksum, so never stale):
    compiling them costs more than rendering an issue."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "newsletter", "jinja")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(folder)
