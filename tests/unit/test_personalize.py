"""The pre-encoded message template: per recipient, only a few values are encoded, and
the result must decode to exactly what a full render would give."""

from __future__ import annotations

import email
from email import policy

import pytest

from newsletter.authoring.check import check_issue
from newsletter.authoring.render import Renderer
from newsletter.mailing.personalize import MessageTemplate, Recipient

HOSTILE_VALUES = [
    "plain",
    "Zoë Ünal 李伟",
    "ends with space ",
    "=3D already encoded =",
    '"><script>alert(1)</script>',
    "x" * 200,
    "tab\there",
    ".starts with a dot",
]


@pytest.fixture
def template(ws):
    rendered = Renderer(ws.settings).render(check_issue(ws.issue(), "en").issue)
    return rendered, MessageTemplate(rendered, ws.settings, b"k", attach_images=False)


@pytest.mark.parametrize("name", HOSTILE_VALUES)
def test_personalized_parts_decode_to_the_full_render(template, name: str) -> None:
    rendered, tpl = template
    recipient = Recipient("reader@example.com", name, {})
    message = email.message_from_bytes(tpl.personalize(recipient), policy=policy.default)
    values = tpl.values(recipient)
    html, text = rendered.fill(values)
    assert message.get_body(("html",)).get_content().replace("\r\n", "\n") == html
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert not message.defects and not any(p.defects for p in message.walk())


def test_a_name_cannot_add_headers(template) -> None:
    _, tpl = template
    raw = tpl.personalize(Recipient("a@example.com", "Eve\r\nBcc: everyone@example.com", {}))
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message["Bcc"] is None
    assert message["To"].addresses[0].addr_spec == "a@example.com"


def test_the_unsubscribe_link_differs_per_recipient_and_the_rest_is_shared(template) -> None:
    _, tpl = template
    a = tpl.personalize(Recipient("a@example.com"))
    b = tpl.personalize(Recipient("b@example.com"))
    assert a != b
    assert tpl.values(Recipient("a@example.com"))["token"] != tpl.values(Recipient("b@example.com"))["token"]


@pytest.mark.parametrize("name", ['Smith, "J" \\ Jr.', "李伟" * 40, "Zoë Ünal", "a" * 300])
def test_to_header_round_trips_any_name(template, name: str) -> None:
    _, tpl = template
    raw = tpl.personalize(Recipient("a@example.com", name))
    message = email.message_from_bytes(raw, policy=policy.default)
    (address,) = message["To"].addresses
    assert address.addr_spec == "a@example.com"
    # A long name without spaces is cut into encoded words of 75 characters (RFC 2047);
    # readers join them, Python's parser reads a space at each cut (CPython gh-128110).
    assert address.display_name == name or address.display_name.replace(" ", "") == name
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
