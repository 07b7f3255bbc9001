"""The subscriber store on PostgreSQL against SQLite, in the same run, each command a fresh process:

- `subscribers import` of N generated subscribers (bench_subscribers' CSV): rows/s, start-up
  included, and peak RSS. Target on PostgreSQL: at least 10,000 rows/s, under 150 MB.
- `newsletter send --yes` of an issue to a store of M subscribers, to Postfix's smtp-sink
  (4 connections, rate 0): with 1 process, and on PostgreSQL also with 2 processes at once
  on another issue (they share the work by claiming batches): msg/s of each (what it sent
  over its own wall time), their total, and the ratio of that total to 1 process. Target:
  every send ends with every reader sent once (`newsletter status`: 0 pending, 0 failed,
  0 unknown). No ratio target: on 2 cores the senders and the server compete for CPU.

The PostgreSQL server is a throwaway one started as the tests start theirs (tests/pg.py),
but with fsync, synchronous_commit and full_page_writes on, and its data on disk (a
temporary folder), not in /dev/shm.

    .venv/bin/python bench/bench_postgres.py [--n 1000000] [--send 100000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from bench_send import SINK, start_sink, workspace  # noqa: E402
from bench_subscribers import CONFIG, run, write_csv  # noqa: E402

from newsletter.ports import free_port  # noqa: E402

import pg  # noqa: E402

NEWSLETTER = Path(sys.executable).parent / "newsletter"
RATE_TARGET = 10_000
MEMORY_TARGET_MB = 150
SQLITE_STORE = "subscribers: subscribers.db\n"

# Durable, as a real server would be: the tests turn these off.
pg.SETTINGS = (pg.SETTINGS.replace("fsync = off", "fsync = on")
               .replace("synchronous_commit = off", "synchronous_commit = on")
               .replace("full_page_writes = off", "full_page_writes = on"))
pg.scratch = lambda: Path(tempfile.mkdtemp(prefix="newsletter-pg-bench-"))  # on disk, not /dev/shm


def write_ascii_csv(path: Path, rows: int) -> None:
    """The send's readers: ASCII addresses only (smtp-sink offers no SMTPUTF8)."""
    with path.open("w", encoding="utf-8") as f:
        f.write("email,name,company,city\n")
        f.writelines(f"reader{n:07d}@example{n % 50}.com,Reader Ünal {n},Company {n % 97},City {n % 13}\n"
                     for n in range(rows))


