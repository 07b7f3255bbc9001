"""Web side benchmark, on loopback only: requests per second and p99 latency of the
one-click unsubscribe POST, of an archive page and of a tracked link's redirect (against
the same serve with clicks not recorded, and a bare Starlette redirect, in the same run),
with wrk (Debian's package) against `newsletter serve`; and the archive build time for
100 generated issues.

    .venv/bin/python bench/bench_web.py [--seconds 10] [--connections 32] [--redirect-seconds 5]
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
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.config import load_settings  # noqa: E402
from newsletter.mailing.send import dry_run  # noqa: E402
from newsletter.mailing.store import Store  # noqa: E402
from newsletter.mailing.tokens import list_id, make_token  # noqa: E402
from newsletter.mailing.tracking import link_id  # noqa: E402
from newsletter.ports import free_port, wait_for_port  # noqa: E402
from newsletter.web.archive import build_archive  # noqa: E402

WRK = shutil.which("wrk") or "/usr/bin/wrk"
SECRET = "bench-secret"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
REDIRECT_TARGET = 0.8  # recording clicks keeps at least this share of the redirect's requests/s
ROUNDS = 3  # redirect runs of each kind, interleaved (the machine's speed drifts)

# For scale: the same server stack (uvicorn, Starlette, serve's security headers) answering
# a fixed 302, with no id to check, no link to find, no click to record and no other routes.
BARE = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import Route
from newsletter.web.guard import SecurityHeaders
async def bare(request):
    return Response(status_code=302, headers={"location": "https://ml.test/0?utm_source=x",
                                              "cache-control": "no-store"})
app = Starlette(routes=[Route("/c/{rest:path}", bare)], middleware=[Middleware(SecurityHeaders)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False, server_header=False)
"""



def workspace(root: Path, issues: int = 0) -> Path:
    shutil.copytree(REPO / "issues", root / "issues")
    (root / "newsletter.yaml").write_text((REPO / "newsletter.yaml").read_text() + f"layouts: {REPO / 'layouts'}\n")
    sample = (REPO / "issues" / "033.yaml").read_text()
    for n in range(100, 100 + issues):
        date = f"date: 2022-{1 + n % 12:02d}-{1 + n % 28:02d}"
        text = sample.replace("number: 33", f"number: {n}").replace("date: 2021-10-10", date)
        (root / "issues" / f"{n}.yaml").write_text(text)
    return root / "newsletter.yaml"


class Run(NamedTuple):
    rps: float
    p99: float  # ms
    requests: int


def wrk(url: str, seconds: int, connections: int, script: Path | None = None,
        header: str | None = None) -> Run:
    """Requests per second, p99 latency (ms) and requests made of a wrk run."""
    command = [WRK, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        command[1:1] = ["-s", str(script)]
    if header:
        command[1:1] = ["-H", header]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} failed responses for {url}")
    return Run(rps, p99, int(re.search(r"(\d+) requests in", out).group(1)))


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
    parser.add_argument("--redirect-seconds", type=int, default=5, help=f"each of {ROUNDS} rounds")
    args = parser.parse_args()
    if not Path(WRK).exists():
        print("wrk is missing: `make bench` installs Debian's wrk package")
        return 1
    os.environ["NEWSLETTER_SECRET"] = SECRET
    with tempfile.TemporaryDirectory() as tmp:
        config, link = tracked_workspace(Path(tmp) / "serve", clicks=True)
        settings = load_settings(config)
        store = Store(settings.subscribers)
        store.add_many(((f"reader{n}@example.com", "", {}) for n in range(1000)), source="bench")
        store.close()
        token = make_token(SECRET.encode(), list_id(settings.name, settings.sender), "reader1@example.com")
        server, base = serve(config)
        try:
            script = Path(tmp) / "one-click.lua"
            script.write_text('wrk.method = "POST"\nwrk.body = "List-Unsubscribe=One-Click"\n'
                              'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n')
            print(f"wrk, 2 threads, {args.connections} connections, {args.seconds} s each, loopback:")
            rps, p99, _ = wrk(f"{base}/unsubscribe?token={token}", args.seconds, args.connections, script)
            print(f"  one-click unsubscribe POST: {rps:8.0f} req/s   p99 {p99:6.1f} ms")
            rps, p99, _ = wrk(f"{base}/33/index.html", args.seconds, args.connections)
            print(f"  archive page (33/index.html): {rps:6.0f} req/s   p99 {p99:6.1f} ms")
            runs = _redirects(f"{base}/c/{link}", Path(tmp), args)
        finally:
            server.terminate()
            server.wait()  # serve writes the clicks still queued as it stops
        status = _report_redirects(runs, _clicks(settings), args)

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
    return status


