"""Web side benchmark, on loopback only: requests per second and p99 latency of the
one-click unsubscribe POST and of an archive page, with wrk (Debian's package) against
`newsletter serve`; and the archive build time for 100 generated issues.

    .venv/bin/python bench/bench_web.py [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.config import load_settings  # noqa: E402
from newsletter.mailing.store import Store  # noqa: E402
from newsletter.mailing.tokens import list_id, make_token  # noqa: E402
from newsletter.ports import free_port, wait_for_port  # noqa: E402
from newsletter.web.archive import build_archive  # noqa: E402

WRK = shutil.which("wrk") or "/usr/bin/wrk"
SECRET = "bench-secret"



def workspace(root: Path, issues: int = 0) -> Path:
    shutil.copytree(REPO / "issues", root / "issues")
    (root / "newsletter.yaml").write_text((REPO / "newsletter.yaml").read_text() + f"layouts: {REPO / 'layouts'}\n")
    sample = (REPO / "issues" / "033.yaml").read_text()
    for n in range(100, 100 + issues):
        date = f"date: 2022-{1 + n % 12:02d}-{1 + n % 28:02d}"
        text = sample.replace("number: 33", f"number: {n}").replace("date: 2021-10-10", date)
        (root / "issues" / f"{n}.yaml").write_text(text)
    return root / "newsletter.yaml"


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> tuple[float, float]:
    """Requests per second and p99 latency (ms) of a wrk run."""
    command = [WRK, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        command[1:1] = ["-s", str(script)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} failed responses for {url}")
    return rps, p99


def _wait_for_page(url: str, seconds: float = 30) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not Path(WRK).exists():
        print("wrk is missing: `make bench` installs Debian's wrk package")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        config = workspace(Path(tmp) / "serve")
        settings = load_settings(config)
        store = Store(settings.subscribers)
        store.add_many(((f"reader{n}@example.com", "", {}) for n in range(1000)), source="bench")
        store.close()
        token = make_token(SECRET.encode(), list_id(settings.name, settings.sender), "reader1@example.com")
        port = free_port()
        server = subprocess.Popen([str(Path(sys.executable).parent / "newsletter"), "--config", str(config), "serve",
                                   "--port", str(port)], env={**os.environ, "NEWSLETTER_SECRET": SECRET},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, timeout=30)
            _wait_for_page(f"http://127.0.0.1:{port}/33/index.html")  # serve builds the site after it starts
            script = Path(tmp) / "one-click.lua"
            script.write_text('wrk.method = "POST"\nwrk.body = "List-Unsubscribe=One-Click"\n'
                              'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n')
            base = f"http://127.0.0.1:{port}"
            print(f"wrk, 2 threads, {args.connections} connections, {args.seconds} s each, loopback:")
            rps, p99 = wrk(f"{base}/unsubscribe?token={token}", args.seconds, args.connections, script)
            print(f"  one-click unsubscribe POST: {rps:8.0f} req/s   p99 {p99:6.1f} ms")
            rps, p99 = wrk(f"{base}/33/index.html", args.seconds, args.connections)
            print(f"  archive page (33/index.html): {rps:6.0f} req/s   p99 {p99:6.1f} ms")
        finally:
            server.terminate()
            server.wait()

        config = workspace(Path(tmp) / "big", issues=98)  # with the two samples: 100 issues
        settings = load_settings(config)
        first, again = [], []
        for n in range(3):
            out = Path(tmp) / f"site{n}"
            start = time.perf_counter()
            written = build_archive(settings, out)
            first.append(time.perf_counter() - start)
            start = time.perf_counter()
            unchanged = build_archive(settings, out)
            again.append(time.perf_counter() - start)
            assert written and not unchanged
        print(f"Archive of 100 issues: first build {statistics.median(first):.2f} s, "
              f"rebuild with nothing changed {statistics.median(again):.2f} s (median of 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
