"""Enrich benchmark against a local web on loopback (tests/fakeweb.py; nothing leaves the machine).

- A 25-link issue: 20 pages spread over 5 hosts (127.0.0.1 to 127.0.0.5), each page with
  a preview image of its own, both answering after --latency seconds (a server far away),
  and 5 arXiv links, answered by a fake arXiv API (one request for the five).
- First run on a fresh workspace: wall time, requests made, and what the same requests
  would take one after another (the latency times their number), for scale.
- Second run, on the untouched file again: wall time and requests (from the cache: 0).
- The issue sets no target for these; they are printed. Median of --rounds.

    .venv/bin/python bench/bench_enrich.py [--latency 0.2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from newsletter.authoring.enrich import enrich_issue  # noqa: E402
from newsletter.config import load_settings  # noqa: E402

from fakeweb import FakeWeb  # noqa: E402

HOSTS = [f"127.0.0.{n}" for n in range(1, 6)]
ARXIV = ["2109.10686", "2109.13228v1", "2106.08265", "cs/0112017", "2109.10686v2"]


def workspace(root: Path, api: str, pages: list[str]) -> tuple[Path, str]:
    (root / "issues").mkdir(parents=True)
    (root / "newsletter.yaml").write_text(
        f"name: Bench Weekly\nlayouts: {REPO / 'layouts'}\nenrich:\n  arxiv_api: {api}\n  timeout: 10\n")
    items = "".join(f"    - url: {url}\n      summary: TODO\n" for url in pages)
    papers = "".join(f"    - url: https://arxiv.org/abs/{i}\n      summary: TODO\n" for i in ARXIV)
    text = (f"# a comment the run must keep\nnumber: 1\ndate: 2021-10-10\ntitle: Bench\nsections:\n"
            f"  featured:\n{items}  papers:\n{papers}")
    (root / "issues" / "001.yaml").write_text(text)
    return root / "newsletter.yaml", text


def one_round(webs: list[FakeWeb], tmp: Path, n: int) -> tuple[float, int, float, int, int]:
    pages = [web.url(f"/gen/{n * 100 + i}.html") for i, web in enumerate(webs * 4)]
    config, text = workspace(tmp / f"round{n}", webs[0].url("/api/query"), pages)
    settings = load_settings(config)
    issue = config.parent / "issues" / "001.yaml"
    before = sum(w.count() for w in webs)
    started = time.perf_counter()
    first = enrich_issue(issue, settings)
    first_s = time.perf_counter() - started
    served = sum(w.count() for w in webs) - before
    assert not first.failed, [str(p) for p in first.problems]
    issue.write_text(text)  # the author's file again: everything is missing once more
    started = time.perf_counter()
    second = enrich_issue(issue, settings)
    second_s = time.perf_counter() - started
    assert second.filled == first.filled
    return first_s, first.requests, second_s, second.requests, served


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds each page and image takes")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    webs = [FakeWeb(host, delay=args.latency) for host in HOSTS]
    for web in webs:
        web.__enter__()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = [one_round(webs, Path(tmp), n) for n in range(args.rounds)]
    finally:
        for web in webs:
            web.__exit__()
    first, requests, second, cached, served = (statistics.median(r[i] for r in runs) for i in range(5))
    slow = sum(1 for w in webs for _, p in w.requests if p.startswith("/gen/")) / args.rounds
    print(f"enrich of a 25-link issue (20 pages with images on {len(HOSTS)} hosts, {args.latency:g} s each; "
          f"5 arXiv links), median of {args.rounds}:")
    print(f"  first run:  {first:.2f} s, {requests:.0f} requests ({served:.0f} served: {slow:.0f} pages and "
          f"images + 1 arXiv API); one after another they would take {slow * args.latency:.1f} s")
    print(f"  second run: {second * 1000:.0f} ms, {cached:.0f} requests (all from the cache and the thumbnails "
          "on disk)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
