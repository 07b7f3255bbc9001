"""A disk that fills up during a send: a clear message, exit 1, nothing half-written,
and a rerun with room finishes without mailing anyone twice. The store lives on a
real, tiny tmpfs, mounted in a private mount namespace (`unshare`) so no root is needed
and nothing outside the test sees it."""

from __future__ import annotations

import collections
import sqlite3

import pytest

from support import TinyDisk, smtp_config

pytestmark = pytest.mark.skipif(not TinyDisk.works(),
                                reason="needs `unshare -rm` (user and mount namespaces) for a tiny tmpfs")


def test_a_full_disk_stops_the_send_cleanly_and_a_rerun_finishes(ws, smtp, secret) -> None:
    readers = [f"reader{n:04d}@example.com" for n in range(600)]
    (ws.root / "people.csv").write_text("email\n" + "".join(f"{a}\n" for a in readers))
    disk = TinyDisk(ws)
    ws.configure(extra=smtp_config(smtp.port, connections=2) + f"subscribers: {disk.store / 'subscribers.db'}\n")
    ws.issue("033.yaml", number=33)
    assert ws.run("subscribers", "import", "people.csv").exit_code == 0
    size_kb = disk.checkpoint() + 300  # room for the audience, not the whole send
    status, stdout, stderr = disk.run(size_kb, "send", "--yes", "issues/033.yaml")
    assert status == 1, stdout + stderr
    assert "the disk is full" in stderr and "Traceback" not in stderr and "not a subscriber store" not in stderr
    assert "This run: " in stdout  # what was done is reported
    received = collections.Counter(rcpt for rcpt, _ in smtp.messages)
    assert 0 < len(received) < len(readers)  # it stopped part-way
    disk.bring_back()
    store = disk.store
    rows = dict(sqlite3.connect(store / "subscribers.db").execute(
        "SELECT state, count(*) FROM deliveries WHERE issue = 33 GROUP BY state").fetchall())
    assert rows.get("sent", 0) + rows.get("sending", 0) + rows.get("unknown", 0) >= len(received) - 2
    rerun = ws.run("send", "--yes", "issues/033.yaml")
    assert rerun.exit_code == 0, rerun.output
    counts = collections.Counter(rcpt for rcpt, _ in smtp.messages)
    assert max(counts.values()) == 1
    unknown = [line.split()[0] for line in rerun.stdout.splitlines() if line.startswith("  reader")]
    assert set(counts) | set(unknown) == set(readers)
