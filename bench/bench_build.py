"""Build benchmark: stage by stage, the whole build against a bare MJML compile, and
``newsletter check`` as a fresh process against ``python -c "import yaml, click"``.

Figures are medians, and every target is a ratio to a baseline measured in the same
run, interleaved with it, so a busy machine slows both sides alike.

    make bench            (or: .venv/bin/python bench/bench_build.py [--quick])
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mjml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.authoring.build import review_issue, write_issue  # noqa: E402
from newsletter.authoring.check import check_issue  # noqa: E402
from newsletter.authoring.render import Renderer  # noqa: E402
from newsletter.config import load_settings  # noqa: E402

ITEM = """\
    - title: Item {i}, a paper title of ordinary length about transformers
      url: https://arxiv.org/abs/2110.{i:05d}
      source: arxiv.org
      paper: {{arxiv: "2110.{i:05d}", title: "A paper title that is about as long as real ones are"}}
      summary: |
        The authors propose a method and show that it works. The summary is two or
        three sentences long, with *emphasis* and a [link](https://example.com/{i}).
"""


def generated_issue(folder: Path, items: int = 30) -> Path:
    """A workspace with one issue of ``items`` items, using the repository's layouts."""
    (folder / "issues").mkdir(parents=True, exist_ok=True)
    config = (REPO / "newsletter.yaml").read_text() + f"layouts: {REPO / 'layouts'}\n"
    (folder / "newsletter.yaml").write_text(config)
    body = "".join(ITEM.format(i=i) for i in range(items))
    path = folder / "issues" / "100.yaml"
    path.write_text(f"number: 100\ndate: 2021-10-10\ntitle: Thirty items\nsections:\n  papers:\n{body}")
    return path


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def stages(issue_path: Path, settings, runs: int) -> dict[str, float]:
    """Median milliseconds of each stage of one build, run in the build's order with a
    fresh context each time (so the text part and web page pay what they pay in a build)."""
    renderer = Renderer(settings)
    issue = check_issue(issue_path, settings.lang).issue
    names = ["load+check", "jinja (email MJML)", "mjml", "inline CSS", "text part", "web page"]
    samples: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(runs):
        clock = [time.perf_counter()]

        def lap(name: str, clock: list[float] = clock) -> None:
            clock.append(time.perf_counter())
            samples[name].append(clock[-1] - clock[-2])

        check_issue(issue_path, settings.lang)
        lap("load+check")
        context = renderer.context(issue, "NLbench")
        source = renderer.template("email.mjml", context)
        lap("jinja (email MJML)")
        html = renderer.compile_mjml(source)
        lap("mjml")
        renderer.inline_css(html)
        lap("inline CSS")
        renderer.template("email.txt", context)
        lap("text part")
        renderer.template("web.html", context)
        lap("web page")
    return {n: median_ms(v) for n, v in samples.items()}


def whole_build_ratio(issue_path: Path, settings, runs: int, out: Path) -> tuple[float, float, float]:
    """Median ms of an in-process build (check, render, write) and of a bare mjml2html
    on the same MJML, interleaved; and their ratio."""
    renderer = Renderer(settings)
    issue = check_issue(issue_path, settings.lang).issue
    source = renderer.template("email.mjml", renderer.context(issue, "NLbench"))
    build, bare = [], []
    for _ in range(runs):
        t = time.perf_counter()
        write_issue(review_issue(issue_path, settings, renderer), settings, out)
        build.append(time.perf_counter() - t)
        t = time.perf_counter()
        mjml.mjml2html(source, fonts={}, disable_comments=True)
        bare.append(time.perf_counter() - t)
    b, m = median_ms(build), median_ms(bare)
    return b, m, b / m


def process_ratio(runs: int) -> tuple[float, float, float]:
    """CPU milliseconds (user+sys, median) of `newsletter check` on the sample issue as a
    fresh process, and of `python -c "import yaml, click"`, interleaved; and the ratio."""
    exe = Path(sys.executable).parent / "newsletter"
    commands = {
        "base": [sys.executable, "-c", "import yaml, click"],
        "check": [str(exe), "check", "issues/033.yaml"],
    }
    cpu: dict[str, list[float]] = {k: [] for k in commands}
    env = {**os.environ}
    for _ in range(runs):
        for name, cmd in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, env=env)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    base, check = median_ms(cpu["base"]), median_ms(cpu["check"])
    return check, base, check / base


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    args = parser.parse_args()
    runs = 5 if args.quick else 50
    proc_runs = 5 if args.quick else 30

    settings = load_settings(REPO / "newsletter.yaml")
    sample = REPO / "issues" / "033.yaml"
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        big = generated_issue(Path(tmp) / "ws")
        big_settings = load_settings(Path(tmp) / "ws" / "newsletter.yaml")
        print("Stages, median ms of", runs, "runs")
        print(f"{'stage':22s} {'sample (033)':>14s} {'30 items':>10s}")
        a, b = stages(sample, settings, runs), stages(big, big_settings, runs)
        for name in a:
            print(f"{name:22s} {a[name]:14.2f} {b[name]:10.2f}")
        size = review_issue(big, big_settings).rendered.html_size / 1024
        print(f"\n30-item email HTML: {size:.1f} KB (target < 90 KB)")
        failed |= size >= 90

        print("\nWhole in-process build vs bare mjml2html on the same MJML (median ms)")
        for label, path, st in (("sample (033)", sample, settings), ("30 items", big, big_settings)):
            whole, bare, ratio = whole_build_ratio(path, st, runs, Path(tmp) / "out")
            verdict = "ok" if ratio <= 5 else "OVER TARGET"
            print(f"{label:14s} build {whole:7.2f}  mjml2html {bare:6.2f}  "
                  f"ratio {ratio:4.2f}x (target <= 5x) {verdict}")
            failed |= ratio > 5

    check, base, ratio = process_ratio(proc_runs)
    verdict = "ok" if ratio <= 2.5 else "OVER TARGET"
    print(f"\n`newsletter check issues/033.yaml` as a fresh process, CPU ms (median of {proc_runs})")
    print(f"check {check:.1f}  python -c 'import yaml, click' {base:.1f}  "
          f"ratio {ratio:.2f}x (target <= 2.5x) {verdict}")
    failed |= ratio > 2.5
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
