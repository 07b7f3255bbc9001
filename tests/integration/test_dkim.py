"""DKIM: messages received by a real SMTP server verify with an independent verifier
(dkimpy), for RSA and Ed25519 keys, non-ASCII names and long headers; tampering fails.
The per-issue shortcuts (shared fields and body stretches canonicalized once) sign
exactly what the plain, whole-message path signs."""

from __future__ import annotations

import re

import pytest

from newsletter.authoring.check import check_issue
from newsletter.authoring.render import Renderer
from newsletter.mailing.dkim import Signer, load_key, public_record, relaxed_body, relaxed_fields, relaxed_header
from newsletter.mailing.personalize import MessageTemplate, Recipient

from support import smtp_config

dkim = pytest.importorskip("dkim")
pytest.importorskip("nacl")  # dkimpy verifies Ed25519 with PyNaCl

PEOPLE = """\
email,name,company
ada@example.com,Ada Lovelace,Analytical Engines
zoe@example.com,Zoë Ünal,
li.wei@example.cn,李伟,清华大学
long@example.org,"Maximiliane Friederike Auguste von Hohenzollern-Sigmaringen-Württemberg und Teck",
"""


def new_key(kind: str):
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    return (rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa"
            else ed25519.Ed25519PrivateKey.generate())


def write_key(path, kind: str) -> None:
    from cryptography.hazmat.primitives import serialization

    key = new_key(kind)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def dns_for(record: str, name: bytes = b"mail2026._domainkey.example.com."):
    def lookup(asked: bytes, timeout: int = 5) -> bytes | None:
        return record.encode() if asked.rstrip(b".") == name.rstrip(b".") else None
    return lookup


@pytest.fixture
def signed(ws, smtp, secret):
    def make(kind: str):
        write_key(ws.root / "dkim.pem", kind)
        ws.configure(extra=smtp_config(smtp.port) + "dkim:\n  domain: example.com\n  selector: mail2026\n"
                     "  key_file: dkim.pem\n")
        ws.issue("033.yaml", number=33, title='"Ünïcode and a very long subject line that goes on and on well past'
                 ' the seventy-eight characters a header line should keep to"')
        (ws.root / "people.csv").write_text(PEOPLE, "utf-8")
        assert ws.run("subscribers", "import", "people.csv").exit_code == 0
        return public_record(load_key(ws.root / "dkim.pem"))
    return make


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_every_message_received_verifies(signed, ws, smtp, kind) -> None:
    record = signed(kind)
    result = ws.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 0, result.output
    assert len(smtp.messages) == 4
    algorithm = b"a=rsa-sha256" if kind == "rsa" else b"a=ed25519-sha256"
    for _rcpt, raw in smtp.messages:
        assert raw.startswith(b"DKIM-Signature:") and algorithm in raw.split(b"\r\n\r\n")[0]
        assert dkim.verify(raw, dnsfunc=dns_for(record)), raw[:800]
        head = raw.split(b"\r\n\r\n")[0].decode()
        signed_fields = head.split("h=", 1)[1].split(";", 1)[0].replace("\r\n", "").split(":")
        assert {"from", "to", "subject", "date", "message-id", "mime-version", "content-type", "list-id",
                "list-unsubscribe", "list-unsubscribe-post"} <= set(signed_fields)
        assert signed_fields.count("from") == 2  # over-signed: a second From would break it
        assert max(len(line) for line in head.split("\r\n")) <= 998


def test_tampering_fails(signed, ws, smtp) -> None:
    record = signed("ed25519")
    assert ws.run("send", "--yes", "issues/033.yaml").exit_code == 0
    raw = dict(smtp.messages)["ada@example.com"]
    head, body = raw.split(b"\r\n\r\n", 1)
    assert dkim.verify(raw, dnsfunc=dns_for(record))
    assert not dkim.verify(head + b"\r\n\r\n" + body.replace(b"First item", b"Forged item", 1),
                           dnsfunc=dns_for(record))
    assert not dkim.verify(raw.replace(b"ada@example.com", b"eve@example.com"), dnsfunc=dns_for(record))
    assert not dkim.verify(raw.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b""),
                           dnsfunc=dns_for(record))
    other = public_record(__import__("cryptography.hazmat.primitives.asymmetric.ed25519",
                                     fromlist=["x"]).Ed25519PrivateKey.generate())
    assert not dkim.verify(raw, dnsfunc=dns_for(other))


