"""Scheduled sends (`send --at`, `send --due`, `schedule`, and serve's scheduler), judged
by what a real SMTP server (aiosmtpd on 127.0.0.1) receives."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections import Counter

import pytest

from support import Web, free_port, smtp_config

pytestmark = pytest.mark.backends

PEOPLE = ("ada@example.com", "bob@example.com", "cy@example.com")


@pytest.fixture
def sending(ws, smtp, secret):
    """A workspace with three subscribers and issue 7, pointed at the test server."""
    ws.configure(extra=smtp_config(smtp.port))
    ws.issue("007.yaml", number=7)
    for address in PEOPLE:
        assert ws.run("subscribers", "add", address).exit_code == 0
    return ws


def at(seconds: float) -> tuple[str, float]:
    """An --at value ``seconds`` from now (in a +09:00 zone), and its unix time."""
    when = dt.datetime.now(dt.timezone(dt.timedelta(hours=9))) + dt.timedelta(seconds=seconds)
    return when.isoformat(), when.timestamp()


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()) + 0.05)


def received(smtp) -> Counter:
    with smtp.lock:
        return Counter(rcpt for rcpt, _ in smtp.messages)


def wait_for(smtp, count: int, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while sum(received(smtp).values()) < count and time.time() < deadline:
        time.sleep(0.1)


def test_schedule_list_reschedule_and_cancel(sending, smtp) -> None:
    text, due = at(3600)
    result = sending.run("send", "issues/007.yaml", "--at", text)
    assert result.exit_code == 0, result.output
    assert "Issue 7 is scheduled for" in result.output and "UTC" in result.output

    later, later_due = at(7200)
    assert sending.run("send", "issues/007.yaml", "--at", later).exit_code == 0  # replaces the time
    listed = sending.run("schedule")
    assert listed.exit_code == 0
    lines = [line for line in listed.output.splitlines() if line.startswith("Issue 7")]
    assert len(lines) == 1 and "scheduled" in lines[0]
    utc = dt.datetime.fromtimestamp(later_due, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert f"({utc} UTC)" in lines[0]
    assert "Scheduled for" in sending.run("status", "issues/007.yaml").output

    cancelled = sending.run("schedule", "--cancel", "issues/007.yaml")
    assert cancelled.exit_code == 0, cancelled.output
    assert "cancelled" in sending.run("schedule").output
    again = sending.run("schedule", "--cancel", "7")
    assert again.exit_code == 1 and "no scheduled send" in again.output
    assert smtp.messages == []


def test_at_in_the_past_or_without_timezone_is_refused(sending) -> None:
    past, _ = at(-60)
    result = sending.run("send", "issues/007.yaml", "--at", past)
    assert result.exit_code == 1 and "in the past" in result.output
    result = sending.run("send", "issues/007.yaml", "--at", "2099-12-01T09:00")
    assert result.exit_code == 1 and "no timezone" in result.output
    result = sending.run("send", "issues/007.yaml", "--at", "next tuesday")
    assert result.exit_code == 1 and "not a date and time" in result.output
    result = sending.run("send", "issues/007.yaml", "--at", at(60)[0], "--limit", "1")
    assert result.exit_code == 2
    assert sending.run("schedule").output.strip() == "No scheduled sends."


def test_a_broken_issue_or_setup_is_refused_when_scheduled(sending, monkeypatch) -> None:
    sending.write("008.yaml", "number: 8\ndate: 2021-10-10\n")  # no title, no sections
    result = sending.run("send", "issues/008.yaml", "--at", at(3600)[0])
    assert result.exit_code == 1, result.output
    monkeypatch.delenv("NEWSLETTER_SECRET")
    monkeypatch.setattr("newsletter.mailing.tokens._from_keyring", lambda name: None)
    result = sending.run("send", "issues/007.yaml", "--at", at(3600)[0])
    assert result.exit_code == 1 and "signing key" in result.output
    assert sending.run("schedule").output.strip() == "No scheduled sends."


def test_due_sends_nothing_before_the_time_and_each_once_after(sending, smtp) -> None:
    text, due = at(1.5)
    assert sending.run("send", "issues/007.yaml", "--at", text).exit_code == 0
    early = sending.run("send", "--due")
    assert early.exit_code == 0 and early.output == "" and smtp.messages == []

    wait_until(due)
    result = sending.run("send", "--due")
    assert result.exit_code == 0, result.output
    assert "Scheduled send of issue 7" in result.output and "This run: 3 sent, 0 failed." in result.output
    assert sending.run("send", "--due").output == ""  # fired once
    assert received(smtp) == Counter(PEOPLE)
    status = sending.run("status", "issues/007.yaml").output
    assert "3 sent" in status and "started" in status

    refused = sending.run("send", "issues/007.yaml", "--at", at(3600)[0])  # a started send cannot be scheduled
    assert refused.exit_code == 1 and "started already" in refused.output
    assert sending.run("schedule", "--cancel", "7").exit_code == 1


def test_a_cancelled_send_does_not_fire(sending, smtp) -> None:
    text, due = at(1)
    assert sending.run("send", "issues/007.yaml", "--at", text).exit_code == 0
    assert sending.run("schedule", "--cancel", "7").exit_code == 0
    wait_until(due)
    assert sending.run("send", "--due").output == ""
    assert smtp.messages == []


def test_two_due_processes_at_once_fire_it_once(sending, smtp) -> None:
    text, due = at(1.5)
    assert sending.run("send", "issues/007.yaml", "--at", text).exit_code == 0
    command = [sys.executable, "-m", "newsletter", "--config", str(sending.root / "newsletter.yaml"), "send", "--due"]
    wait_until(due)
    runs = [subprocess.Popen(command, cwd=sending.root, env={**os.environ}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sum("Scheduled send of issue 7" in out for out, _ in outputs) == 1, outputs
    assert received(smtp) == Counter(PEOPLE)


@pytest.mark.sqlite_only  # restarts: the claim they rely on runs on both in the test above and the one below
def test_serve_fires_a_schedule_once_across_restarts(sending, smtp) -> None:
    text, due = at(2)
    assert sending.run("send", "issues/007.yaml", "--at", text).exit_code == 0
    Web(sending, free_port()).stop()  # up and down before the time: the schedule stays in the store
    assert smtp.messages == []

    wait_until(due)
    server = Web(sending, free_port())  # a schedule that fell due while serve was down
    try:
        wait_for(smtp, len(PEOPLE))
    finally:
        server.stop()
    assert received(smtp) == Counter(PEOPLE)

    server = Web(sending, free_port())  # after a restart it does not fire again
    try:
        time.sleep(2.5)  # a little longer than serve's check interval (2 s at most)
    finally:
        server.stop()
    assert received(smtp) == Counter(PEOPLE)
    assert "3 sent" in sending.run("status", "issues/007.yaml").output


def test_serve_fires_a_schedule_that_falls_due_while_it_runs(sending, smtp) -> None:
    server = Web(sending, free_port())
    try:
        text, due = at(1.5)
        assert sending.run("send", "issues/007.yaml", "--at", text).exit_code == 0
        wait_until(due)
        wait_for(smtp, len(PEOPLE))
        assert sending.run("send", "--due").output == ""  # serve claimed it; cron finds nothing
    finally:
        server.stop()
    assert received(smtp) == Counter(PEOPLE)
