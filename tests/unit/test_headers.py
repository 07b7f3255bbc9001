"""Header fields as a relay and a mail reader see them, whatever the values: no line past
998 octets, lines within 78 wherever there is a place to fold, and the same name, subject
and address read back, by Python's parser and by an RFC 2047 reader."""

from __future__ import annotations

import base64
import binascii
import email
import random
import re
from email import policy

import pytest

from newsletter.authoring.check import check_issue
from newsletter.authoring.render import Renderer
from newsletter.config import Unsubscribe
from newsletter.mailing.personalize import MessageTemplate, Recipient

_WORD = r"(?P<ew>=\?utf-8\?(?P<enc>[qb])\?(?P<data>[^?\s]*)\?=)|(?P<space>\s+)|"
_PHRASE = re.compile(_WORD + r'"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<atom>[^\s"]+)', re.IGNORECASE)
_TEXT = re.compile(_WORD + r"(?P<atom>\S+)", re.IGNORECASE)  # unstructured: quotes are text


@pytest.fixture
def make(ws):
    """A MessageTemplate for the test issue, with other settings or another subject."""
    settings = ws.settings
    rendered = Renderer(settings).render(check_issue(ws.issue(), "en").issue)

    def make(subject: str | None = None, subject_prefix: str = "", test: bool = False, **changes) -> MessageTemplate:
        issue = rendered if subject is None else rendered._replace(subject=subject)
        return MessageTemplate(issue, settings._replace(**changes), b"k", attach_images=False,
                               subject_prefix=subject_prefix, test=test)

    return make


def fields(raw: bytes) -> dict[str, list[bytes]]:
    """Each header field's lines, as they travel (name: first line, then the folds)."""
    out: dict[str, list[bytes]] = {}
    name = ""
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line[:1] not in (b" ", b"\t"):  # else a fold, of the field before
            name = line.split(b":", 1)[0].decode()
        out.setdefault(name, []).append(line)
    return out


def value(raw: bytes, field: str) -> str:
    """The field's value unfolded (RFC 5322: only the line breaks go)."""
    return b"".join(fields(raw)[field]).decode().split(":", 1)[1].strip()


def reader(text: str, phrase: bool = True) -> str:
    """What a mail reader shows for a phrase or unstructured text (RFC 2047 6.2: white space
    between two encoded words is not shown; each word decodes on its own)."""
    out, space, after_word = [], "", False
    for m in (_PHRASE if phrase else _TEXT).finditer(text):
        if m["space"]:
            space = " "
            continue
        is_word = m["ew"] is not None
        out.append("" if is_word and after_word else space)
        space, after_word = "", is_word
        if is_word:
            data = m["data"].encode()
            out.append((base64.b64decode(data) if m["enc"] in "bB" else binascii.a2b_qp(data, header=True)).decode())
        elif m.groupdict().get("quoted") is not None:
            out.append(re.sub(r"\\(.)", r"\1", m["quoted"]))
        else:
            out.append(m["atom"])
    return "".join(out).strip()


def normal(text: str) -> str:
    return " ".join(text.split())


def python_reads(read: str, sent: str, raw_value: str) -> bool:
    """Python's display name is the name sent, or, past a cut between two encoded words,
    has a space more (CPython gh-128110, a bug: readers join them, as ``reader`` does)."""
    if normal(read) == normal(sent):
        return True
    cuts = len(re.findall(r"\?=\s+=\?", raw_value))
    return read.replace(" ", "") == sent.replace(" ", "") and len(read.split()) - len(sent.split()) <= cuts


def check_lines(raw: bytes, field: str) -> None:
    """No line past 998, no encoded word past 75; past 78 only a line holding one token
    that cannot fold."""
    for line in fields(raw)[field]:
        assert len(line) <= 998
        assert all(len(word) <= 75 for word in re.findall(rb"=\?utf-8\?[qb]\?[^?\s]*\?=", line))  # RFC 2047
        if len(line) > 78:
            rest = line.split(b": ", 1)[1] if line[:1] != b" " else line[1:]
            assert b" " not in rest and not rest.startswith(b"=?"), line[:100]


