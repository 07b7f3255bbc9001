"""Archive benchmark: ``newsletter archive`` of 1,000 published issues (the first build,
then a rebuild with nothing changed) and ``newsletter serve`` from its start to the
first 200 of its index, with that archive in site/.

Each generated issue is the sample issue 033 with its own number, date and URLs (as in
bench_check), all published. Targets: the unchanged rebuild (in process, median of 3)
under 1 s, and serve's start to its first 200 (a fresh process, median of 3) under 1 s;
the first build and the unchanged rebuild as a fresh `newsletter archive` process are
reported for information.

    make bench            (or: .venv/bin/python bench/bench_archive.py [--count N])
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_check import workspace  # noqa: E402

from newsletter.config import load_settings  # noqa: E402
from newsletter.mailing.store import connect, now  # noqa: E402
from newsletter.ports import free_port  # noqa: E402
from newsletter.web.archive import build_archive  # noqa: E402

REBUILD_TARGET = 1.0
SERVE_TARGET = 1.0
NL = [sys.executable, "-m", "newsletter"]


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def first_200(folder: Path) -> float:
    """Seconds from starting `newsletter serve` to its index answering 200."""
    port = free_port()
    start = time.perf_counter()
    server = subprocess.Popen([*NL, "serve", "--port", str(port)], cwd=folder, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={"NEWSLETTER_SECRET": "bench-secret",
                                                               "PATH": "/usr/bin:/bin"})
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except (urllib.error.URLError, ConnectionError):
                pass
            if server.poll() is not None or time.perf_counter() - start > 60:
                raise SystemExit("serve did not answer")
            time.sleep(0.005)
    finally:
        server.terminate()
        server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        workspace(folder, args.count)
        old = time.time_ns() - 86_400 * 10**9  # settings written long ago, as issues are
        os.utime(folder / "newsletter.yaml", ns=(old, old))
        settings = load_settings(folder / "newsletter.yaml")
        db = connect(settings.subscribers)
        with db:
            db.executemany("INSERT INTO published (issue, at, how) VALUES (?, ?, 'publish')",
                           [(n, now()) for n in range(1, args.count + 1)])
        db.close()
        site = folder / "site"
        first, written = timed(build_archive, settings, site)
        assert written and not written.unlisted
        again = []
        for _ in range(3):
            seconds, unchanged = timed(build_archive, settings, site)
            assert not unchanged, unchanged[:3]
            again.append(seconds)
        cli, result = timed(lambda: subprocess.run([*NL, "archive"], cwd=folder, capture_output=True))
        assert result.returncode == 0 and not result.stdout, result.stderr
        serve = [first_200(folder) for _ in range(3)]
    rebuild, start = statistics.median(again), statistics.median(serve)
    ok_rebuild, ok_serve = rebuild < REBUILD_TARGET, start < SERVE_TARGET
    print(f"Archive of {args.count} published issues:")
    print(f"  first build                          {first:7.2f} s")
    print(f"  rebuild, nothing changed (in process) {rebuild:6.3f} s   target < {REBUILD_TARGET:.0f} s"
          f"   {'ok' if ok_rebuild else 'MISSED'}")
    print(f"  `newsletter archive`, nothing changed {cli:6.3f} s   (a fresh process, for information)")
    print(f"  `newsletter serve`, start to first 200 {start:5.3f} s   target < {SERVE_TARGET:.0f} s"
          f"   {'ok' if ok_serve else 'MISSED'}")
    return 0 if ok_rebuild and ok_serve else 1


if __name__ == "__main__":
    sys.exit(main())
