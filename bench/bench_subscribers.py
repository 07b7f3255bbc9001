"""Subscriber list benchmark at a million rows, each command a fresh process:

- `subscribers import`: wall time of the whole import (start-up included) in rows/s.
  Target: at least 25,000 rows/s.
- Peak memory (RSS) of that import, of `subscribers list` (csv) and of
  `subscribers list --format json`. Target: under 150 MB each.

The CSV is generated: addresses in scattered order (as real lists are, which is the
hard case for SQLite's indexes), a name with a non-ASCII letter, two more columns, and
one address in a hundred internationalized (checked by email-validator in full).

    .venv/bin/python bench/bench_subscribers.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NEWSLETTER = Path(sys.executable).parent / "newsletter"
RATE_TARGET = 25_000
MEMORY_TARGET_MB = 150

CONFIG = """\
name: Bench Weekly
lang: en
from: "Editor <news@example.com>"
base_url: https://news.example.com
postal_address: 1 Example Street, Springfield
about: A benchmark.
unsubscribe:
  url: https://news.example.com/unsubscribe?token={token}
subscribers: subscribers.db
"""


def write_csv(path: Path, rows: int) -> None:
    """``rows`` distinct addresses; a prime stride scatters them over the key space."""
    stride = 7919 if rows % 7919 else 7907
    with path.open("w", encoding="utf-8") as f:
        f.write("email,name,company,city\n")
        for i in range(rows):
            n = i * stride % rows
            local = f"reader{n:07d}" if n % 100 else f"rëader{n:07d}"
            f.write(f"{local}@example{n % 50}.com,Reader Ünal {n},Company {n % 97},City {n % 13}\n")


# Run by a small fresh Python: a child's peak RSS counts from the RSS of whoever forked
# it (Linux copies it at exec), and this script is bigger than `subscribers list`.
MEASURE = """
import resource, subprocess, sys
with open(sys.argv[1], "wb") as out:
    done = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.PIPE)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode, done.stderr.decode())
"""


def run(config: Path, *args: str, out: Path | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS in MB of one fresh `newsletter` process."""
    start = time.perf_counter()
    measured = subprocess.run([sys.executable, "-c", MEASURE, str(out or os.devnull), str(NEWSLETTER),
                               "--config", str(config), *args], capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - start
    kilobytes, status, errors = measured.split(" ", 2)
    if status != "0":
        raise SystemExit(f"newsletter {' '.join(args)} failed: {errors}")
    return elapsed, int(kilobytes) / 1024


def lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = folder / "newsletter.yaml"
        config.write_text(CONFIG)
        people = folder / "people.csv"
        write_csv(people, args.rows)
        print(f"Subscribers, {args.rows:,} rows ({people.stat().st_size / 2**20:.0f} MB of CSV), fresh processes:")

        seconds, import_mb = run(config, "subscribers", "import", str(people))
        rate = args.rows / seconds
        verdict = "ok" if rate >= RATE_TARGET else "UNDER TARGET"
        print(f"  import: {seconds:.1f} s, {rate:,.0f} rows/s (target >= {RATE_TARGET:,}) {verdict}")
        failed |= rate < RATE_TARGET

        peaks = {"import": import_mb}
        for fmt, extra in (("csv", 1), ("json", 2)):  # the header line; the brackets
            listed = folder / f"list.{fmt}"
            seconds, peaks[f"list --format {fmt}"] = run(config, "subscribers", "list", "--format", fmt, out=listed)
            if lines(listed) != args.rows + extra:
                print(f"  list --format {fmt}: {lines(listed)} lines for {args.rows} subscribers: WRONG")
                failed = True
            print(f"  list --format {fmt}: {seconds:.1f} s, {listed.stat().st_size / 2**20:.0f} MB written")
        print("Peak memory (RSS):")
        for what, mb in peaks.items():
            verdict = "ok" if mb < MEMORY_TARGET_MB else "OVER TARGET"
            print(f"  {what}: {mb:.0f} MB (target < {MEMORY_TARGET_MB} MB) {verdict}")
            failed |= mb >= MEMORY_TARGET_MB
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
