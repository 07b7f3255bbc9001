"""Send benchmark against Postfix's smtp-sink on loopback (Debian package `postfix`;
`make bench` installs it; Postfix itself is never started).

- Throughput: the sample issue to N generated subscribers, journaled and personalized,
  against a baseline in the same run: one prebuilt message's bytes sent N times over one
  raw smtplib connection. Target: at least 0.8 of the baseline.
- Per-recipient personalization and MIME cost, in microseconds.
- Peak memory of `newsletter send` to 10,000 and to 100,000 subscribers (fresh
  processes). Target: under 150 MB, and flat as the list grows.

    .venv/bin/python bench/bench_send.py [--count 10000] [--big 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.config import load_settings  # noqa: E402
from newsletter.mailing.personalize import Recipient  # noqa: E402
from newsletter.mailing.send import prepare, send_issue  # noqa: E402
from newsletter.mailing.store import Store, connect  # noqa: E402
from newsletter.ports import free_port, wait_for_port  # noqa: E402

SINK = Path("/usr/sbin/smtp-sink")



def start_sink(port: int) -> subprocess.Popen:
    command = [str(SINK), "-u", "nobody", f"127.0.0.1:{port}", "1000"] if os.geteuid() == 0 else \
        [str(SINK), f"127.0.0.1:{port}", "1000"]
    sink = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return sink


def workspace(root: Path, port: int, name: str) -> Path:
    """A workspace whose store and journal are its own, sending to the sink."""
    folder = root / name
    folder.mkdir()
    shutil.copytree(REPO / "issues", folder / "issues")
    config = (REPO / "newsletter.yaml").read_text().replace("subscribers: subscribers.db\n", "")
    config += (f"subscribers: subscribers.db\nlayouts: {REPO / 'layouts'}\n"
               f"smtp:\n  host: 127.0.0.1\n  port: {port}\n  security: none\n  connections: 4\n  rate: 0\n")
    (folder / "newsletter.yaml").write_text(config)
    return folder / "newsletter.yaml"


def fill(config: Path, count: int) -> None:
    store = Store(load_settings(config).subscribers)
    rows = ((f"reader{n:06d}@example.com", f"Reader Ünal {n}", {"company": f"Company {n % 97}"})
            for n in range(count))
    store.add_many(rows, source="bench")
    store.close()


def reset_journal(config: Path) -> None:
    db = connect(load_settings(config).subscribers)
    db.execute("DELETE FROM deliveries")
    db.close()


def baseline(port: int, message: bytes, count: int) -> float:
    """Seconds to send one prebuilt message ``count`` times over one raw connection."""
    connection = smtplib.SMTP("127.0.0.1", port)
    start = time.perf_counter()
    for _ in range(count):
        connection.sendmail("news@example.com", ["reader@example.com"], message)
    elapsed = time.perf_counter() - start
    connection.quit()
    return elapsed


def peak_memory_mb(config: Path, count: int) -> float:
    """Peak RSS of a fresh `newsletter send` process to ``count`` subscribers."""
    process = subprocess.Popen([str(Path(sys.executable).parent / "newsletter"), "--config", str(config), "send",
                                str(config.parent / "issues" / "033.yaml")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"send to {count} failed: {process.stderr.read().decode()}")
    return usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=100_000, help="subscribers for the memory check (0: skip)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not SINK.exists():
        print(f"{SINK} is missing: `make bench` installs Debian's postfix package (it is not started)")
        return 1
    os.environ.setdefault("NEWSLETTER_SECRET", "bench-secret")
    failed = False
    port = free_port()
    sink = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = workspace(Path(tmp), port, "main")
            fill(config, args.count)
            settings = load_settings(config)
            issue = config.parent / "issues" / "033.yaml"
            template = prepare(issue, settings, "issues/033.yaml")
            recipients = [Recipient(f"reader{n:06d}@example.com", f"Reader Ünal {n}", {"company": "X"})
                          for n in range(args.count)]

            per = []
            for _ in range(5):
                start = time.perf_counter()
                for r in recipients:
                    template.personalize(r)
                per.append((time.perf_counter() - start) / len(recipients) * 1e6)
            size = len(template.personalize(recipients[0]))
            print(f"Personalization + MIME per recipient: median {statistics.median(per):.1f} µs "
                  f"(message {size / 1024:.1f} KB)")

            message = template.personalize(recipients[0])
            base_rates, send_rates = [], []
            for _ in range(args.rounds):
                base_rates.append(args.count / baseline(port, message, args.count))
                reset_journal(config)
                start = time.perf_counter()
                report = send_issue(issue, settings, "issues/033.yaml")
                send_rates.append(report.sent / (time.perf_counter() - start))
                assert report.sent == args.count, report
            base, ours = statistics.median(base_rates), statistics.median(send_rates)
            ratio = ours / base
            print(f"Throughput, {args.count} messages, median of {args.rounds} rounds:")
            print(f"  baseline (prebuilt bytes, one raw connection): {base:.0f} msg/s")
            print(f"  newsletter send (personalized, journaled, 4 connections): {ours:.0f} msg/s")
            verdict = "ok" if ratio >= 0.8 else "UNDER TARGET"
            print(f"  ratio {ratio:.2f} (target >= 0.8) {verdict}")
            failed |= ratio < 0.8

            if args.big:
                peaks = {}
                for count in (args.count, args.big):
                    cfg = workspace(Path(tmp), port, f"mem{count}")
                    fill(cfg, count)
                    peaks[count] = peak_memory_mb(cfg, count)
                print("Peak memory of `newsletter send` (fresh process):")
                for count, mb in peaks.items():
                    print(f"  {count:>7} subscribers: {mb:.0f} MB")
                growth = peaks[args.big] / peaks[args.count]
                verdict = "ok" if peaks[args.big] < 150 and growth < 1.2 else "OVER TARGET"
                print(f"  growth x{growth:.2f} for {args.big // args.count}x the subscribers "
                      f"(target < 150 MB, flat) {verdict}")
                failed |= verdict != "ok"
    finally:
        sink.terminate()
        sink.wait()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