def test_test_copies_and_dry_runs_are_signed(signed, ws, smtp, tmp_path) -> None:
    record = signed("rsa")
    assert ws.run("send", "--test", "me@example.com", "issues/033.yaml").exit_code == 0
    assert dkim.verify(smtp.messages[-1][1], dnsfunc=dns_for(record))
    result = ws.run("send", "--dry-run", str(tmp_path / "out"), "issues/033.yaml")
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "out").glob("*.eml"))
    assert len(files) == 4 and all(dkim.verify(f.read_bytes(), dnsfunc=dns_for(record)) for f in files)


@pytest.mark.parametrize("problem", ["missing", "garbage", "incomplete"])
def test_an_unusable_key_stops_the_send_before_anything_goes(ws, smtp, secret, problem) -> None:
    if problem == "garbage":
        (ws.root / "dkim.pem").write_text("not a key")
    dkim_config = ("dkim:\n  domain: example.com\n  key_file: dkim.pem\n" if problem == "incomplete" else
                   "dkim:\n  domain: example.com\n  selector: s\n  key_file: dkim.pem\n")
    ws.configure(extra=smtp_config(smtp.port) + dkim_config)
    ws.issue("033.yaml", number=33)
    assert ws.run("subscribers", "add", "ada@example.com").exit_code == 0
    result = ws.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code != 0 and smtp.messages == []
    assert "dkim" in result.output.lower()
    assert {"missing": "cannot read", "garbage": "not an unencrypted PEM", "incomplete": "'selector'"}[problem] \
        in result.output


def test_relaxed_canonicalization_follows_rfc_6376_examples() -> None:
    # RFC 6376 3.4.5: "A: X" / "B : Y\t\r\n\tZ  " -> "a:X" / "b:Y Z"
    assert relaxed_header(b"A", b" X") == b"a:X\r\n"
    assert relaxed_header(b"B ", b" Y\t\r\n\tZ  ") == b"b:Y Z\r\n"
    assert relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n") == b" C\r\nD E\r\n"
    assert relaxed_body(b"") == b"" and relaxed_body(b"\r\n\r\n") == b""
    assert relaxed_body(b"x  \t") == b"x\r\n"
    # The header block at once, as relaxed_header does it field by field.
    assert relaxed_fields(b"A: X\r\nB : Y\t\r\n\tZ  ") == [(b"a", b"a:X\r\n"), (b"b", b"b:Y Z\r\n")]


# Personal values at the start of a line (the text greeting), long enough to be folded
# or soft-broken, non-ASCII, with tabs and runs of spaces, empty.
NAMES = ["Ada", "Zoë Ünal 李伟", "  tab\there  and   runs ", "李伟" * 40, "x" * 300, "=3D .dot", ""]


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_the_templates_signature_is_the_whole_message_signature(ws, kind) -> None:
    rendered = Renderer(ws.settings).render(check_issue(ws.issue(), "en").issue)
    template = MessageTemplate(rendered, ws.settings, b"k", attach_images=False)
    key = new_key(kind)
    signer = Signer(key, "example.com", "mail2026")
    template.sign_with(signer)
    for name in NAMES:
        raw = template.personalize(Recipient(f"r{len(name)}@example.com", name, {}))
        assert dkim.verify(raw, dnsfunc=dns_for(public_record(key))), raw[:800]
        field_end = re.search(rb"\r\n(?![ \t])", raw).end()  # the DKIM-Signature field, folds included
        stamp = int(re.search(rb"t=(\d+);", raw[:field_end]).group(1))
        # Ed25519 and RSA PKCS#1 v1.5 are deterministic: the same bytes signed, the same field.
        assert signer.sign(raw[field_end:], now=stamp) == raw