def newsletter(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(NEWSLETTER), "--config", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def sends(config: Path, issue: str, processes: int) -> list[float]:
    """Start ``processes`` senders of ``issue`` at once: the msg/s of each."""
    path = str(config.parent / "issues" / issue)
    start = time.perf_counter()
    running = [newsletter(config, "send", "--yes", path) for _ in range(processes)]
    rates = []
    for process in running:
        out, err = process.communicate()
        elapsed = time.perf_counter() - start
        if process.returncode:
            raise SystemExit(f"send {issue} failed ({process.returncode}): {out}{err}")
        sent = re.search(r"This run: (\d+) sent", out)
        if sent is None:
            raise SystemExit(f"send {issue}: no report in {out!r}")
        rates.append(int(sent.group(1)) / elapsed)
    return rates


def all_sent(config: Path, issue: str, count: int) -> bool:
    out = subprocess.run([str(NEWSLETTER), "--config", str(config), "status", str(config.parent / "issues" / issue)],
                         capture_output=True, text=True, check=True).stdout
    expected = f"0 pending, 0 sending, {count} sent, 0 failed, 0 unknown"
    if expected not in out.partition("\n")[0]:
        print(f"  status of {issue}: {out.splitlines()[0] if out else out!r}, expected {expected}: WRONG")
        return False
    return True


def bench(backend: str, folder: Path, people: Path, few: Path, store: dict[str, str], port: int,
          n: int, m: int) -> tuple[dict, bool]:
    """Import, then sends, on one backend; its row of figures and whether it missed a target."""
    failed = False
    row: dict = {"backend": backend}
    home = folder / backend
    home.mkdir()
    config = home / "newsletter.yaml"
    config.write_text(CONFIG.replace(SQLITE_STORE, store["import"]))
    seconds, row["rss"] = run(config, "subscribers", "import", str(people))
    row["import"] = n / seconds
    print(f"  {backend}: import {n:,} in {seconds:.1f} s, {row['import']:,.0f} rows/s, peak RSS {row['rss']:.0f} MB")

    config = workspace(home, port, "send", connections=4)
    config.write_text(config.read_text().replace(SQLITE_STORE, store["send"]))
    run(config, "subscribers", "import", str(few))  # setting up, not measured
    row["one"] = sends(config, "033.yaml", 1)[0]
    failed |= not all_sent(config, "033.yaml", m)
    print(f"  {backend}: send {m:,}, 1 process: {row['one']:,.0f} msg/s")
    if backend == "postgresql":
        row["two"] = sends(config, "034.yaml", 2)
        failed |= not all_sent(config, "034.yaml", m)
        print(f"  {backend}: send {m:,}, 2 processes: {', '.join(f'{r:,.0f}' for r in row['two'])} msg/s,"
              f" total {sum(row['two']):,.0f}")
    return row, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="subscribers imported")
    parser.add_argument("--send", type=int, default=100_000, help="subscribers of the store sent to")
    args = parser.parse_args()
    if not SINK.exists():
        print(f"{SINK} is missing: `make bench` installs Debian's postfix package (it is not started)")
        return 1
    os.environ.setdefault("NEWSLETTER_SECRET", "bench-secret")
    began = time.perf_counter()
    try:
        server = pg.start()
    except (pg.Unavailable, OSError, subprocess.SubprocessError) as e:
        print(f"No PostgreSQL server for the benchmark: {e}")
        return 1
    port = free_port()
    sink = start_sink(port)
    failed = False
    rows = []
    try:
        server.create_database("bench_import")
        server.create_database("bench_send")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            people, few = folder / "people.csv", folder / "few.csv"
            write_csv(people, args.n)
            write_ascii_csv(few, args.send)
            print(f"PostgreSQL {server.bindir.parent.name} (fsync on, data on disk) against SQLite: import of "
                  f"{args.n:,} subscribers, send of {args.send:,} to smtp-sink (4 connections), fresh processes:")
            for backend, store in (
                    ("sqlite", {"import": SQLITE_STORE, "send": SQLITE_STORE}),
                    ("postgresql", {what: f"subscribers: {server.url('bench_' + what)}\n"
                                    for what in ("import", "send")})):
                row, missed = bench(backend, folder, people, few, store, port, args.n, args.send)
                rows.append(row)
                failed |= missed
    finally:
        sink.terminate()
        sink.wait()
        server.stop()

    print(f"\n{'backend':<11} {'import rows/s':>13} {'peak RSS MB':>11} {'send 1 proc msg/s':>17} "
          f"{'send 2 procs msg/s (each; total)':>32} {'ratio 2:1':>9}")
    for row in rows:
        two = row.get("two")
        each = f"{' + '.join(f'{r:,.0f}' for r in two)}; {sum(two):,.0f}" if two else "-"
        ratio = f"{sum(two) / row['one']:.2f}" if two else "-"
        print(f"{row['backend']:<11} {row['import']:>13,.0f} {row['rss']:>11.0f} {row['one']:>17,.0f} "
              f"{each:>32} {ratio:>9}")
    postgres = rows[-1]
    for ok, what in ((postgres["import"] >= RATE_TARGET, f"PostgreSQL import >= {RATE_TARGET:,} rows/s"),
                     (postgres["rss"] < MEMORY_TARGET_MB, f"PostgreSQL import peak RSS < {MEMORY_TARGET_MB} MB"),
                     (not failed, "every send: every reader sent once (0 pending, 0 failed, 0 unknown)")):
        print(f"  {what}: {'ok' if ok else 'MISSED'}")
        failed |= not ok
    print(f"Whole benchmark: {time.perf_counter() - began:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
