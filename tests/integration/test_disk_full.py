"""A disk that fills up during a send: a clear message, exit 1, nothing half-written,
and a rerun with room finishes without mailing anyone twice. The store lives on a
real, tiny tmpfs, mounted in a private mount namespace (`unshare`) so no root is needed
and nothing outside the test sees it."""

from __future__ import annotations

import collections
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from support import smtp_config

SCRIPT = """
set -e
mount -t tmpfs -o size={size}k none "$TINY"
cp "$STORE"/subscribers.db "$TINY"/
set +e
"$PYTHON" -m newsletter --config "$CONFIG" send --yes issues/033.yaml > "$OUT"/stdout 2> "$OUT"/stderr
echo $? > "$OUT"/status
cp "$TINY"/subscribers.db* "$OUT"/
"""


def private_mounts_work() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not private_mounts_work(),
                                reason="needs `unshare -rm` (user and mount namespaces) for a tiny tmpfs")


def test_a_full_disk_stops_the_send_cleanly_and_a_rerun_finishes(ws, smtp, secret) -> None:
    readers = [f"reader{n:04d}@example.com" for n in range(600)]
    (ws.root / "people.csv").write_text("email\n" + "".join(f"{a}\n" for a in readers))
    store = ws.root / "store"
    store.mkdir()
    tiny, out = ws.root / "tiny", ws.root / "out"
    tiny.mkdir()
    out.mkdir()
    ws.configure(extra=smtp_config(smtp.port, connections=2) + f"subscribers: {store / 'subscribers.db'}\n")
    ws.issue("033.yaml", number=33)
    assert ws.run("subscribers", "import", "people.csv").exit_code == 0
    db = sqlite3.connect(store / "subscribers.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size_kb = (store / "subscribers.db").stat().st_size // 1024 + 300  # room for the audience, not the whole send
    config = ws.root / "tiny.yaml"
    config.write_text((ws.root / "newsletter.yaml").read_text().replace(str(store), str(tiny)))
    env = {**os.environ, "TINY": str(tiny), "STORE": str(store), "OUT": str(out), "CONFIG": str(config),
           "PYTHON": sys.executable}
    subprocess.run(["unshare", "-rm", "sh", "-c", SCRIPT.format(size=size_kb)], cwd=ws.root, env=env, check=True,
                   timeout=120)

    status, stderr = int((out / "status").read_text()), (out / "stderr").read_text()
    assert status == 1, (out / "stdout").read_text() + stderr
    assert "the disk is full" in stderr and "Traceback" not in stderr and "not a subscriber store" not in stderr
    assert "This run: " in (out / "stdout").read_text()  # what was done is reported
    received = collections.Counter(rcpt for rcpt, _ in smtp.messages)
    assert 0 < len(received) < len(readers)  # it stopped part-way
    for name in os.listdir(out):  # the store as the full disk left it, back on a disk with room
        if name.startswith("subscribers.db"):
            shutil.copy(out / name, store / name)
    rows = dict(sqlite3.connect(store / "subscribers.db").execute(
        "SELECT state, count(*) FROM deliveries WHERE issue = 33 GROUP BY state").fetchall())
    assert rows.get("sent", 0) + rows.get("sending", 0) + rows.get("unknown", 0) >= len(received) - 2
    rerun = ws.run("send", "--yes", "issues/033.yaml")
    assert rerun.exit_code == 0, rerun.output
    counts = collections.Counter(rcpt for rcpt, _ in smtp.messages)
    assert max(counts.values()) == 1
    unknown = [line.split()[0] for line in rerun.stdout.splitlines() if line.startswith("  reader")]
    assert set(counts) | set(unknown) == set(readers)
