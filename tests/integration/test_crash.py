"""A send killed with SIGKILL at any moment, then rerun: nobody is mailed twice, the few
messages whose fate is unknown are reported by address and resent only when asked."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

import pytest

from support import smtp_config

pytestmark = pytest.mark.backends

CONNECTIONS = 3
PEOPLE = 40


@pytest.fixture
def crashable(ws, smtp, secret):
    ws.configure(extra=smtp_config(smtp.port, connections=CONNECTIONS))
    ws.issue("033.yaml", number=33)
    rows = "".join(f"reader{n:02d}@example.com,Reader {n}\n" for n in range(PEOPLE))
    (ws.root / "people.csv").write_text("email,name\n" + rows)
    ws.run("subscribers", "import", "people.csv")
    smtp.delay = 0.02  # the server takes a moment per message, so a kill lands mid-send
    return ws


def start_send(ws, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "newsletter", "send", "--yes", "issues/033.yaml", *args],
                            cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ})


def received(smtp) -> collections.Counter:
    return collections.Counter(rcpt for rcpt, _ in smtp.messages)


@pytest.mark.parametrize("kill_after", [0, 7, 25])
def test_sigkill_then_rerun_mails_nobody_twice(crashable, smtp, kill_after: int) -> None:
    process = start_send(crashable)
    deadline = time.monotonic() + 30
    # 0: inside the very first SMTP transactions, before the server accepted any
    while (smtp.started if kill_after == 0 else len(smtp.messages)) < max(kill_after, 1):
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(0.1)  # let the server finish what it was given
    before = received(smtp)

    rerun = crashable.run("send", "--yes", "issues/033.yaml")
    assert rerun.exit_code == 0, rerun.output
    counts = received(smtp)
    assert max(counts.values()) == 1, [a for a, n in counts.items() if n > 1]
    unknown = [line.split()[0] for line in rerun.stdout.splitlines() if line.startswith("  reader")]
    assert len(unknown) <= CONNECTIONS
    everyone = {f"reader{n:02d}@example.com" for n in range(PEOPLE)}
    assert set(counts) | set(unknown) == everyone
    for address in unknown:
        assert counts[address] == before[address]  # not resent by the rerun
    status = crashable.run("status", "issues/033.yaml").stdout
    assert f"{len(unknown)} unknown" in status
    assert f"{PEOPLE - len(unknown)} sent" in status

    if unknown:
        retried = crashable.run("send", "--yes", "issues/033.yaml", "--retry-unknown")
        assert retried.exit_code == 0
        assert set(received(smtp)) == everyone
        assert "0 unknown" in crashable.run("status", "issues/033.yaml").stdout


def test_ctrl_c_stops_after_the_messages_in_flight_and_a_rerun_finishes(crashable, smtp) -> None:
    process = start_send(crashable)
    deadline = time.monotonic() + 30
    while len(smtp.messages) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "Stopped by Ctrl-C after the messages in flight." in err and "Traceback" not in err
    assert "Run the same command again to send the rest." in out
    assert "0 unknown" in out  # nothing was left half-done
    rerun = crashable.run("send", "--yes", "issues/033.yaml")
    assert rerun.exit_code == 0
    counts = received(smtp)
    assert len(counts) == PEOPLE and max(counts.values()) == 1


def test_ten_random_kills_mail_nobody_twice_and_every_unknown_was_handed_over(ws, smtp, secret) -> None:
    import random

    ws.configure(extra=smtp_config(smtp.port, connections=CONNECTIONS))
    ws.issue("033.yaml", number=33)
    everyone = [f"reader{n:03d}@example.com" for n in range(300)]
    (ws.root / "people.csv").write_text("email\n" + "".join(f"{a}\n" for a in everyone))
    ws.run("subscribers", "import", "people.csv")
    smtp.delay = 0.005
    rng = random.Random(8)
    for _ in range(10):
        process = start_send(ws)
        goal = len(smtp.messages) + rng.randint(1, 25)
        deadline = time.monotonic() + 30
        while len(smtp.messages) < goal and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(rng.uniform(0, 0.003))
        process.send_signal(signal.SIGKILL)
        process.wait()
    time.sleep(0.1)
    rerun = ws.run("send", "--yes", "issues/033.yaml")
    assert rerun.exit_code == 0, rerun.output
    counts = received(smtp)
    assert max(counts.values()) == 1, [a for a, n in counts.items() if n > 1]
    unknown = [line.split()[0] for line in ws.run("status", "issues/033.yaml").stdout.splitlines()
               if line.startswith("  reader")]
    # "Unknown" means handed over. Not always: a kill can land between the commit that
    # marks a row `sending` and the write of its message, a window of a thread switch
    # (the relay's 5 ms reply is the window of the handed ones). Before the fix, 24 of 32.
    never_handed = [a for a in unknown if not counts[a]]
    assert len(unknown) >= 10 and len(never_handed) <= 3, (len(unknown), never_handed)
    assert set(counts) | set(unknown) == set(everyone)
