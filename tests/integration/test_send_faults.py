"""A hostile relay: every fault a real one can throw at a send, each injected by an
aiosmtpd handler on 127.0.0.1. Nobody is mailed twice, nobody is lost, nothing stalls."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time

import pytest
from aiosmtpd.controller import Controller

from pg import BACKENDS
from support import SmtpRecorder, free_port, smtp_config

# The relay's faults on SQLite, with and without pipelining; PostgreSQL's journal under them, pipelined.
WAYS = [("sqlite", "pipelining"), ("sqlite", "one command at a time"), ("postgresql", "pipelining")]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "relay" in metafunc.fixturenames:
        metafunc.parametrize(("backend", "way"), WAYS, indirect=True, ids=[f"{b}-{w}" for b, w in WAYS])
    elif "ws" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


def people(ws, count: int, *extra: str) -> list[str]:
    addresses = [f"reader{n:03d}@example.com" for n in range(count)] + list(extra)
    (ws.root / "people.csv").write_text("email\n" + "".join(f"{a}\n" for a in addresses), "utf-8")
    assert ws.run("subscribers", "import", "people.csv").exit_code == 0
    return addresses


def received(smtp) -> collections.Counter:
    return collections.Counter(rcpt for rcpt, _ in smtp.messages)


def status(ws) -> str:
    return ws.run("status", "issues/033.yaml").stdout


@pytest.fixture
def way(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def relay(ws, smtp, secret, way):
    smtp.pipelining = way == "pipelining"
    ws.configure(extra=smtp_config(smtp.port, connections=2, timeout=1))
    ws.issue("033.yaml", number=33)
    return ws


@pytest.mark.parametrize("fault", ["keep-drop", "keep-hang"])
def test_no_reply_after_the_final_dot_is_unknown_and_never_resent(relay, smtp, fault) -> None:
    everyone = people(relay, 12)
    smtp.misbehave("reader003@example.com", fault)
    result = relay.run("send", "--yes", "issues/033.yaml")
    assert "reader003@example.com  no reply after the message was handed over" in result.stdout
    assert "This run: 11 sent, 0 failed, 1 unknown." in result.stdout
    again = relay.run("send", "--yes", "issues/033.yaml")
    assert "This run: 0 sent" in again.stdout
    assert received(smtp) == collections.Counter(everyone)  # the relay kept it: once, never twice
    assert "1 unknown" in status(relay)
    retried = relay.run("send", "--yes", "issues/033.yaml", "--retry-unknown")
    assert "This run: 1 sent" in retried.stdout and received(smtp)["reader003@example.com"] == 2


def test_failures_before_the_dot_are_retried(relay, smtp) -> None:
    everyone = people(relay, 8)
    smtp.misbehave_at_rcpt("reader001@example.com", "drop")
    smtp.misbehave_at_rcpt("reader002@example.com", "451 4.7.1 Greylisted, try again")
    smtp.misbehave("reader004@example.com", "452 4.3.1 Insufficient storage")
    result = relay.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 0, result.output
    assert received(smtp) == collections.Counter(everyone)


def test_a_temporary_failure_does_not_hold_up_its_connection(relay, smtp) -> None:
    relay.configure(extra=smtp_config(smtp.port, connections=1, backoff=1.0, timeout=5))
    everyone = people(relay, 30)
    smtp.misbehave_at_rcpt("reader000@example.com", "451 4.7.1 Greylisted, try again")
    result = relay.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 0, result.output
    order = [rcpt for rcpt, _ in smtp.messages]
    # One connection: the 29 others went while the first waited for its retry.
    assert order[-1] == "reader000@example.com" and sorted(order) == everyone


def test_non_ascii_addresses_go_over_smtputf8_or_fail_alone(ws, secret) -> None:
    for smtputf8 in (True, False):
        recorder = SmtpRecorder()
        controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=smtputf8)
        controller.start()
        try:
            ws.configure(extra=smtp_config(controller.port) + f"subscribers: {ws.new_store(f'store-{smtputf8}.db')}\n")
            ws.issue("033.yaml", number=33)
            people(ws, 46, "josé@example.com", "user@bücher.de", "ünï@example.org", "ok@bücher.de")
            result = ws.run("send", "--yes", "issues/033.yaml")
            got = received(recorder)
            assert "user@xn--bcher-kva.de" in got and "ok@xn--bcher-kva.de" in got  # IDNA, no SMTPUTF8 needed
            if smtputf8:
                assert result.exit_code == 0, result.output
                assert got["josé@example.com"] == 1 and got["ünï@example.org"] == 1 and len(got) == 50
                assert ["SMTPUTF8", "BODY=8BITMIME"] in recorder.mail_options
            else:
                assert result.exit_code == 3, result.output
                assert len(got) == 48
                assert ("josé@example.com  the address is not ASCII and the relay does not offer SMTPUTF8"
                        in result.stdout)
                assert "48 sent, 2 failed, 0 unknown, 0 pending" in result.stdout
        finally:
            controller.stop()


def test_a_relay_refusing_every_message_stops_the_run_and_retry_failed_resends(relay, smtp) -> None:
    everyone = people(relay, 40)
    smtp.every_data = "554 5.7.1 Message rejected: sender not authorized"
    result = relay.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 1
    assert "the relay refused 10 messages in a row with the same reply (554 5.7.1" in result.stderr
    assert "Traceback" not in result.stderr
    counts = status(relay)
    failed = int(counts.split(" failed")[0].split()[-1])
    assert 10 <= failed <= 11 and "0 sent" in counts  # at most the other connection's one in flight
    smtp.every_data = None
    again = relay.run("send", "--yes", "issues/033.yaml", "--retry-failed")
    assert again.exit_code == 0, again.output
    assert received(smtp) == collections.Counter(everyone)


def test_relaying_denied_stops_at_once(relay, smtp) -> None:
    people(relay, 20)
    for n in range(20):
        smtp.misbehave_at_rcpt(f"reader{n:03d}@example.com", "554 5.7.1 <x>: Relay access denied")
    result = relay.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 1 and "the relay refuses to pass our mail on" in result.stderr
    assert "18 pending" in status(relay) or "19 pending" in status(relay)


def test_a_bad_address_does_not_stop_the_send(relay, smtp) -> None:
    people(relay, 20)
    smtp.misbehave_at_rcpt("reader005@example.com", "550 5.1.1 No such user")
    result = relay.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 3
    assert "19 sent, 1 failed" in result.stdout
    assert relay.store().get("reader005@example.com").status == "bounced"
    retried = relay.run("send", "--yes", "issues/033.yaml", "--retry-failed")
    assert "This run: 0 sent" in retried.stdout  # a bad address is not retried


def test_readers_who_unsubscribe_during_the_send_are_settled_as_skipped(relay, smtp) -> None:
    relay.configure(extra=smtp_config(smtp.port, connections=1, timeout=5))
    everyone = people(relay, 30)
    smtp.delay = 0.03
    process = subprocess.Popen([sys.executable, "-m", "newsletter", "send", "--yes", "issues/033.yaml"],
                               cwd=relay.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ})
    deadline = time.monotonic() + 20
    while len(smtp.messages) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    leaving = everyone[15:25]
    for address in leaving:
        assert relay.run("subscribers", "remove", address).exit_code == 0
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert not set(leaving) & set(received(smtp))
    assert "20 sent, 0 failed, 0 unknown, 0 pending, 10 skipped" in out
    assert "0 pending" in status(relay) and "10 skipped" in status(relay)


def test_a_second_send_of_the_same_issue_says_who_is_sending(relay, smtp, backend) -> None:
    if backend == "postgresql":
        pytest.skip("PostgreSQL lets a second send share the issue (test_many_senders)")
    relay.configure(extra=smtp_config(smtp.port, connections=1, timeout=5))
    people(relay, 30)
    smtp.delay = 0.05
    first = subprocess.Popen([sys.executable, "-m", "newsletter", "send", "--yes", "issues/033.yaml"],
                             cwd=relay.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ})
    deadline = time.monotonic() + 20
    while not smtp.messages:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    second = relay.run("send", "--yes", "issues/033.yaml")
    assert second.exit_code == 1
    assert f"issue 33 is being sent already, by process {first.pid} on " in second.stderr
    assert f"Being sent now by process {first.pid} on " in status(relay)
    first.communicate(timeout=30)
    assert first.returncode == 0
    assert max(received(smtp).values()) == 1 and len(received(smtp)) == 30


def test_a_send_killed_leaves_no_lock_behind(relay, smtp) -> None:
    import signal

    people(relay, 30)
    smtp.delay = 0.05
    first = subprocess.Popen([sys.executable, "-m", "newsletter", "send", "--yes", "issues/033.yaml"],
                             cwd=relay.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    deadline = time.monotonic() + 20
    while not smtp.messages:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait()
    smtp.delay = 0
    rerun = relay.run("send", "--yes", "issues/033.yaml")
    assert rerun.exit_code == 0, rerun.output
    assert max(received(smtp).values()) == 1


def test_the_relay_is_greeted_with_the_senders_domain_or_smtp_helo(relay, smtp) -> None:
    people(relay, 2)
    relay.run("send", "--yes", "issues/033.yaml")
    assert smtp.helo == {"example.com"}
    relay.configure(extra=smtp_config(smtp.port, helo="mail.example.org"))
    smtp.helo.clear()
    relay.run("send", "--yes", "issues/033.yaml", "--test", "me@example.org")
    assert smtp.helo == {"mail.example.org"}


def test_no_terminal_and_no_yes_refuses_and_sends_nothing(relay, smtp) -> None:
    people(relay, 3)
    result = relay.run("send", "issues/033.yaml")
    assert result.exit_code == 2
    assert "not sending issue 33 to 3 subscriber(s) without a question" in result.stderr
    assert "pass --yes" in result.stderr and smtp.messages == []
    assert "3 pending" not in status(relay)  # nothing was written either


def test_on_a_terminal_send_asks_first(relay, smtp) -> None:
    import pty
    import select

    people(relay, 3)
    for answer, sent in ((b"n\n", 0), (b"y\n", 3)):
        master, slave = pty.openpty()
        process = subprocess.Popen([sys.executable, "-m", "newsletter", "send", "issues/033.yaml"], cwd=relay.root,
                                   stdin=slave, stdout=subprocess.PIPE, stderr=slave, env={**os.environ})
        os.close(slave)
        shown, deadline = b"", time.monotonic() + 20
        while b"[y/N]" not in shown and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                shown += os.read(master, 1024)
        assert b"Send issue 33 to 3 subscriber(s)? [y/N]" in shown
        os.write(master, answer)
        process.communicate(timeout=30)
        os.close(master)
        assert len(smtp.messages) == sent
        assert process.returncode == (0 if sent else 1)


def test_journal_prune_keeps_the_totals_and_the_promise(relay, smtp) -> None:
    people(relay, 10)
    smtp.misbehave_at_rcpt("reader004@example.com", "550 5.1.1 No such user")
    relay.run("send", "--yes", "issues/033.yaml", "--limit", "5")
    refused = relay.run("journal", "prune", "issues/033.yaml")
    assert refused.exit_code == 1 and "still has 5 recipient(s) to send to" in refused.stderr
    relay.run("send", "--yes", "issues/033.yaml")
    before = status(relay)
    pruned = relay.run("journal", "prune", "issues/033.yaml")
    assert pruned.exit_code == 0 and "dropped 9 row(s)" in pruned.stdout
    assert status(relay) == before  # "9 sent, 1 failed", and the failed row with its reason
    assert relay.store().db.execute("SELECT count(*) FROM deliveries WHERE issue = 33").fetchone() == (1,)
    assert "This run: 0 sent" in relay.run("send", "--yes", "issues/033.yaml").stdout
    again = relay.run("send", "--yes", "issues/033.yaml", "--include-new")
    assert again.exit_code == 1 and "was pruned" in again.stderr
    assert len(smtp.messages) == 9
