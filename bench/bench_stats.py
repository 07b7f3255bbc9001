"""Stats benchmark: ``newsletter stats`` on a store with 100,000 subscribers who joined
over a year, and twelve weekly issues sent to them (about 1,000,000 journal rows), with
unsubscribes, bounces, complaints, and 20 tracked links an issue with their clicks.

Targets are ratios of CPU time to a baseline measured in the same run, interleaved with
it (medians; the development machine is shared, and CPU time moves less than wall time):

- the overview (every issue, subscribers over time) <= 4x one pass over the rows it
  reads (``sum(length(column))`` of subscribers, events, deliveries and clicks): its six
  grouped statements cost about four plain passes;
- one issue's stats <= 5x what ``newsletter status`` reads (the journal's counts and its
  failed and unknown rows): the same, plus a pass over the consent record (no index on
  ``events.issue``) and the issue's links and clicks.

Fresh-process CPU times of `newsletter stats` (table, json, html) and the HTML report's
size are reported for information.

    make bench            (or: .venv/bin/python bench/bench_stats.py [--subscribers N] [--issues N])
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_subscribers import CONFIG  # noqa: E402 (the same workspace settings as the import bench)

from newsletter.mailing.journal import Journal  # noqa: E402
from newsletter.mailing.stats import issue_stats, overview  # noqa: E402
from newsletter.mailing.store import Store, connect, transaction  # noqa: E402

NEWSLETTER = Path(sys.executable).parent / "newsletter"
TARGET_OVERVIEW, TARGET_ISSUE = 4.0, 5.0
SECTIONS = ("featured", "featured", "featured", "use_cases", "use_cases", "papers", "papers", "papers", "papers",
            "articles", "articles", "articles", "other", "other", "more", "more", "intro", "highlights", "footer",
            "outro")
SOURCES = ("one-click (RFC 8058)", "one-click (RFC 8058)", "one-click (RFC 8058)", "unsubscribe page", "mailto")



def _iso(when: dt.datetime) -> str:
    return when.isoformat(timespec="microseconds")


def make_history(path: Path, subscribers: int, issues: int, start: dt.datetime, days: int = 365,
                 seed: int = 7) -> None:
    """A store as a year of a newsletter leaves it. Subscribers come in through the real
    import (``add_many``, each with its own sign-up date); the journal, unsubscribes,
    bounces and clicks are written as the send, ``serve`` and ``bounces`` write them."""
    rng = random.Random(seed)
    store = Store(path)
    # Sign-ups speed up as the list becomes known.
    joined = sorted(start + dt.timedelta(days=days * (rng.random() ** 0.7)) for _ in range(subscribers))
    store.add_many(((f"reader{n:07d}@example{n % 50}.com", f"Reader {n}", {}, "subscribed", _iso(at), None, (), "")
                    for n, at in enumerate(joined)), source="import people.csv")
    store.close()
    db = connect(path)
    with transaction(db):
        for issue in range(1, issues + 1):  # weekly, the last one a few days before the end
            sent = start + dt.timedelta(days=days - 3 - 7 * (issues - issue), hours=9)
            _send(db, rng, issue, sent)
    db.close()


def _send(db, rng: random.Random, issue: int, sent: dt.datetime) -> None:
    at = _iso(sent)
    db.execute("INSERT INTO sends (issue, started_at, audience) VALUES (?, ?, 1)", (issue, at))
    db.execute("INSERT INTO published (issue, at, how) VALUES (?, ?, 'send')", (issue, at))
    db.execute("INSERT INTO deliveries (issue, email_key, state, attempts, updated_at) SELECT ?, email_key, 'sent',"
               " 1, ? FROM subscribers WHERE status = 'subscribed' AND created_at < ? ORDER BY rowid",
               (issue, at, at))
    readers = [k for (k,) in db.execute("SELECT email_key FROM deliveries WHERE issue = ?", (issue,))]
    if not readers:
        return
    rng.shuffle(readers)
    n = len(readers)
    failed, unknown = readers[:n // 250], readers[n // 250:n // 250 + n // 2000]
    db.executemany("UPDATE deliveries SET state = 'failed', kind = 'address', code = 550, detail = '5.1.1 no such"
                   " user' WHERE issue = ? AND email_key = ?", [(issue, k) for k in failed])
    db.executemany("UPDATE deliveries SET state = 'unknown' WHERE issue = ? AND email_key = ?",
                   [(issue, k) for k in unknown])
    rest = readers[len(failed) + len(unknown):]
    later = [_iso(sent + dt.timedelta(hours=rng.uniform(1, 96))) for _ in rest[:n // 100 + 2]]
    unsubscribed, bounced, complained = rest[:n // 300], rest[n // 300:n // 300 + n // 500], rest[n // 100:n // 100 + 2]
    for keys, change, kind in ((unsubscribed, "unsubscribed", None), (bounced, "bounced", "hard"),
                               (complained, "unsubscribed", "complaint")):
        for key, when in zip(keys, later, strict=False):
            source = "complaint" if kind == "complaint" else "bounce" if kind else rng.choice(SOURCES)
            db.execute("UPDATE subscribers SET status = ?, updated_at = ? WHERE email_key = ?", (change, when, key))
            db.execute("INSERT INTO events (email_key, at, change, source, detail, issue) VALUES (?, ?, ?, ?, '', ?)",
                       (key, when, change, source, issue))
            if kind:
                db.execute("INSERT INTO inbound (id, kind, email_key, at, detail, issue) VALUES (?, ?, ?, ?, ?, ?)",
                           (f"mid:<{key}.{issue}@bench>", kind, key, when, f"issue {issue}: 5.1.1", issue))
    db.executemany("INSERT INTO links (issue, id, url, section, title) VALUES (?, ?, ?, ?, ?)",
                   [(issue, link, f"https://ml.example/{issue}/{link}?utm_source=newsletter", section,
                     f"Item {link} of issue {issue}") for link, section in enumerate(SECTIONS, start=1)])
    weights = [1 / rank for rank in range(1, len(SECTIONS) + 1)]
    clicks = []
    for key in rest[: n * 12 // 100]:  # 12% of readers click, a link or a few
        client = f"{zlib.crc32(key.encode()):08x}"
        for link in set(rng.choices(range(1, len(SECTIONS) + 1), weights, k=rng.choice((1, 1, 1, 2, 3)))):
            when = sent.timestamp() + rng.uniform(600, 5 * 86400)
            verdict = rng.choices(("counted", "repeat", "scanner"), (88, 5, 7))[0]
            clicks.append((issue, link, when, client, None, verdict))
    clicks += [(issue, 0, sent.timestamp() + 30, f"scan{i}", None, "scanner") for i in range(n // 1000)]
    db.executemany("INSERT INTO clicks (issue, link, at, client, email_key, verdict) VALUES (?, ?, ?, ?, ?, ?)", clicks)


def baseline_all(db) -> None:
    """One pass over the rows the overview groups: the column it groups by, summed."""
    for table, column in (("subscribers", "status"), ("events", "change"), ("deliveries", "state"),
                          ("clicks", "verdict")):
        db.execute(f"SELECT sum(length({column})) FROM {table}").fetchone()


def baseline_issue(journal: Journal) -> None:
    """What `newsletter status` reads."""
    journal.counts()
    journal.entries("failed")
    journal.entries("unknown")


def timed(function, *args) -> float:
    start = time.process_time()
    function(*args)
    return time.process_time() - start


def interleaved(runs: int, ours, baseline) -> tuple[float, float]:
    """Medians in ms of ``ours`` and ``baseline``, run in turn."""
    a, b = [], []
    for _ in range(runs):
        a.append(timed(*ours))
        b.append(timed(*baseline))
    return statistics.median(a) * 1000, statistics.median(b) * 1000


def process(config: Path, *args: str) -> float:
    """CPU seconds (user + system) of one fresh `newsletter stats` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([str(NEWSLETTER), "--config", str(config), "stats", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--issues", type=int, default=12)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "newsletter.yaml").write_text(CONFIG)
        store = folder / "subscribers.db"
        began = time.perf_counter()
        make_history(store, args.subscribers, args.issues, dt.datetime(2025, 12, 1, tzinfo=dt.UTC))
        journal = Journal(store, args.issues)
        db = journal.db
        rows = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("subscribers", "events", "deliveries", "clicks")}
        print(f"Stats, {args.subscribers:,} subscribers, {args.issues} issues (made in"
              f" {time.perf_counter() - began:.0f} s): " + ", ".join(f"{n:,} {t}" for t, n in rows.items()))
        last = args.issues
        overview(db), issue_stats(db, last)  # warm SQLite's page cache, as the baseline's first run is
        print(f"In process, CPU time, median of {args.runs}:")
        for what, ours, base, about, target in (
                ("overview (every issue, subscribers over time)", (overview, db), (baseline_all, db),
                 "one pass over subscribers, events, deliveries and clicks", TARGET_OVERVIEW),
                (f"one issue ({last})", (issue_stats, db, last), (baseline_issue, journal),
                 "what `newsletter status` reads", TARGET_ISSUE)):
            mine, baseline = interleaved(args.runs, ours, base)
            ratio = mine / baseline
            verdict = "ok" if ratio <= target else "OVER TARGET"
            print(f"  {what}: {mine:.1f} ms vs {baseline:.1f} ms ({about}): {ratio:.2f}x"
                  f" (target <= {target:g}x) {verdict}")
            failed |= ratio > target
        journal.close()
        print("Fresh processes, CPU time, median of 3:")
        config = folder / "newsletter.yaml"
        report = folder / "stats.html"
        for label, extra in (("stats", ()), ("stats --format json", ("--format", "json")),
                             (f"stats {last} --format json", (str(last), "--format", "json")),
                             ("stats --format html", ("--format", "html", "-o", str(report))),
                             (f"stats {last} --format html", (str(last), "--format", "html", "-o", str(report)))):
            seconds = statistics.median(process(config, *extra) for _ in range(3))
            size = f", {report.stat().st_size / 1024:.0f} KB" if "html" in extra else ""
            print(f"  newsletter {label}: {seconds * 1000:.0f} ms{size}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
