"""`newsletter bounces --imap` against real IMAP servers on 127.0.0.1: pymap (pure Python, in
the test extras) serving a Maildir with STARTTLS and a certificate from a CA made here
(trusted through SSL_CERT_FILE), and without TLS behind a small implicit-TLS (imaps) front
end. Read-only, each message once, the password only from the environment, refusals clear."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import mailbox
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from newsletter.mailing.store import Store

from support import free_port, make_certificates, wait_for_port

pytest.importorskip("flufl.bounce")
pytest.importorskip("pymap", reason="pymap (an IMAP server in Python) comes with the test extras: make install")

INBOUND = Path(__file__).resolve().parent.parent / "data" / "inbound"
USER, PASSWORD = "bounces", "correct horse"
UTF8_USER, UTF8_PASSWORD = "postmaster", "Pässwort für Rücksendungen"  # IMAP LOGIN is ASCII only
MANY = 205  # messages in the folder Many: three rounds of FETCH
PEOPLE = ("ada@example.com", "bob@example.org", "erin@example.com", "gina@example.com", "hank@example.com",
          "ivan@example.net", "judy@example.org", "kate@example.com")
# The Bounces folder: 4 hard bounces (one named by its VERP address alone), a complaint,
# a success notice, and a delay notice with no Message-ID (known again by a hash of its bytes).
BOUNCES = ("postfix-real-hard.eml", "postfix-hard.eml", "exim-hard.eml", "verp-only.eml", "arf-complaint.eml",
           "postfix-real-delivered.eml")
SUMMARY = ("Read 7 message(s): 4 hard bounce(s), 1 soft, 1 complaint(s), 0 unsubscribe request(s), 1 other,"
           " 0 seen before.")


class Pymap:
    """pymap's maildir backend on 127.0.0.1, as a subprocess: STARTTLS with ``cert`` and
    ``key``, or no TLS at all without them. Its users live in files in ``base``."""

    def __init__(self, base: Path, cert: Path | None = None, key: Path | None = None):
        self.port = free_port()
        self.log = base / f"pymap-{self.port}.log"
        tls = ["--cert", str(cert), "--key", str(key)] if cert else ["--no-tls"]
        with self.log.open("wb") as log:  # FQDN: its greeting names the host without a DNS lookup
            self.process = subprocess.Popen(
                [sys.executable, "-c", "import sys; from pymap.main import main; sys.exit(main())",
                 "--host", "127.0.0.1", "--port", str(self.port), *tls, "maildir", str(base)],
                env={**os.environ, "FQDN": "localhost"}, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, timeout=20)
        except TimeoutError:
            self.stop()
            raise AssertionError(self.log.read_text(errors="replace")) from None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def add_user(base: Path, name: str, password: str) -> Path:
    """A pymap user whose mail is the Maildir ``base/name`` (created), hashed as pymap checks."""
    from pymap.config import IMAPConfig

    digest = IMAPConfig._get_hash_context(None).hash(password)  # pbkdf2, or passlib's when installed
    with (base / "pymap-etc-passwd").open("a") as users, (base / "pymap-etc-shadow").open("a") as shadow:
        users.write(f"{name}:x::::{name}:\n")
        shadow.write(f"{name}:{digest}\n")
    mailbox.Maildir(str(base / name), create=True)
    return base / name


class TlsFront:
    """imaps (TLS from the first byte) on its own port, relayed to a server without TLS:
    pymap has no implicit TLS of its own."""

    def __init__(self, backend: int, cert: Path, key: Path):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.backend = backend
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # Started on its own thread's loop: the browser tests keep a loop running in this one.
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, "127.0.0.1", 0, ssl=context), self.loop).result(timeout=10)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.backend)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def imap(tmp_path_factory):
    """Two servers on one Maildir for the module (every test only reads): with STARTTLS, and
    without TLS behind an imaps front end. Bounces is written as files, Rückläufer over IMAP."""
    base = tmp_path_factory.mktemp("imap")
    ca, cert, key = make_certificates(base)
    home = mailbox.Maildir(str(add_user(base, USER, PASSWORD)), create=False)
    add_user(base, UTF8_USER, UTF8_PASSWORD)
    many = home.add_folder("Many")
    reply = (INBOUND / "out-of-office.eml").read_bytes()
    for n in range(MANY):
        many.add(reply.replace(b"<ooo.1@example.com>", f"<ooo.{n}@example.com>".encode()))
    folder = home.add_folder("Bounces")
    for name in BOUNCES:
        folder.add((INBOUND / name).read_bytes())
    delayed = (INBOUND / "postfix-real-delayed.eml").read_bytes()
    folder.add(b"".join(line for line in delayed.splitlines(keepends=True) if not line.startswith(b"Message-Id:")))
    with contextlib.ExitStack() as running:  # each server stops, even if a later one fails to start
        server = Pymap(base, cert, key)
        running.callback(server.stop)
        server.ca, server.plain, server.maildir = ca, Pymap(base), base / USER / ".Bounces"
        running.callback(server.plain.stop)
        server.front = TlsFront(server.plain.port, cert, key)
        running.callback(server.front.stop)
        with imaplib.IMAP4("127.0.0.1", server.plain.port) as client:
            client.login(USER, PASSWORD)
            assert client.create('"R&APw-ckl&AOQ-ufer"')[0] == "OK"
            raw = (INBOUND / "postfix-real-virtual.eml").read_bytes()
            assert client.append('"R&APw-ckl&AOQ-ufer"', None, None, raw)[0] == "OK"
        yield server


@pytest.fixture
def readers(ws, secret, imap, monkeypatch):
    ws.configure(extra="bounces:\n  address: bounces@example.com\n  soft_limit: 2\n")
    for address in PEOPLE:
        assert ws.run("subscribers", "add", address).exit_code == 0
    monkeypatch.setenv("NEWSLETTER_IMAP_PASSWORD", PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", str(imap.ca))  # the CA made above, instead of the system's
    return ws


def statuses(ws) -> dict[str, str]:
    store = Store(ws.settings.subscribers)
    try:
        return {s.email: s.status for s in store.all()}
    finally:
        store.close()


def flags(folder: Path) -> list[str]:
    box = mailbox.Maildir(str(folder), create=False)
    return sorted(box.get_message(key).get_flags() for key in box.keys())


def test_bounces_over_imap_change_each_subscriber_once(readers, imap) -> None:
    url = f"imap://{USER}@127.0.0.1:{imap.port}/Bounces"
    before = flags(imap.maildir)
    result = readers.run("bounces", "--imap", url)
    assert result.exit_code == 0, result.output
    assert SUMMARY in result.output
    assert statuses(readers) == {
        "ada@example.com": "bounced", "bob@example.org": "bounced", "erin@example.com": "unsubscribed",
        "gina@example.com": "bounced", "hank@example.com": "subscribed", "ivan@example.net": "bounced",
        "judy@example.org": "subscribed", "kate@example.com": "subscribed"}
    assert "ivan@example.net: bounced (5.1.1)" in result.output  # a real Postfix DSN
    assert "gina@example.com: bounced (5.2.1)" in result.output  # named by its VERP address alone
    assert "judy@example.org: soft bounce 1 of 2" in result.output

    again = readers.run("bounces", "--imap", url)  # a rerun (cron) processes nothing twice
    assert again.exit_code == 0 and "7 seen before." in again.output and "No subscriber changed." in again.output
    # The same messages read from the disk are known as well, the one without a Message-ID too.
    on_disk = readers.run("bounces", "--maildir", str(imap.maildir))
    assert "7 seen before." in on_disk.output and "No subscriber changed." in on_disk.output
    assert statuses(readers)["judy@example.org"] == "subscribed"
    assert flags(imap.maildir) == before and "S" not in "".join(before)  # read-only: nothing marked seen


def test_imaps_with_implicit_tls(readers, imap) -> None:
    result = readers.run("bounces", "--imap", f"imaps://{USER}@127.0.0.1:{imap.front.port}/Bounces")
    assert result.exit_code == 0, result.output
    assert SUMMARY in result.output
    assert statuses(readers)["ivan@example.net"] == "bounced"


def test_a_mailbox_with_a_non_ascii_name(readers, imap) -> None:
    url = f"imap://{USER}@127.0.0.1:{imap.port}/R%C3%BCckl%C3%A4ufer"
    result = readers.run("bounces", "--imap", url)
    assert result.exit_code == 0, result.output
    assert "Read 1 message(s): 1 hard bounce(s)" in result.output
    assert statuses(readers)["kate@example.com"] == "bounced"


def test_a_large_mailbox_and_a_password_beyond_ascii(readers, imap, monkeypatch) -> None:
    result = readers.run("bounces", "--imap", f"imap://{USER}@127.0.0.1:{imap.port}/Many")
    assert result.exit_code == 0, result.output
    assert f"Read {MANY} message(s): 0 hard bounce(s), 0 soft, 0 complaint(s), 0 unsubscribe request(s)," \
           f" {MANY} other, 0 seen before." in result.output
    monkeypatch.setenv("NEWSLETTER_IMAP_PASSWORD", UTF8_PASSWORD)
    result = readers.run("bounces", "--imap", f"imap://{UTF8_USER}@127.0.0.1:{imap.port}/INBOX")
    assert result.exit_code == 0, result.output
    assert "Read 0 message(s)" in result.output


def test_a_wrong_password_is_one_clear_line(readers, imap) -> None:
    env = {**os.environ, "NEWSLETTER_IMAP_PASSWORD": "wrong horse"}
    done = subprocess.run([sys.executable, "-m", "newsletter", "--config", str(readers.root / "newsletter.yaml"),
                           "bounces", "--imap", f"imap://{USER}@127.0.0.1:{imap.port}/Bounces"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith(f"127.0.0.1:{imap.port}: IMAP login refused for {USER} (")
    assert done.stderr.rstrip().endswith("; check NEWSLETTER_IMAP_PASSWORD")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert "wrong horse" not in done.stderr + done.stdout and done.stdout == ""
    assert set(statuses(readers).values()) == {"subscribed"}


@pytest.mark.parametrize(("change", "message"), [
    ("no password", "no IMAP password: set NEWSLETTER_IMAP_PASSWORD"),  # the environment is the only place
    ("password in URL", "--imap: put the password in NEWSLETTER_IMAP_PASSWORD, not in the URL"),
    ("untrusted", "127.0.0.1:{port}: the IMAP server's certificate is not trusted ("),  # no password sent
    ("no mailbox", "127.0.0.1:{port}: no IMAP mailbox 'Nowhere' for bounces ("),
    ("closed port", "127.0.0.1:{port}: IMAP failed (Connection refused)"),
    ("no STARTTLS", "127.0.0.1:{port}: the IMAP server offers no STARTTLS, and the password is never sent in clear"
                    " (use imaps:// if it has implicit TLS)\n"),
])
def test_refusals_are_one_clear_line(readers, imap, monkeypatch, change, message) -> None:
    port, login, folder = imap.port, USER, "Bounces"
    if change == "no password":
        monkeypatch.delenv("NEWSLETTER_IMAP_PASSWORD")
    elif change == "password in URL":
        login = f"{USER}:correct%20horse"
    elif change == "untrusted":
        monkeypatch.delenv("SSL_CERT_FILE")  # the system's CAs only
    elif change == "no mailbox":
        folder = "Nowhere"
    else:
        port = free_port() if change == "closed port" else imap.plain.port
    result = readers.run("bounces", "--imap", f"imap://{login}@127.0.0.1:{port}/{folder}")
    assert result.exit_code == 1
    assert result.stderr.startswith(message.format(port=port)) and len(result.stderr.splitlines()) == 1
    assert set(statuses(readers).values()) == {"subscribed"}
