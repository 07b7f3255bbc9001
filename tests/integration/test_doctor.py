"""`newsletter doctor` against a tiny DNS server (dnspython's message API over UDP on
127.0.0.1), pointed at with NEWSLETTER_DNS."""

from __future__ import annotations

import socket
import threading

import pytest

from newsletter.mailing.dkim import load_key, public_record

from support import smtp_config

dns_message = pytest.importorskip("dns.message")


class TinyDns:
    """Answers TXT questions from ``records`` (name -> list of strings); NXDOMAIN otherwise."""

    def __init__(self):
        import dns.rcode
        import dns.rdatatype
        import dns.rrset

        self.records: dict[str, list[str]] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.running = True

        def serve():
            while self.running:
                try:
                    data, client = self.sock.recvfrom(4096)
                except OSError:
                    return
                query = dns_message.from_wire(data)
                response = dns_message.make_response(query)
                question = query.question[0]
                name = question.name.to_text().rstrip(".").lower()
                values = self.records.get(name)
                if values is None:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                elif question.rdtype == dns.rdatatype.TXT:
                    chunks = [" ".join(f'"{v[i:i + 255]}"' for i in range(0, len(v), 255)) for v in values]
                    response.answer.append(dns.rrset.from_text(question.name, 300, "IN", "TXT", *chunks))
                self.sock.sendto(response.to_wire(), client)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.running = False
        self.sock.close()


@pytest.fixture
def dns(monkeypatch):
    server = TinyDns()
    monkeypatch.setenv("NEWSLETTER_DNS", f"127.0.0.1:{server.port}")
    yield server
    server.stop()


def write_key(path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


DKIM = "dkim:\n  domain: example.com\n  selector: mail2026\n  key_file: dkim.pem\n"


def test_a_complete_setup_is_all_good(ws, dns) -> None:
    write_key(ws.root / "dkim.pem")
    ws.configure(extra=smtp_config(2525) + DKIM + "bounces:\n  address: bounces@example.com\n")
    dns.records = {
        "mail2026._domainkey.example.com": [public_record(load_key(ws.root / "dkim.pem"))],  # > 255: split
        "example.com": ["v=spf1 include:_spf.relay.example -all", "google-site-verification=abc"],
        "_dmarc.example.com": ["v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"],
    }
    result = ws.run("doctor")
    assert result.exit_code == 0, result.output
    assert "All good." in result.output
    for name in ("from", "postal_address", "one-click", "bounces", "dkim key", "dkim record", "spf", "dmarc"):
        assert f"ok    {name}:" in result.output, name


def test_each_problem_is_named_with_its_fix(ws, dns) -> None:
    write_key(ws.root / "dkim.pem")
    other = ws.root / "other.pem"
    write_key(other)
    ws.configure(extra=DKIM)
    dns.records = {"mail2026._domainkey.example.com": [public_record(load_key(other))],
                   "example.com": ["v=spf1 +all"]}
    result = ws.run("doctor")
    assert result.exit_code == 1
    out = result.output
    assert "FAIL  dkim record: mail2026._domainkey.example.com publishes another key than dkim.pem" in out
    assert 'fix: publish: mail2026._domainkey.example.com TXT "v=DKIM1; k=rsa; p=' in out
    assert "FAIL  spf: SPF for example.com allows anyone (+all)" in out
    assert "FAIL  dmarc: no DMARC record at _dmarc.example.com" in out
    assert 'fix: publish: _dmarc.example.com TXT "v=DMARC1; p=none' in out
    assert "warn  bounces:" in out


def test_missing_settings_and_records(ws, dns) -> None:
    ws.configure(extra="dkim:\n  domain: other.org\n  selector: s1\n  key_file: missing.pem\n")
    text = (ws.root / "newsletter.yaml").read_text()
    (ws.root / "newsletter.yaml").write_text(text.replace("postal_address: 1 Example Street, Springfield\n", "")
                                             .replace("https://news.example.com/unsubscribe", "http://x/u"))
    result = ws.run("doctor")
    assert result.exit_code == 1
    out = result.output
    assert "FAIL  postal_address: no postal address" in out
    assert "FAIL  one-click:" in out
    assert "FAIL  dkim key: dkim.key_file: cannot read" in out
    assert "FAIL  spf: no SPF record for example.com" in out


def test_a_misaligned_dkim_domain(ws, dns) -> None:
    write_key(ws.root / "dkim.pem")
    ws.configure(extra="dkim:\n  domain: relay.example\n  selector: mail2026\n  key_file: dkim.pem\n")
    result = ws.run("doctor")
    assert "FAIL  dkim alignment: d=relay.example is not the From domain example.com" in result.output
    assert "FAIL  dkim record: no TXT record at mail2026._domainkey.relay.example" in result.output
