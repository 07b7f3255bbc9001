"""`newsletter subscribers` on big files: import and list stream, so their memory stays
flat as the list grows (each measured as a fresh process), and what a big file holds is
still reported line by line. bench/bench_subscribers.py measures a million rows."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.mailing.store import Store

from support import TinyDisk

SMALL, BIG = 50_000, 200_000


def write_people(path: Path, rows: int) -> Path:
    """``rows`` distinct addresses in scattered order, as real lists come."""
    with path.open("w", encoding="utf-8") as f:
        f.write("email,name,company\n")
        for i in range(rows):
            n = i * 7919 % rows
            f.write(f"reader{n:07d}@example{n % 50}.com,Reader Ünal {n},Company {n % 97}\n")
    return path


# Run by a small fresh Python: a child's peak RSS counts from the RSS of whoever forked
# it (Linux copies it at exec), and the test process is bigger than `subscribers list`.
MEASURE = """
import resource, subprocess, sys
with open(sys.argv[1], "wb") as out:
    done = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.PIPE)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode, done.stderr.decode())
"""


def peak_mb(ws, *args: str, out: Path | None = None) -> float:
    """Peak RSS of `newsletter ARGS` run as a fresh process."""
    command = [sys.executable, "-m", "newsletter", "--config", str(ws.root / "newsletter.yaml"), *args]
    measured = subprocess.run([sys.executable, "-c", MEASURE, str(out or os.devnull), *command],
                              capture_output=True, text=True, check=True).stdout
    kilobytes, status, errors = measured.split(" ", 2)
    assert status == "0" and errors == "\n", errors
    return int(kilobytes) / 1024


def test_import_and_list_memory_stays_flat_as_the_list_grows(tmp_path, monkeypatch) -> None:
    from support import Workspace

    peaks = {}
    for rows in (SMALL, BIG):
        (tmp_path / str(rows)).mkdir()
        ws = Workspace(tmp_path / str(rows))
        people = write_people(ws.root / "people.csv", rows)
        monkeypatch.chdir(ws.root)
        peaks["import", rows] = peak_mb(ws, "subscribers", "import", str(people))
        for fmt in ("csv", "json"):
            listed = ws.root / f"list.{fmt}"
            peaks[fmt, rows] = peak_mb(ws, "subscribers", "list", "--format", fmt, out=listed)
            with listed.open("rb") as f:
                assert sum(1 for _ in f) == rows + (1 if fmt == "csv" else 2)
    report = ", ".join(f"{what} {rows}: {mb:.0f} MB" for (what, rows), mb in peaks.items())
    for what in ("import", "csv", "json"):
        # Holding rows would cost ~0.9 KB each: 135 MB more for the 150k more rows.
        assert peaks[what, BIG] < 75, report
        assert peaks[what, BIG] - peaks[what, SMALL] < 8, report


def test_a_repeat_far_down_a_big_file_names_its_first_line(ws) -> None:
    rows = [f"reader{n}@example.com,Reader {n}" for n in range(30_000)]
    rows[28_000] = "READER5@Example.com,Again"
    rows[29_000] = "not an address,X"
    (ws.root / "big.csv").write_text("email,name\n" + "\n".join(rows) + "\n", "utf-8")
    result = ws.run("subscribers", "import", "big.csv")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "big.csv:28002: READER5@example.com is already on line 7 (row skipped)",
        "big.csv:29002: 'not an address' is not a valid email address (An email address must have an @-sign.)"
        " (row skipped)",
    ]
    assert result.stdout == "big.csv: 29998 added; 2 row(s) skipped\n"
    store = Store(ws.settings.subscribers)
    assert store.count() == 29_998 and store.get("reader5@example.com").name == "Reader 5"
    first = [s.email for s in store.all()][:3]
    assert first == ["reader0@example.com", "reader1@example.com", "reader2@example.com"]  # the file's order


def test_strict_rejects_a_big_file_with_one_bad_row_at_the_end(ws) -> None:
    ws.run("subscribers", "add", "ada@example.com")
    rows = "".join(f"reader{n}@example.com,Reader {n}\n" for n in range(25_000))
    (ws.root / "big.csv").write_text("email,name\n" + rows + "broken,Row\n", "utf-8")
    result = ws.run("subscribers", "import", "big.csv", "--strict")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "big.csv: 1 bad row(s); nothing imported (--strict)"
    assert [s.email for s in Store(ws.settings.subscribers).all()] == ["ada@example.com"]
    (ws.root / "big.csv").write_text("email,name\n" + rows, "utf-8")
    assert ws.run("subscribers", "import", "big.csv", "--strict").stdout == "big.csv: 25000 added\n"
    listed = json.loads(ws.run("subscribers", "list", "--format", "json").stdout)
    assert len(listed) == 25_001 and listed[1]["email"] == "reader0@example.com"


def test_a_bad_byte_far_down_a_file_imports_nothing_and_gives_its_offset(ws) -> None:
    ws.run("subscribers", "add", "ada@example.com")
    head = "\ufeffemail,name\n" + "".join(f"reader{n}@example.com,Zoë {n}\n" for n in range(20_000))
    data = head.encode() + b"bad@example.com,Zo\xeb\n"  # latin-1, 600 KB in: past the reader's first chunks
    (ws.root / "big.csv").write_bytes(data)
    result = ws.run("subscribers", "import", "big.csv")
    assert result.exit_code == 1
    offset = len(head.encode()) - 3 + len("bad@example.com,Zo")  # counted after the BOM, as before
    assert result.stderr == f"big.csv: is not UTF-8 text (invalid byte at offset {offset}); save it as UTF-8\n"
    assert [s.email for s in Store(ws.settings.subscribers).all()] == ["ada@example.com"]


@pytest.mark.skipif(not TinyDisk.works(), reason="needs `unshare -rm` (user and mount namespaces)")
def test_a_really_full_disk_stops_an_import_cleanly(ws) -> None:
    """On a real, tiny tmpfs in a private mount namespace (no root needed)."""
    disk = TinyDisk(ws)
    store, tiny = disk.store, disk.tiny
    ws.configure(extra=f"subscribers: {store / 'subscribers.db'}\n")
    (ws.root / "first.csv").write_text("email,name\nada@example.com,Ada\nbob@example.com,Bob\n")
    assert ws.run("subscribers", "import", "first.csv").exit_code == 0
    ws.run("subscribers", "remove", "bob@example.com")
    size_kb = disk.checkpoint() + 256  # room to start, not to finish
    db = sqlite3.connect(store / "subscribers.db")
    before = (db.execute("SELECT * FROM subscribers ORDER BY email_key").fetchall(),
              db.execute("SELECT * FROM events ORDER BY id").fetchall())
    db.close()
    write_people(ws.root / "people.csv", 20_000)
    status, stdout, stderr = disk.run(size_kb, "subscribers", "import", "people.csv")
    assert (status, stdout) == (1, ""), stderr
    assert stderr == (f"{tiny / 'subscribers.db'}: the disk is full; nothing was imported (free some space and "
                      "run the same command again; the subscriber list is intact)\n")
    disk.bring_back()
    db = sqlite3.connect(store / "subscribers.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    after = (db.execute("SELECT * FROM subscribers ORDER BY email_key").fetchall(),
             db.execute("SELECT * FROM events ORDER BY id").fetchall())
    assert after == before
