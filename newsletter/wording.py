"""The labels the layouts print, by name, with their English wording: the one list that
``labels:`` in newsletter.yaml and in an issue is checked against (an unknown name is an
error with a did-you-mean hint). Other languages live in ``authoring.labels``.

A label is overridden with text (every language) or with text per language::

    labels:
      highlights: This month's highlights
      contents: {en: In this issue, zh: 本期内容}
"""

from __future__ import annotations

import re
from typing import Any

from newsletter.shapes import MISSING, Context, Field, Mapping, Shape
from newsletter.source import Path_

ENGLISH = {
    "featured": "Featured news",
    "use_cases": "Use cases",
    "papers": "Papers",
    "articles": "Technical articles",
    "other": "Other topics",
    "highlights": "This week's highlights",
    "contents": "In this issue",
    "more": "More posts",
    "about": "About",
    "paper": "Paper",
    "greeting": "",  # none unless the author sets one, like "Hi {name},"
    "greeting_no_name": "",  # default: the greeting without {name} ("Hi,")
    "unsubscribe": "Unsubscribe",
    "view_online": "Read this issue in your browser",
    "issue": "Issue {number}",
    "why": "You receive this email because you subscribed to {name}.",
    "sent_to": "Sent to {email}.",
    "archive": "All issues",
    "subscribe_prompt": "Get the next issue by email",
    "subscribe": "Subscribe",
    "feed": "Atom feed",
    "unsubscribe_title": "Unsubscribe from {name}?",
    "unsubscribe_button": "Unsubscribe {email}",
    "unsubscribed": "You are unsubscribed: {name} will send no more email to {email}.",
    "unsubscribed_title": "Unsubscribed",
    "check_inbox_title": "Check your inbox",
    "confirmed_title": "Subscribed",
    "bad_link": "This link is not valid: it may be mistyped, or too old. Nothing was changed.",
    "check_inbox": "Thank you! If {email} can receive mail, a confirmation link is on its way. "
                   "Open it to finish signing up.",
    "bad_address": "That does not look like an email address.",
    "try_later": "The confirmation mail could not be sent just now. Please try again in a few minutes.",
    "confirm_title": "Confirm your subscription to {name}",
    "confirm_button": "Yes, subscribe {email}",
    "confirmed": "Welcome! {email} is subscribed to {name}.",
    "confirm_subject": "Confirm your subscription to {name}",
    "confirm_body": "Someone, probably you, asked to subscribe {email} to {name}.\n\n"
                    "To confirm, open this link within {hours} hours:\n{url}\n\n"
                    "If it was not you, ignore this email: nothing will happen.",
}
LANG_PATTERN = r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*"


def placeholders(text: str) -> set[str]:
    """The ``{field}`` names in ``text``; ValueError for a stray brace."""
    from string import Formatter  # only when labels are given: every command imports this module

    return {name for _, name, _, _ in Formatter().parse(text) if name is not None}


def _fields(name: str) -> set[str] | None:
    """What label ``name`` is filled with ({number}, {name}...); None: printed as written."""
    if name == "greeting":
        return {"name"}
    if name == "greeting_no_name":
        return set()
    return placeholders(ENGLISH.get(name, "")) or None


class Label(Shape):
    """One label: text for every language, or a mapping of language code to text."""

    def __init__(self, name: str):
        self.name = name

    def check(self, value: Any, path: Path_, ctx: Context) -> Any:
        if isinstance(value, dict):
            out = {}
            for lang, text in value.items():
                if not isinstance(lang, str) or not re.fullmatch(LANG_PATTERN, lang):
                    ctx.error(path + (lang,), f"'{lang}' is not a language code (like en, ja, zh)",
                              key=True, label=path)
                    return MISSING
                if self._text(text, path + (lang,), ctx) is MISSING:
                    return MISSING
                out[lang] = text
            return out
        return self._text(value, path, ctx)

    def _text(self, value: Any, path: Path_, ctx: Context) -> Any:
        if not isinstance(value, str):
            return ctx.error(path, "expected text, or a mapping of language code to text")
        allowed = _fields(self.name)
        if allowed is None:
            return value
        try:
            used = placeholders(value)
        except ValueError:
            return ctx.error(path, "has a stray { or }; write {{ or }} for a brace itself")
        unknown = sorted(used - allowed)
        if unknown:
            can = ", ".join(f"{{{n}}}" for n in sorted(allowed)) or "none"
            return ctx.error(path, f"{{{unknown[0]}}} is not filled in here; this label can use: {can}")
        return value

    def json_schema(self) -> dict[str, Any]:
        text = {"type": "string"}
        return {"anyOf": [text, {"type": "object", "additionalProperties": text}]}


def label_overrides() -> Mapping:
    """The shape of a ``labels:`` mapping."""
    fields = {name: Field(Label(name), f"Default: {text!r}" if text else "Default: none")
              for name, text in ENGLISH.items()}
    return Mapping(fields, lambda **given: {k: v for k, v in given.items() if v is not None})
