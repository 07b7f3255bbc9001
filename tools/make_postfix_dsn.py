#!/usr/bin/env python3
"""Real Postfix DSNs for the bounce tests: a throwaway Postfix instance in a temp dir.

Run as root (Postfix's master must start as root), with Debian's `postfix` installed
(`make smtp-sink` installs it):

    .venv/bin/python tools/make_postfix_dsn.py   # rewrites tests/data/inbound/postfix-real-*.eml

The instance has its own main.cf, master.cf, queue and log under one temp dir; it listens
on a free 127.0.0.1 port only (never port 25), sends nothing off the machine (every other
domain goes to the `error` transport), uses neither the system's main.cf nor master.cf,
writes nothing outside its dir (not even /var/mail), and is stopped on the way out:

- example.net: local(8) delivery, where every reader is an unknown local user (hard bounce);
- example.com: virtual(8) mailboxes: ``bounces@`` (plus-addressed, so the VERP address
  ``bounces+<token>@`` lands there) and ``hank@``, Maildirs under ``mail/``;
- example.org: relayed to a closed 127.0.0.1 port, so it is deferred (a delay notice).

``tests/integration/test_bounces_postfix.py`` imports ``Postfix`` to bounce a live send.
"""

from __future__ import annotations

import email
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

POSTFIX = Path("/usr/sbin/postfix")
MAILBOXES = {"bounces@example.com": "bounces/", "hank@example.com": "hank/"}
MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = mx.example.net
mydomain = example.net
myorigin = $mydomain
mydestination = example.net
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP
biff = no
# Nothing leaves the machine: only the test domains are routed anywhere.
default_transport = error:5.7.1 this test instance sends no mail off the machine
relay_transport = $default_transport
smtp_dns_support_level = disabled
transport_maps = inline:{{ example.org=smtp:[127.0.0.1]:{closed} }}
relay_domains = example.org
# Accept unknown readers at RCPT, so the delivery agents bounce them with a real DSN.
local_recipient_maps =
smtpd_reject_unlisted_recipient = no
alias_maps =
alias_database =
# Should a reader be a real user after all, nothing runs and nothing reaches /var/mail.
forward_path =
allow_mail_to_commands =
allow_mail_to_files =
mail_spool_directory = {root}/spool/
recipient_delimiter = +
virtual_mailbox_domains = example.com
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = inline:{{ {mailboxes} }}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
# Fast retries and an early delay notice, so a deferred message yields a DSN in seconds.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = 1s
"""
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
showq     unix n - n - - showq
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
local     unix - n n - - local
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cannot_run() -> str | None:
    """Why a private Postfix cannot start here, or None when it can."""
    if not POSTFIX.exists():
        return f"{POSTFIX} is not installed (`make smtp-sink` installs Debian's postfix)"
    if os.geteuid() != 0:
        return "Postfix's master runs only as root"
    for user in ("postfix", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"no '{user}' user on this machine"
    return None


class Postfix:
    """A private Postfix on 127.0.0.1:``port``; a context manager that always stops it."""

    def __init__(self) -> None:
        # Its own dir: virtual(8) writes the Maildirs as `nobody`, who must be able to walk
        # the path (pytest's tmp_path is 0700, so is a TMPDIR under a home).
        temp = Path(tempfile.gettempdir())
        usable = all(folder.stat().st_mode & 0o001 for folder in (temp, *temp.parents))
        self.root = Path(tempfile.mkdtemp(prefix="newsletter-postfix-", dir=None if usable else "/tmp"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.started = False
        nobody = pwd.getpwnam("nobody")
        (self.root / "queue").mkdir()  # Postfix makes its subdirectories and data/ itself
        (self.root / "mail").mkdir()
        (self.root / "spool").mkdir(mode=0o1777)
        (self.root / "spool").chmod(0o1777)  # local(8) writes there as the recipient (mkdir obeys umask)
        os.chown(self.root / "mail", nobody.pw_uid, nobody.pw_gid)
        mailboxes = ", ".join(f"{a}={p}" for a, p in MAILBOXES.items())
        (self.root / "main.cf").write_text(MAIN_CF.format(
            root=self.root, closed=free_port(), mailboxes=mailboxes, uid=nobody.pw_uid, gid=nobody.pw_gid))
        (self.root / "master.cf").write_text(MASTER_CF.format(port=self.port))

    def _postfix(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(POSTFIX), "-c", str(self.root), *args], capture_output=True, text=True,
                              timeout=60)

    def start(self) -> None:
        done = self._postfix("start")
        if done.returncode != 0:
            raise RuntimeError(f"postfix start failed: {done.stderr.strip() or done.stdout.strip()}\n{self.log()}")
        self.started = True
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"postfix does not listen on 127.0.0.1:{self.port}\n{self.log()}")

    def stop(self) -> None:
        """Stop the master and its children, then remove the instance's files."""
        if self.started:
            try:
                pid = int((self.root / "queue" / "pid" / "master.pid").read_text().strip())
            except (OSError, ValueError):
                pid = None
            if self._postfix("stop").returncode != 0:
                self._postfix("abort")
            deadline = time.monotonic() + 10
            while pid and _running(pid) and time.monotonic() < deadline:  # `stop` returns before master exits
                time.sleep(0.05)
            if pid and _running(pid):  # its children end when the master does
                os.kill(pid, signal.SIGKILL)
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Postfix:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else "(no maillog)"

    def maildir(self, address: str = "bounces@example.com") -> Path:
        return self.root / "mail" / MAILBOXES[address]

    def wait_for_mail(self, count: int, address: str = "bounces@example.com", timeout: float = 30) -> list[bytes]:
        """The first ``count`` messages delivered to ``address``, in delivery order."""
        deadline = time.monotonic() + timeout
        while True:
            folder = self.maildir(address)
            files = sorted((folder / "new").glob("*"), key=lambda p: p.stat().st_mtime_ns) if folder.exists() else []
            if len(files) >= count:
                return [p.read_bytes() for p in files[:count]]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(files)} of {count} message(s) reached {address}\n{self.log()}")
            time.sleep(0.1)


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive (a zombie nobody reaped yet is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def newsletter_message(to: str, issue: int = 33) -> EmailMessage:
    """A message shaped like one of our sends (From, List-Id and our Message-ID form)."""
    import hashlib

    digest = hashlib.sha256(f"{issue}\0{to}".encode()).hexdigest()[:32]
    message = EmailMessage()
    message["From"] = "Editor <news@example.com>"
    message["To"] = to
    message["Subject"] = f"Test Weekly #{issue}: Test issue"
    message["Date"] = "Tue, 24 Nov 2026 07:29:59 +0000"
    message["Message-ID"] = f"<{issue}.{digest}@example.com>"
    message["List-Id"] = '"Test Weekly" <test-weekly.example.com>'
    message.set_content("This week's picks.\n")
    return message


def main() -> int:
    """Regenerate tests/data/inbound/postfix-real-*.eml."""
    import smtplib

    repo = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(repo))
    from newsletter.mailing.tokens import list_id, verp_token

    reason = cannot_run()
    if reason:
        print(f"cannot run Postfix here: {reason}", file=sys.stderr)
        return 1
    secret, list_key = b"test-secret-do-not-use", list_id("Test Weekly", "news@example.com")
    # fixture name -> (reader, RCPT options); the readers are tests/integration/test_bounces.py's
    cases = {"hard": ("ivan@example.net", ()), "virtual": ("kate@example.com", ()),
             "delayed": ("judy@example.org", ()), "delivered": ("hank@example.com", ("NOTIFY=SUCCESS",))}
    out = repo / "tests" / "data" / "inbound"
    with Postfix() as postfix:
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as client:
            for to, options in cases.values():
                sender = f"bounces+{verp_token(secret, list_key, to)}@example.com"
                client.sendmail(sender, [to], newsletter_message(to).as_bytes(), rcpt_options=list(options))
        got = postfix.wait_for_mail(len(cases))
    for name, (to, _) in cases.items():
        (raw,) = [r for r in got if f"Final-Recipient: rfc822; {to}".encode() in r]
        path = out / f"postfix-real-{name}.eml"
        path.write_bytes(raw)
        subject = email.message_from_bytes(raw)["Subject"]
        print(f"wrote {path.relative_to(repo)}: {to}, {subject}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
