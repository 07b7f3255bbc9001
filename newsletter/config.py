"""Find and check ``newsletter.yaml`` once, into one ``Settings`` object passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from newsletter.brand import Brand, brand_format, brand_of
from newsletter.errors import Invalid, NewsletterError, Problem
from newsletter.shapes import (
    SECTION_KEYS,
    Boolean,
    Context,
    Custom,
    Field,
    Integer,
    Mapping,
    Markdown,
    Number,
    OneOf,
    Text,
    Url,
)
from newsletter.source import Path_, load_yaml
from newsletter.wording import Label, label_overrides

CONFIG_NAME = "newsletter.yaml"


class Utm(NamedTuple):
    enabled: bool = True
    source: str = "newsletter"
    medium: str = "email"
    campaign: str = "{name} #{number}"


class Smtp(NamedTuple):
    host: str = "127.0.0.1"
    port: int = 8025
    username: str | None = None
    security: str = "none"
    connections: int = 4
    rate: float = 10.0  # messages per second across all connections; 0: no limit
    retries: int = 4  # attempts for a temporary failure (4xx, dropped connection)
    backoff: float = 1.0  # seconds before the second attempt; doubles each time, plus jitter
    helo: str | None = None  # the EHLO name; None: the sender's domain
    timeout: float = 60.0  # seconds to wait for any reply (after DATA's dot: then the fate is unknown)


class Unsubscribe(NamedTuple):
    url: str | None = None
    mailto: str | None = None


class Enrich(NamedTuple):  # how `newsletter enrich` and `check --links` fetch
    arxiv_api: str = "https://export.arxiv.org/api/query"
    timeout: float = 10.0  # seconds for one request
    concurrency: int = 8  # requests at once in all (and at most 2 to one host)
    user_agent: str = "newsletter/0.1 (link previews and link checks for a curated newsletter)"


class Links(NamedTuple):
    check_on_send: bool = False  # run `check --links` before a send
    check_hosted: bool = True  # `send` refuses unless base_url serves the email's images and web version


class Bounces(NamedTuple):
    address: str | None = None  # VERP Return-Path: bounces+<token>@domain
    soft_limit: int = 3  # soft bounces (across issues) before a subscriber counts as bounced


class Dkim(NamedTuple):
    domain: str | None = None
    selector: str | None = None
    key_file: Path | None = None  # PEM, RSA or Ed25519, outside version control


class Tracking(NamedTuple):  # click counting through {base_url}/c/<id>; never opens
    clicks: bool = False  # links in the email go through serve's redirect, counted per link
    per_subscriber: bool = False  # also record who clicked (off: counts only)


class Signup(NamedTuple):  # limits on the web sign-up's confirmation mail (each per hour)
    per_client: int = 10  # sign-ups from one client address
    hourly: int = 200  # confirmation mails in all


class Settings(NamedTuple):
    """Everything newsletter.yaml says, with defaults filled in and paths made absolute."""

    file: Path
    name: str
    lang: str = "en"
    sender: str | None = None
    reply_to: str | None = None
    base_url: str | None = None
    postal_address: str | None = None
    about: str | None = None
    utm: Utm = Utm()
    labels: dict[str, str | dict[str, str]] = {}  # noqa: RUF012 (never mutated): text, or text per language
    brand: Brand = Brand()
    smtp: Smtp = Smtp()
    unsubscribe: Unsubscribe = Unsubscribe()
    signup: Signup = Signup()
    enrich: Enrich = Enrich()
    links: Links = Links()
    images: str = "hosted"  # hosted (under base_url) | embed (attached by Content-ID)
    bounces: Bounces = Bounces()
    dkim: Dkim = Dkim()
    tracking: Tracking = Tracking()
    subscribers: Path | str = Path("subscribers.db")  # a SQLite file, or a postgresql:// URL (kept as text)
    layouts: Path = Path("layouts")
    warnings: tuple[Problem, ...] = ()  # reported by `check`, `build` and the preview

    @property
    def root(self) -> Path:
        return self.file.parent


def _address(value: str, path: Path_, ctx: Context) -> Any:
    from email.utils import parseaddr  # imported here: it costs more than the rest of this module

    name, addr = parseaddr(value)
    if "@" not in addr or " " in addr:
        return ctx.error(path, f"'{value}' is not an email address like \"Name <news@example.com>\"")
    return value


def _unsubscribe_url(value: str, path: Path_, ctx: Context) -> Any:
    if "{token}" not in value:
        return ctx.error(path, "must contain {token}, where each subscriber's token goes")
    return value


def _one_click(value: str, path: Path_, ctx: Context) -> Any:
    # RFC 8058 one-click needs an https URL, so a send leaves List-Unsubscribe-Post out and
    # Gmail and Yahoo (which require it of bulk senders) offer no unsubscribe button. A
    # server on this machine (the demo) is never seen by them, so it is not worth a word.
    from urllib.parse import urlsplit

    host = urlsplit(value).hostname or ""
    if not value.lower().startswith("https://") and host not in ("127.0.0.1", "localhost", "::1"):
        ctx.warn(path, "is not https, so messages go without List-Unsubscribe-Post: no one-click "
                       "unsubscribe, which Gmail and Yahoo require of bulk senders")
    return value


STORE_SCHEMES = ("postgresql://", "postgres://")  # a PostgreSQL store; anything else is a SQLite file


def _store(value: str, path: Path_, ctx: Context) -> Any:
    # This file is shared and committed: the password comes from the environment or ~/.pgpass.
    from urllib.parse import urlsplit

    parts = urlsplit(value) if value.startswith(STORE_SCHEMES) else None
    if parts and (parts.password is not None or "password=" in parts.query):
        return ctx.error(path, "holds a password, which newsletter.yaml must not: remove it and set"
                               " NEWSLETTER_PGPASSWORD (or PGPASSWORD, or use ~/.pgpass)")
    if parts and (not parts.hostname or not parts.path.strip("/")):
        return ctx.error(path, f"'{value}' needs a host and a database: postgresql://user@host:port/db")
    return value


def _format() -> Mapping:
    address = Custom(Text(), _address)
    return Mapping(
        {
            "name": Field(Text(), "The newsletter's name", True),
            "lang": Field(Text(pattern=r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*"), "Default language of issues"),
            "from": Field(address, "The sender, like \"Akira <news@example.com>\""),
            "reply_to": Field(address, "Where replies go"),
            "base_url": Field(Url(), "The web archive's address"),
            "postal_address": Field(Text(), "Your postal address (required to send)"),
            "about": Field(Markdown(), "About the newsletter, in the footer"),
            "brand": Field(brand_format(), "The newsletter's look: logo, accent colour, footer"),
            "greeting": Field(Label("greeting"), 'The email\'s first line, like "Hi {name},"'),
            "labels": Field(label_overrides(), "The words the layouts print, by name"),
            "utm": Field(
                Mapping(
                    {
                        "enabled": Field(Boolean(), "Add UTM parameters to outbound links"),
                        "source": Field(Text(), "utm_source"),
                        "medium": Field(Text(), "utm_medium"),
                        "campaign": Field(Text(), "utm_campaign; {name} and {number} are filled in"),
                    }
                ),
                "Link tracking parameters",
            ),
            "sections": Field(
                Mapping({k: Field(Text(), f"Label of the {k} section") for k in SECTION_KEYS}),
                "Section label overrides",
            ),
            "smtp": Field(
                Mapping(
                    {
                        "host": Field(Text(), "SMTP host", True),
                        "port": Field(Integer(), "SMTP port"),
                        "username": Field(Text(), "SMTP login; the password comes from the environment"),
                        "security": Field(OneOf("starttls", "ssl", "none"), "Connection security"),
                        "connections": Field(Integer(), "Parallel connections"),
                        "rate": Field(Number(), "Messages per second, at most (0: no limit)"),
                        "retries": Field(Integer(), "Attempts for a temporary failure"),
                        "backoff": Field(Number(), "Seconds before the second attempt (doubles each time)"),
                        "helo": Field(Text(), "Name to greet the relay with (default: the sender's domain)"),
                        "timeout": Field(Number(), "Seconds to wait for a reply from the relay"),
                    }
                ),
                "The mail relay",
            ),
            "unsubscribe": Field(Mapping({"url": Field(Custom(Custom(Url(), _unsubscribe_url), _one_click),
                                                       "One-click unsubscribe URL with {token}"),
                                          "mailto": Field(Text(), "Address for unsubscribe requests by mail")}),
                                 "How subscribers leave"),
            "enrich": Field(Mapping({"arxiv_api": Field(Url(), "The arXiv API's query address (a mirror, or a test"
                                                               " server)"),
                                     "timeout": Field(Number(), "Seconds for one request"),
                                     "concurrency": Field(Integer(), "Requests at once"),
                                     "user_agent": Field(Text(), "The User-Agent fetches send")}),
                            "How `enrich` and `check --links` fetch"),
            "links": Field(
                Mapping({"check_on_send": Field(Boolean(), "Run `check --links` before a send"),
                         "check_hosted": Field(Boolean(), "Before a send, ask base_url for the email's images and"
                                                          " web version (default: true)")}),
                "Link checks",
            ),
            "images": Field(OneOf("hosted", "embed"), "Email images: hosted under base_url, or embedded"),
            "bounces": Field(
                Mapping({"address": Field(address, "The bounce address; each message's Return-Path is a VERP"
                                                    " form of it (bounces+<token>@...)"),
                         "soft_limit": Field(Integer(), "Soft bounces before a subscriber counts as bounced")}),
                "Bounce handling",
            ),
            "dkim": Field(
                Mapping({"domain": Field(Text(), "The signing domain (d=)"),
                         "selector": Field(Text(), "The selector (s=), published at <selector>._domainkey"),
                         "key_file": Field(Text(), "The private key (PEM), relative to newsletter.yaml")}),
                "DKIM signing",
            ),
            "tracking": Field(
                Mapping({"clicks": Field(Boolean(), "Count clicks: links go through {base_url}/c/<id>"),
                         "per_subscriber": Field(Boolean(), "Also record which subscriber clicked")}),
                "Click counting",
            ),
            "signup": Field(Mapping({"per_client": Field(Integer(), "Sign-ups an hour from one client address"),
                                     "hourly": Field(Integer(), "Confirmation mails an hour in all")}),
                            "Limits on web sign-up"),
            "subscribers": Field(Custom(Text(), _store), "The subscriber store: a SQLite file (default:"
                                 " subscribers.db), or postgresql://user@host:port/db (no password)"),
            "layouts": Field(Text(), "The templates folder (default: layouts)"),
        }
    )


def find_config(start: Path, explicit: Path | None = None) -> Path:
    """``explicit``, or newsletter.yaml in ``start`` or the nearest parent that has one."""
    if explicit is not None:
        if not explicit.is_file():
            raise NewsletterError(f"{explicit}: no such file")
        return explicit
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    raise NewsletterError(
        f"no {CONFIG_NAME} in {start} or any folder above it", hint="run in a workspace or pass --config PATH"
    )


def load_settings(path: Path) -> Settings:
    """Check newsletter.yaml and return Settings; raises ``Invalid`` with every problem."""
    path = path.resolve()
    source = load_yaml(path, _shown(path), what="config")
    ctx = Context(source, path.parent, list(source.problems))
    data = _format().check(source.data, (), ctx)
    if any(not p.warning for p in ctx.problems) or not isinstance(data, dict):
        raise Invalid(ctx.problems)
    root = path.parent
    smtp = {k: v for k, v in (data["smtp"] or {}).items() if v is not None}
    return Settings(
        file=path,
        name=data["name"],
        lang=data["lang"] or "en",
        sender=data["from"],
        reply_to=data["reply_to"],
        base_url=data["base_url"].rstrip("/") if data["base_url"] else None,
        postal_address=data["postal_address"],
        about=data["about"],
        utm=Utm(**{k: v for k, v in (data["utm"] or {}).items() if v is not None}),
        labels=_labels(data),
        brand=brand_of(_given(data["brand"]), root),
        smtp=Smtp(**smtp),
        unsubscribe=Unsubscribe(**(data["unsubscribe"] or {})),
        signup=Signup(**_given(data["signup"])),
        tracking=Tracking(**_given(data["tracking"])),
        enrich=Enrich(**_given(data["enrich"])),
        links=Links(**_given(data["links"])),
        images=data["images"] or "hosted",
        bounces=Bounces(**_given(data["bounces"])),
        dkim=Dkim(**{**_given(data["dkim"]), **({"key_file": root / data["dkim"]["key_file"]}
                                                  if (data["dkim"] or {}).get("key_file") else {})}),
        subscribers=store if (store := data["subscribers"] or "").startswith(STORE_SCHEMES)
        else root / (store or "subscribers.db"),
        layouts=root / (data["layouts"] or "layouts"),
        warnings=tuple(p for p in ctx.problems if p.warning),
    )


def _labels(data: dict) -> dict:
    """Label overrides: `sections:` (the older way to name sections), `labels:`, `greeting:`."""
    labels = {k: v for k, v in (data["sections"] or {}).items() if v}
    labels.update(data["labels"] or {})
    if data["greeting"]:
        labels["greeting"] = data["greeting"]
    return labels


def _given(section: dict | None) -> dict:
    """The keys a settings section sets (the rest keep their defaults)."""
    return {k: v for k, v in (section or {}).items() if v is not None}


def _shown(path: Path) -> str:
    """A path as the user would write it: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
