"""Several `newsletter serve` processes on one store, as web nodes on several hosts share
a PostgreSQL database (or, on one host, a SQLite file): the sign-up limits hold across
them, and each confirmation is mailed once, by one of them, through a real SMTP server."""

from __future__ import annotations

import collections
import threading
import time

import pytest

from newsletter.mailing.store import connect

from support import Web, free_port, smtp_config

pytestmark = pytest.mark.backends

HOURLY = 6  # confirmation mails an hour, in all
STRANGERS = 24  # signing up at once: many more than the cap leaves room for, so that they race


@pytest.fixture
def nodes(ws, smtp, secret):
    """Two serve processes on two ports, each in a folder of its own (its own site/, as on
    two hosts), with one store."""
    ws.configure(extra=smtp_config(smtp.port) + f"signup: {{per_client: 1000, hourly: {HOURLY}}}\n")
    ws.issue("001.yaml", number=1)
    other = ws.root / "node2"
    (other / "issues").mkdir(parents=True)
    config = (ws.root / "newsletter.yaml").read_text()
    if "subscribers:" not in config:  # a SQLite file: the same one, by its full path
        config += f"subscribers: {ws.settings.subscribers}\n"
    (other / "newsletter.yaml").write_text(config)
    servers = [Web(ws, free_port()), Web(ws, free_port(), cwd=other)]
    yield servers
    for server in servers:
        server.stop()


def sign_up(servers: list[Web], addresses: list[str]) -> list[int]:
    """Each address signed up at the same moment, at the nodes in turn: the statuses."""
    codes = [0] * len(addresses)
    ready = threading.Barrier(len(addresses))

    def one(n: int) -> None:
        ready.wait()
        codes[n] = servers[n % len(servers)].request("POST", "/subscribe", {"email": addresses[n]})[0]
    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(addresses))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def test_two_nodes_share_the_limits_and_mail_each_confirmation_once(nodes, ws, smtp) -> None:
    smtp.delay = 0.1  # a slow relay: one node's worker claims rows while the other's is delivering
    # One mailbox through both nodes at once: one mail, and the same answer for every request.
    assert sign_up(nodes, [f"victim+{n}@example.com" for n in range(8)]) == [200] * 8
    # Strangers at once: the hourly cap leaves room for five more, whichever node they ask.
    codes = sign_up(nodes, [f"reader{n:02d}@example.com" for n in range(STRANGERS)])
    assert sorted(codes) == [200] * (HOURLY - 1) + [503] * (STRANGERS - HOURLY + 1)
    deadline = time.monotonic() + 20
    while len(smtp.messages) < HOURLY:
        assert time.monotonic() < deadline, f"{len(smtp.messages)} of {HOURLY} mails"
        time.sleep(0.05)
    time.sleep(3)  # both workers look again (every second or so): nothing more goes out
    mailed = collections.Counter(rcpt for rcpt, _ in smtp.messages)
    assert len(mailed) == HOURLY and set(mailed.values()) == {1}, mailed
    assert sum(rcpt.startswith("victim+") for rcpt in mailed) == 1
    db = connect(ws.settings.subscribers)
    try:
        states = dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
        sent = db.execute("SELECT count(*) FROM events WHERE change = 'confirmation sent'").fetchone()[0]
    finally:
        db.close()
    assert states == {"sent": HOURLY, "limited": 7} and sent == HOURLY  # one consent record per mail
