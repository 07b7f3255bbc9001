"""Test helpers: a workspace in tmp_path that uses the repository's layouts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.ports import free_port, wait_for_port  # noqa: F401 (tests import it from here)

REPO = Path(__file__).resolve().parent.parent
LAYOUTS = REPO / "layouts"
SAMPLE_IMAGE = REPO / "issues" / "img" / "pass-tiles.png"
SHOTS = REPO / "build" / "screenshots"

CONFIG = """\
name: Test Weekly
lang: {lang}
from: "Editor <news@example.com>"
base_url: https://news.example.com
postal_address: 1 Example Street, Springfield
about: |
  Written by *the editor*. [Archive](https://news.example.com/)
unsubscribe:
  url: https://news.example.com/unsubscribe?token={{token}}
  mailto: unsubscribe@example.com
layouts: {layouts}
{extra}
{links}"""

# news.example.com has no server here: sends skip asking it for the email's images, unless
# a test configures `links:` itself (tests/integration/test_hosted.py serves them).
HOSTED_OFF = "links: {check_hosted: false}\n"

ITEM = """\
    - title: {title}
      url: {url}
      summary: |
        {summary}
"""


class Workspace:
    """A newsletter workspace on disk, with helpers to write issues and run the CLI.
    ``databases`` (tests/pg.py) makes PostgreSQL databases: the subscriber store is then
    the first it makes; without it, ``subscribers.db`` in the workspace."""

    def __init__(self, root: Path, databases: Callable[[], str] | None = None):
        self.root = root
        self.databases = databases
        self.database = databases() if databases else None  # the store's URL
        self.opened: list = []  # stores opened by ``store``, closed by ``close``
        self.issues = root / "issues"
        self.issues.mkdir()
        (self.issues / "img").mkdir()
        (self.issues / "img" / "figure.png").write_bytes(SAMPLE_IMAGE.read_bytes())
        self.configure()

    def configure(self, lang: str = "en", extra: str = "") -> None:
        if self.database and "subscribers:" not in extra:
            extra += f"subscribers: {self.database}\n"
        (self.root / "newsletter.yaml").write_text(
            CONFIG.format(lang=lang, layouts=LAYOUTS, extra=extra, links=HOSTED_OFF * ("links:" not in extra)),
            "utf-8",
        )

    @property
    def settings(self):
        return load_settings(self.root / "newsletter.yaml")

    def store(self, target: Path | str | None = None):
        """The store (default: the one newsletter.yaml names), open until the test ends."""
        from newsletter.mailing.store import Store

        store = Store(self.settings.subscribers if target is None else target)
        self.opened.append(store)
        return store

    def new_store(self, name: str) -> Path | str:
        """Somewhere for another store (a move between two): a file in the workspace, or
        a new PostgreSQL database."""
        return self.databases() if self.databases else self.root / name

    def close(self) -> None:
        for store in self.opened:
            store.close()

    def write(self, name: str, text: str) -> Path:
        path = self.issues / name
        path.write_text(textwrap.dedent(text), "utf-8")
        return path

    def issue(self, name: str = "001.yaml", number: int = 1, body: str | None = None, **top: str) -> Path:
        """Write a valid issue; ``body`` replaces the sections block, ``top`` adds keys."""
        head = f"number: {number}\ndate: 2021-10-10\ntitle: {top.pop('title', 'Test issue')}\n"
        head += "".join(f"{k}: {v}\n" for k, v in top.items())
        body = body or "sections:\n  featured:\n" + ITEM.format(
            title="First item", url="https://ml.test/first", summary="A summary."
        )
        return self.write(name, head + body)

    def run(self, *args: str):
        runner = CliRunner()
        return runner.invoke(main, ["--config", str(self.root / "newsletter.yaml"), *args],
                             catch_exceptions=False)


def items_block(section: str, count: int, summary: str = "A summary.") -> str:
    """A sections block with ``count`` items."""
    return "sections:\n  " + section + ":\n" + "".join(
        ITEM.format(title=f"Item number {i}", url=f"https://ml.test/{i}", summary=summary)
        for i in range(count)
    )


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under build/screenshots/ (a test artifact to look at)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class SmtpRecorder:
    """An aiosmtpd handler that keeps every message and can be told to misbehave per
    recipient, at RCPT or after the message's final dot: a list of actions used in turn,
    each a reply ("451 ...", "550 ..."), "drop" (close the connection without a reply),
    or, after the dot, "keep-drop" and "keep-hang" (take the message, then drop the
    connection or never answer)."""

    def __init__(self):
        import threading

        self.messages: list[tuple[str, bytes]] = []  # (recipient, raw message)
        self.script: dict[str, list[str]] = {}
        self.rcpt_script: dict[str, list[str]] = {}
        self.every_data: str | None = None  # a reply to every message's dot
        self.lock = threading.Lock()
        self.delay = 0.0
        self.started = 0  # DATA commands begun, accepted or not
        self.helo: set[str] = set()  # the names clients greeted with
        self.mail_options: list[list[str]] = []
        self.pipelining = True  # advertised, as most relays do (aiosmtpd reads commands in turn either way)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    def misbehave(self, recipient: str, *replies: str) -> None:
        self.script[recipient.lower()] = list(replies)

    def misbehave_at_rcpt(self, recipient: str, *replies: str) -> None:
        self.rcpt_script[recipient.lower()] = list(replies)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        self.mail_options.append(list(mail_options))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        self.helo.add(session.host_name)
        steps = self.rcpt_script.get(address.lower())
        action = steps.pop(0) if steps else None
        if action == "drop":
            server.transport.close()
            return "421 closing"
        if action:
            return action
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        import asyncio

        (rcpt,) = envelope.rcpt_tos  # one recipient per message, always
        self.started += 1
        steps = self.script.get(rcpt.lower())
        action = steps.pop(0) if steps else self.every_data
        if action == "drop":
            server.transport.close()
            return "421 closing"
        if action in ("keep-drop", "keep-hang"):
            with self.lock:
                self.messages.append((rcpt, envelope.original_content or envelope.content))
            if action == "keep-hang":
                await asyncio.sleep(3600)
            server.transport.close()
            return "421 closing"
        if action:
            return action
        with self.lock:  # the relay has the message once the dot is in, as a real one queues it
            self.messages.append((rcpt, envelope.original_content or envelope.content))
        if self.delay:  # a slow reply (if the client is killed meanwhile, aiosmtpd cancels this)
            await asyncio.sleep(self.delay)
        return "250 OK"

    def received(self):
        """Every message as an email.message.EmailMessage, with its envelope recipient."""
        import email
        from email import policy

        return [(rcpt, email.message_from_bytes(raw, policy=policy.default)) for rcpt, raw in self.messages]


def smtp_config(port: int, **extra) -> str:
    """An `smtp:` section for newsletter.yaml pointing at a test server."""
    settings = {"host": "127.0.0.1", "port": port, "security": "none", "connections": 2, "rate": 0,
                "retries": 3, "backoff": 0.01, **extra}
    return "smtp:\n" + "".join(f"  {k}: {v}\n" for k, v in settings.items())


class Web:
    """`newsletter serve` as a subprocess on ``port``, and plain HTTP requests to it; run in
    the workspace's folder, or in ``cwd`` (another host's copy of the workspace)."""

    def __init__(self, ws, port: int, *args: str, cwd: Path | None = None):
        self.ws, self.port = ws, port
        self.base = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([sys.executable, "-m", "newsletter", "serve", "--port", str(port), *args],
                                        cwd=cwd or ws.root, env={**os.environ}, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        try:
            wait_for_port(port, timeout=20)
        except TimeoutError:
            self.process.kill()
            raise AssertionError(self.process.communicate()[1]) from None

    def request(self, method: str, path: str, data: dict | None = None,
                headers: dict | None = None) -> tuple[int, str]:
        return self.exchange(method, path, data, headers)[::2]

    def exchange(self, method: str, path: str, data: dict | bytes | None = None,
                 headers: dict | None = None) -> tuple[int, dict, str]:
        """Status, headers (lower-cased names) and body of one request."""
        body = urllib.parse.urlencode(data).encode() if isinstance(data, dict) else data
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()

    def wait_for(self, path: str, text: str, seconds: float = 20) -> str:
        """Poll ``path`` until it answers 200 with ``text`` in it (serve keeps the archive
        current from a thread); returns the body."""
        import time

        deadline = time.monotonic() + seconds
        while True:
            code, body = self.request("GET", path)
            if code == 200 and text in body:
                return body
            assert time.monotonic() < deadline, f"{path}: {code}, no {text!r} after {seconds} s"
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class TinyDisk:
    """A workspace's store on a real, tiny tmpfs, in a private mount namespace (`unshare
    -rm`: no root needed, nobody else sees it). ``run`` copies the store onto it, runs
    one `newsletter` command there and copies the store back out as the full disk left it."""

    SCRIPT = """
set -e
mount -t tmpfs -o size={size}k none "$TINY"
cp "$STORE"/subscribers.db "$TINY"/
set +e
"$PYTHON" -m newsletter --config "$CONFIG" "$@" > "$OUT"/stdout 2> "$OUT"/stderr
echo $? > "$OUT"/status
cp "$TINY"/subscribers.db* "$OUT"/
"""

    def __init__(self, ws):
        self.ws = ws
        self.store, self.tiny, self.out = ws.root / "store", ws.root / "tiny", ws.root / "out"
        for folder in (self.store, self.tiny, self.out):
            folder.mkdir(exist_ok=True)

    @staticmethod
    def works() -> bool:
        import shutil

        if not shutil.which("unshare"):
            return False
        probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt"], capture_output=True)
        return probe.returncode == 0

    def checkpoint(self) -> int:
        """Fold the store's WAL into it; its size in KB."""
        import sqlite3

        db = sqlite3.connect(self.store / "subscribers.db")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        return (self.store / "subscribers.db").stat().st_size // 1024

    def run(self, size_kb: int, *args: str) -> tuple[int, str, str]:
        """Exit status, stdout and stderr of `newsletter ARGS` with the store on ``size_kb`` KB."""
        config = self.ws.root / "tiny.yaml"
        config.write_text((self.ws.root / "newsletter.yaml").read_text().replace(str(self.store), str(self.tiny)))
        env = {**os.environ, "TINY": str(self.tiny), "STORE": str(self.store), "OUT": str(self.out),
               "CONFIG": str(config), "PYTHON": sys.executable}
        subprocess.run(["unshare", "-rm", "sh", "-c", self.SCRIPT.format(size=size_kb), "sh", *args],
                       cwd=self.ws.root, env=env, check=True, timeout=120)
        return (int((self.out / "status").read_text()), (self.out / "stdout").read_text(),
                (self.out / "stderr").read_text())

    def bring_back(self) -> None:
        """Put the store as the full disk left it back in place, on a disk with room."""
        import shutil

        for path in self.out.glob("subscribers.db*"):
            shutil.copy(path, self.store / path.name)


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signs for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newsletter test CA")])
    usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False)

    def builder(subject: x509.Name, public_key) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))

    # The extensions Python 3.13's strict verification (VERIFY_X509_STRICT) requires.
    ca = (builder(ca_name, ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    for path, data in zip(paths, (ca.public_bytes(pem), cert.public_bytes(pem), key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())), strict=True):
        path.write_bytes(data)
    return paths


def running(recorder):
    """``recorder`` (an aiosmtpd handler) served on a free 127.0.0.1 port until the
    generator is closed: the body of an SMTP server fixture."""
    from aiosmtpd.controller import Controller

    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    recorder.port = controller.port
    yield recorder
    controller.stop()