def tracked_workspace(root: Path, clicks: bool) -> tuple[Path, str]:
    """A workspace whose issue 33 had its links numbered as a send does (one message
    written by a dry run), then ``tracking.clicks`` as asked; and link 1's id."""
    config = workspace(root)
    text = config.read_text()
    config.write_text(text + "tracking: {clicks: true}\n")
    settings = load_settings(config)
    dry_run(root / "issues" / "033.yaml", settings, root / "eml", "033.yaml", limit=1)
    config.write_text(text + f"tracking: {{clicks: {str(clicks).lower()}}}\n")
    return config, link_id(SECRET.encode(), list_id(settings.name, settings.sender), 33, 1)


def serve(config: Path) -> tuple[subprocess.Popen, str]:
    """`newsletter serve` on a free port, once it serves the archive; and its address."""
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "newsletter"), "--config", str(config), "serve",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, timeout=30)
    _wait_for_page(f"http://127.0.0.1:{port}/33/index.html")  # serve builds the site after it starts
    return server, f"http://127.0.0.1:{port}"


def _redirects(tracked_url: str, tmp: Path, args: argparse.Namespace) -> dict[str, list[Run]]:
    """wrk runs of the tracked redirect, of the same with clicks not recorded, and of a
    bare one, taking turns; a browser's user agent, so each click meets every rule."""
    plain_config, plain_link = tracked_workspace(tmp / "plain", clicks=False)
    plain, plain_base = serve(plain_config)
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE, str(port)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=30)
        urls = {"tracked": tracked_url, "plain": f"{plain_base}/c/{plain_link}",
                "bare": f"http://127.0.0.1:{port}/c/33.1.x"}
        runs: dict[str, list[Run]] = {name: [] for name in urls}
        for _ in range(ROUNDS):
            for name, url in urls.items():
                runs[name].append(wrk(url, args.redirect_seconds, args.connections, header=f"User-Agent: {BROWSER}"))
        return runs
    finally:
        for process in (plain, bare):
            process.terminate()
            process.wait()


def _report_redirects(runs: dict[str, list[Run]], recorded: int, args: argparse.Namespace) -> int:
    mid = {name: Run(*(statistics.median(values) for values in zip(*rs, strict=True))) for name, rs in runs.items()}
    made = sum(run.requests for run in runs["tracked"])
    # wrk counts the responses it read; serve also recorded the requests in flight when it stopped.
    all_recorded = 0 <= recorded - made <= args.connections * ROUNDS
    ratio = mid["tracked"].rps / mid["plain"].rps
    ok = ratio >= REDIRECT_TARGET and all_recorded
    print(f"  tracked link redirect (/c/<id>), median of {ROUNDS} interleaved runs of {args.redirect_seconds} s:")
    for name, what in (("tracked", "clicks recorded"), ("plain", "tracking.clicks off: redirect only"),
                       ("bare", "bare Starlette 302, same stack")):
        each = ", ".join(f"{run.rps:.0f}" for run in runs[name])
        print(f"    {what:36} {mid[name].rps:6.0f} req/s   p99 {mid[name].p99:6.1f} ms   (runs: {each})")
    print(f"    clicks recorded: {recorded} for {made} responses read (+ those in flight when wrk stopped)")
    print(f"  recording clicks keeps {ratio:.2f}x of the redirect's throughput (target >= {REDIRECT_TARGET}x,"
          f" every click recorded): {'met' if ok else 'NOT MET'}")
    return 0 if ok else 1


def _clicks(settings) -> int:
    """The clicks serve wrote (it writes what is still queued when it stops)."""
    import sqlite3

    with sqlite3.connect(settings.subscribers) as db:
        return db.execute("SELECT count(*) FROM clicks").fetchone()[0]


if __name__ == "__main__":
    sys.exit(main())
