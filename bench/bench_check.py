"""Check benchmark: ``newsletter check`` on one issue with 1 and with 1,000 issues in
issues/, for the checks across issues (a number used twice, dates out of order, URLs
linked before) answered by the index in .cache/newsletter/index.sqlite.

Each generated issue is the sample issue 033 (its items, images and more posts) with
its own number, date and URLs. The target is on `newsletter check ISSUE` as an author
runs it, a fresh process (CPU time, median, the two workspaces interleaved so a busy
machine slows both alike, the index warm): 1,000 issues cost at most 1.2x one issue.
In-process times (click's runner: the index's share without the interpreter's start
and imports) and the cold first build of the index are reported for information.

    make bench            (or: .venv/bin/python bench/bench_check.py [--quick])
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.authoring import catalog  # noqa: E402
from newsletter.cli import main as cli  # noqa: E402

TARGET = 1.2
DAY_NS = 86_400 * 10**9


def workspace(folder: Path, count: int) -> Path:
    """A workspace with ``count`` issues made from the sample; returns the newest one."""
    issues = folder / "issues"
    shutil.copytree(REPO / "issues" / "img", issues / "img")
    config = (REPO / "newsletter.yaml").read_text() + f"layouts: {REPO / 'layouts'}\n"
    (folder / "newsletter.yaml").write_text(config)
    if (REPO / "img").is_dir():  # what newsletter.yaml refers to (the logo)
        shutil.copytree(REPO / "img", folder / "img")
    sample = (REPO / "issues" / "033.yaml").read_text("utf-8")
    old = time.time_ns() - DAY_NS  # written long ago, as past issues are (not "racy")
    for n in range(1, count + 1):
        text = re.sub(r"(?m)^number: \d+$", f"number: {n}", sample)
        day = 1 + n % 28
        text = re.sub(r"(?m)^date: .*$", f"date: {2000 + n // 12:04d}-{1 + n % 12:02d}-{day:02d}", text)
        # Every issue its own URLs (so no "already linked" warning), arXiv links kept valid.
        text = re.sub(r"(?m)^(\s+url: https?://\S+)$", rf"\1?issue={n}", text)
        path = issues / f"{n:04d}.yaml"
        path.write_text(text, "utf-8")
        os.utime(path, ns=(old, old))
    os.utime(issues, ns=(old, old))
    return issues / f"{count:04d}.yaml"


def run_check(runner: CliRunner, folder: Path, issue: Path) -> float:
    start = time.perf_counter()
    result = runner.invoke(cli, ["--config", str(folder / "newsletter.yaml"), "check", str(issue)])
    elapsed = time.perf_counter() - start
    if result.exit_code != 0 or "warning" in result.output:
        raise SystemExit(f"check failed or warned:\n{result.output}")
    return elapsed


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def process_cpu(cases: dict[str, tuple[Path, Path]], runs: int) -> dict[str, float]:
    """CPU ms (user+sys, median) of `newsletter check ISSUE` as a fresh process, as an
    author runs it; the cases interleaved."""
    exe = Path(sys.executable).parent / "newsletter"
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (folder, issue) in cases.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([str(exe), "check", str(issue)], cwd=folder, check=True, capture_output=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {name: ms(samples) for name, samples in cpu.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    args = parser.parse_args()
    runs = 15 if args.quick else 100
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        one_dir, many_dir = Path(tmp) / "one", Path(tmp) / "many"
        one, many = workspace(one_dir, 1), workspace(many_dir, 1000)

        cold = []
        for _ in range(1 if args.quick else 3):
            shutil.rmtree(many_dir / ".cache", ignore_errors=True)
            cold.append(run_check(runner, many_dir, many))
        run_check(runner, one_dir, one)
        for _ in range(3):  # warm both: imports, templates, the page cache
            run_check(runner, one_dir, one)
            run_check(runner, many_dir, many)

        samples: dict[str, list[float]] = {"one": [], "many": []}
        for _ in range(runs):
            samples["one"].append(run_check(runner, one_dir, one))
            samples["many"].append(run_check(runner, many_dir, many))
        index = many_dir / ".cache" / "newsletter" / "index.sqlite"
        size = index.stat().st_size / 1024
        names = sorted(p.name for p in (many_dir / "issues").glob("*.yaml"))
        stat_ms = ms([timed(catalog._stat_names, many_dir / "issues", names) for _ in range(runs)])
        fresh = process_cpu({"one": (one_dir, one), "many": (many_dir, many)}, 5 if args.quick else 20)

    a, b = ms(samples["one"]), ms(samples["many"])
    ratio = fresh["many"] / fresh["one"]
    verdict = "ok" if ratio <= TARGET else "OVER TARGET"
    print(f"`newsletter check ISSUE` as a fresh process, CPU ms, median of {5 if args.quick else 20} (index warm)")
    print(f"{'1 issue in issues/':28s} {fresh['one']:8.1f}")
    print(f"{'1,000 issues in issues/':28s} {fresh['many']:8.1f}")
    print(f"ratio {ratio:.2f}x (target <= {TARGET}x) {verdict}")
    print(f"\nIn-process (for information), median ms of {runs} runs: 1 issue {a:.2f}, 1,000 issues {b:.2f}, "
          f"ratio {b / a:.2f}x; stat() of the 1,000 files alone, which any index must do to see edits made "
          f"in place: {stat_ms:.2f} ms")
    print(f"\nCold: the first check with 1,000 issues and no index (reads every file once): "
          f"{ms(cold):.0f} ms; the index: {size:.0f} KB")
    return 0 if ratio <= TARGET else 1

if __name__ == "__main__":
    sys.exit(main())