def check_to(raw: bytes, name: str, addr: str) -> None:
    check_lines(raw, "To")
    message = email.message_from_bytes(raw, policy=policy.default)
    to = message["To"]  # parsed anew at each message["To"]: slow for long values
    (address,) = to.addresses
    assert address.addr_spec == addr
    assert not message.defects and not to.defects
    unfolded = value(raw, "To")
    shown = re.fullmatch(r"(.*?)\s*<[^<>]*>", unfolded, re.S)
    assert reader(shown[1] if shown else "") == normal(name)
    assert python_reads(address.display_name, name, unfolded)


NAMES = [
    "Ada Lovelace",
    'Smith, "J" \\ Jr. (CEO) <boss@example.com>;',
    '"' * 300 + "\\" * 300,
    "Zoë Ünal 李伟",
    "Ana 🎉 Bó 👩‍👩‍👧",
    "=?utf-8?q?not_encoded?= really",
    "Reader " * 3000,  # long, with spaces
    "Ab " * 33334,  # the 100,000-character name a relay refused
    "x" * 500,  # no space: a line of its own, under 998
    "x" * 100_000,  # no space, too long for 998: encoded words
    "Zoë Ünal " * 2000,
    "李伟" * 5000,
    "日本 " * 3000,
]


@pytest.mark.parametrize("name", NAMES, ids=lambda n: f"{n[:12]}...{len(n)}")
def test_to_folds_and_round_trips(make, name: str) -> None:
    check_to(make().personalize(Recipient("reader@example.com", name)), name, "reader@example.com")


def test_a_short_ascii_name_stays_one_quoted_line(make) -> None:
    raw = make().personalize(Recipient("reader@example.com", "Ada  Lovelace"))
    assert fields(raw)["To"] == [b'To: "Ada Lovelace" <reader@example.com>']


def test_a_non_ascii_domain_is_written_in_idna(make) -> None:
    raw = make().personalize(Recipient("user@bücher.de", "Zoë"))
    assert fields(raw)["To"] == [b"To: =?utf-8?b?Wm/Dqw==?= <user@xn--bcher-kva.de>"]
    assert raw.split(b"\r\n\r\n", 1)[0].isascii()
    check_to(raw, "Zoë", "user@xn--bcher-kva.de")


@pytest.mark.parametrize("addr,written", [("josé@example.com", "josé@example.com"),
                                          ("josé@bücher.de", "josé@xn--bcher-kva.de")])
def test_a_non_ascii_local_part_is_raw_utf8_for_smtputf8(make, addr: str, written: str) -> None:
    raw = make().personalize(Recipient(addr, "José " * 40))
    check_lines(raw, "To")
    assert f"<{written}>".encode() in raw  # RFC 6532: UTF-8 as it is, no encoding
    message = email.message_from_string(raw.decode("utf-8"), policy=policy.SMTPUTF8)
    (address,) = message["To"].addresses
    assert (normal(address.display_name), address.addr_spec) == (normal("José " * 40), written)
    # Python's parser knows RFC 5322 only, where such a local part is a defect
    assert {type(d).__name__ for d in message["To"].defects} == {"NonASCIILocalPartDefect"}


def test_a_control_character_in_an_address_is_refused(make) -> None:
    with pytest.raises(ValueError):
        make().personalize(Recipient("a@example.com\r\nBcc: all@example.com"))


SUBJECTS = [
    "Weekly #33: short",
    "word " * 1000,
    "x" * 5000,  # no space, too long for 998: encoded words
    "x" * 500,  # no space: a line of its own, under 998
    "Zoë's café, naïve résumé — " * 200,
    "日本語のニュース" * 600,
    "a=?b?=c " * 20,
    "emoji 🎉👩‍👩‍👧 " * 300,
]


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda s: f"{s[:12]}...{len(s)}")
def test_subject_folds_and_round_trips(make, subject: str) -> None:
    raw = make(subject=subject, subject_prefix="[TEST] ").personalize(Recipient("a@example.com"))
    check_lines(raw, "Subject")
    message = email.message_from_bytes(raw, policy=policy.default)
    assert str(message["Subject"]) == normal("[TEST] " + subject)
    assert reader(value(raw, "Subject"), phrase=False) == normal("[TEST] " + subject)
    assert not message.defects and not message["Subject"].defects


