"""One issue, many senders (PostgreSQL only): `newsletter send` processes run at once on
one issue, each claiming its batches; SIGKILLs in between mail nobody twice, and the
global `smtp.rate` holds for all of them together."""

from __future__ import annotations

import collections
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from support import SmtpRecorder, running, smtp_config

CONNECTIONS = 2
PEOPLE = 120


@pytest.fixture
def backend() -> str:
    """Every test here runs on PostgreSQL (skipped, saying why, where there is none)."""
    return "postgresql"


class TimedRecorder(SmtpRecorder):
    """An SmtpRecorder that also notes when each message's final dot came in."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.times.append(time.monotonic())
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def relay():
    yield from running(TimedRecorder())


def setup(ws, relay, people: int = PEOPLE, **smtp) -> list[str]:
    ws.configure(extra=smtp_config(relay.port, connections=CONNECTIONS, **smtp))
    ws.issue("033.yaml", number=33)
    everyone = [f"reader{n:03d}@example.com" for n in range(people)]
    (ws.root / "people.csv").write_text("email\n" + "".join(f"{a}\n" for a in everyone))
    assert ws.run("subscribers", "import", "people.csv").exit_code == 0
    return everyone


def start_send(ws) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "newsletter", "send", "--yes", "issues/033.yaml"],
                            cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ})


def sent_by(out: str) -> int:
    match = re.search(r"This run: (\d+) sent", out)
    assert match, out
    return int(match.group(1))


def received(relay) -> collections.Counter:
    return collections.Counter(rcpt for rcpt, _ in relay.messages)


def test_two_senders_share_one_issue_and_mail_everyone_once(ws, relay, secret) -> None:
    everyone = setup(ws, relay)
    relay.delay = 0.01
    first, second = start_send(ws), start_send(ws)
    outs = [p.communicate(timeout=60) for p in (first, second)]
    for p, (_, err) in zip((first, second), outs, strict=True):
        assert p.returncode == 0, err  # what the other still held is its to send, not left pending
    assert received(relay) == collections.Counter(everyone)
    shares = [sent_by(out) for out, _ in outs]
    assert sum(shares) == PEOPLE and min(shares) > 0, shares
    status = ws.run("status", "issues/033.yaml").stdout
    assert f"{PEOPLE} sent" in status and "0 pending" in status


def kill_after(relay, process: subprocess.Popen, more: int) -> None:
    """SIGKILL ``process`` once the server has taken ``more`` further messages."""
    target, deadline = len(relay.messages) + more, time.monotonic() + 30
    while len(relay.messages) < target and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_of_senders_mails_nobody_twice(ws, relay, secret, seed: int) -> None:
    everyone = setup(ws, relay, people=2 * PEOPLE)
    relay.delay = 0.01
    rng = random.Random(seed)
    # Round 1 kills both senders at random points (rows left claimed, some `sending`);
    # round 2 kills one while the other takes over the rest of what it held.
    first, second = start_send(ws), start_send(ws)
    kill_after(relay, first, rng.randint(1, 30))
    kill_after(relay, second, rng.randint(1, 40))
    victim, other = start_send(ws), start_send(ws)
    kill_after(relay, victim, rng.randint(1, 30))
    other.communicate(timeout=60)
    assert other.returncode == 0
    time.sleep(0.1)  # let the server finish what it was given
    before = received(relay)
    rerun = ws.run("send", "--yes", "issues/033.yaml")
    assert rerun.exit_code == 0, rerun.output
    counts = received(relay)
    assert max(counts.values()) == 1, [a for a, n in counts.items() if n > 1]
    assert counts == before  # the survivor had sent everything that was left
    status = ws.run("status", "issues/033.yaml").stdout
    unknowns = int(re.search(r"(\d+) unknown", status).group(1))
    assert unknowns <= 3 * CONNECTIONS  # three kills, each with at most its messages in flight
    assert len(counts) + unknowns >= len(everyone) and set(counts) <= set(everyone)
    assert f"{len(everyone) - unknowns} sent" in status and "0 pending" in status, status


def test_the_rate_is_shared_by_the_senders(ws, relay, secret) -> None:
    rate = 20
    everyone = setup(ws, relay, people=80, rate=rate)
    first, second = start_send(ws), start_send(ws)
    outs = [p.communicate(timeout=60) for p in (first, second)]
    assert received(relay) == collections.Counter(everyone)
    assert min(sent_by(out) for out, _ in outs) > 0  # both took part
    times = sorted(relay.times)
    combined = (len(times) - 1) / (times[-1] - times[0])
    assert combined <= rate * 1.1, combined  # two senders with a rate each would reach about 2x
    for n in range(len(times) - rate):  # no second holds more than its share (and a slot's jitter)
        assert times[n + rate] - times[n] >= 1.0 - 2.0 / rate