@pytest.mark.parametrize("name", ["Akira " * 200, "Zoë Ünal " * 100, '"Quote" \\ ' * 50, "z" * 900])
def test_from_and_reply_to_fold_and_round_trip(make, name: str) -> None:
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    tpl = make(sender=f'"{quoted}" <news@example.com>', reply_to=f'"{quoted}" <akira@bücher.de>')
    raw = tpl.personalize(Recipient("a@example.com"))
    message = email.message_from_bytes(raw, policy=policy.default)
    for field, addr in (("From", "news@example.com"), ("Reply-To", "akira@xn--bcher-kva.de")):
        check_lines(raw, field)
        (address,) = message[field].addresses
        assert address.addr_spec == addr and not message[field].defects
        assert python_reads(address.display_name, name, value(raw, field))
        assert reader(re.fullmatch(r"(.*?)\s*<[^<>]*>", value(raw, field), re.S)[1]) == normal(name)


def test_list_unsubscribe_folds_between_whole_urls(make) -> None:
    # The longest address there is (254 characters) gives the longest token.
    addr = "a" * 64 + "@" + ".".join(["b" * 61] * 3) + ".com"
    url = "https://news.example.com/a/fairly/long/path/to/the/unsubscribe/page?list=weekly&token={token}"
    tpl = make(unsubscribe=Unsubscribe(url=url, mailto="unsubscribe@example.com"))
    raw = tpl.personalize(Recipient(addr))
    lines = fields(raw)["List-Unsubscribe"]
    assert len(lines) == 2 and all(len(line) <= 998 for line in lines)
    assert len(lines[1]) <= 78
    token = tpl.values(Recipient(addr))["token"]
    message = email.message_from_bytes(raw, policy=policy.default)
    assert re.findall(r"<([^<>]+)>", str(message["List-Unsubscribe"])) == [
        url.replace("{token}", token) + f"&issue={tpl.issue}", "mailto:unsubscribe@example.com?subject=unsubscribe"]
    assert not message.defects


def test_date_has_a_numeric_zone(make) -> None:
    raw = make().personalize(Recipient("a@example.com"))
    line = fields(raw)["Date"][0]
    assert line.endswith(b" +0000") and b"GMT" not in line
    assert email.message_from_bytes(raw, policy=policy.default)["Date"].datetime.utcoffset().total_seconds() == 0


def test_a_test_copy_gets_a_message_id_of_its_own(make) -> None:
    someone = Recipient("a@example.com")
    real = value(make().personalize(someone), "Message-ID")
    assert value(make().personalize(someone), "Message-ID") == real  # the same per issue and recipient
    test = make(subject_prefix="[TEST] ", test=True)
    first, second = (value(test.personalize(someone), "Message-ID") for _ in range(2))
    assert len({real, first, second}) == 3
    assert re.fullmatch(r"<[^<>@\s]+@example\.com>", first)


ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
    '"\\',
    "éèüößØÆçñåÿŁ",
    "".join(chr(c) for c in range(0x4E00, 0x4E80)),
    "😀🎉👍🚀\u200d👩",
    "     ",
]


def random_text(rng: random.Random) -> str:
    """Short mostly, sometimes up to 20,000 characters, from a random mix of alphabets
    (some mixes without spaces, for long words)."""
    pools = rng.sample(ALPHABETS, rng.randint(1, len(ALPHABETS)))
    chars, weights = [], []
    for pool in pools:
        weight = rng.random()
        chars += pool
        weights += [weight / len(pool)] * len(pool)
    return "".join(rng.choices(chars, weights, k=int(20_000 ** rng.random())))


def test_any_name_folds_and_round_trips(make) -> None:
    rng, tpl = random.Random(20240601), make()
    for _ in range(200):
        name = random_text(rng)
        check_to(tpl.personalize(Recipient("reader@example.com", name)), name, "reader@example.com")


def test_any_subject_folds_and_round_trips(make) -> None:
    rng = random.Random(20240602)
    for _ in range(200):
        subject = random_text(rng)
        raw = make(subject=subject).personalize(Recipient("a@example.com"))
        check_lines(raw, "Subject")
        parsed = email.message_from_bytes(raw, policy=policy.default)["Subject"]
        assert str(parsed) == reader(value(raw, "Subject"), phrase=False) == normal(subject)
        assert not parsed.defects
