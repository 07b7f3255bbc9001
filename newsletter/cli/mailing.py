"""The mailing commands: subscribers, send, status, capture. Thin: parse, call one
function, print."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import click

from newsletter.cli.base import settings_of
from newsletter.errors import NewsletterError


def _settings(ctx: click.Context):
    return settings_of(ctx)


@click.group()
def subscribers() -> None:
    """Manage the subscriber list (a SQLite file, `subscribers` in newsletter.yaml)."""


def _store(ctx: click.Context):
    from newsletter.mailing.store import Store

    return Store(_settings(ctx).subscribers)


@subscribers.command("import")
@click.argument("csv_file", metavar="CSV", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Reject the whole file if any row is bad; change nothing.")
@click.pass_context
def subscribers_import(ctx: click.Context, csv_file: Path, strict: bool) -> None:
    """Import a CSV with a header row: email (required), name, more columns."""
    from newsletter.mailing.importing import read_csv

    rows, problems = read_csv(csv_file, str(csv_file))
    for problem in problems:
        click.echo(f"{problem} (row skipped)" if not strict else str(problem), err=True)
    if problems and strict:
        click.echo(f"{csv_file}: {len(problems)} bad row(s); nothing imported (--strict)", err=True)
        sys.exit(1)
    store = _store(ctx)
    try:
        counts = store.add_many(((r.email, r.name, r.fields) for r in rows), source=f"import {csv_file.name}")
    finally:
        store.close()
    summary = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
    click.echo(f"{csv_file}: {summary or 'no rows'}" + (f"; {len(problems)} row(s) skipped" if problems else ""))
    if problems:
        sys.exit(1)


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name.")
@click.pass_context
def subscribers_add(ctx: click.Context, email: str, name: str) -> None:
    """Subscribe EMAIL (this also brings back an unsubscribed address)."""
    from newsletter.mailing.importing import check_address, check_name

    email, name = check_address(email), check_name(name)
    store = _store(ctx)
    try:
        click.echo(f"{email}: {store.add(email, name, source='cli add')}")
    finally:
        store.close()


@subscribers.command("remove")
@click.argument("email")
@click.pass_context
def subscribers_remove(ctx: click.Context, email: str) -> None:
    """Unsubscribe EMAIL: kept as unsubscribed, never mailed again."""
    store = _store(ctx)
    try:
        if not store.set_status(email, "unsubscribed", source="cli remove"):
            raise NewsletterError(f"{email}: not in the subscriber list")
    finally:
        store.close()
    click.echo(f"{email}: unsubscribed")


@subscribers.command("list")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.pass_context
def subscribers_list(ctx: click.Context, fmt: str) -> None:
    """Print every subscriber with their status."""
    import csv
    import json

    store = _store(ctx)
    try:
        people = list(store.all())
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps([p._asdict() for p in people], ensure_ascii=False, indent=2))
        return
    columns = sorted({k for p in people for k in p.fields})
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["email", "name", "status", "created_at", "updated_at", *columns])
    for p in people:
        row = [p.email, p.name, p.status, p.created_at, p.updated_at, *(p.fields.get(c, "") for c in columns)]
        # A cell starting with = + - @ would run as a formula in a spreadsheet.
        writer.writerow(["'" + v if v[:1] in ("=", "+", "-", "@") else v for v in row])


@click.command()
@click.argument("issue", type=click.Path(path_type=Path))
@click.option("--test", "test_address", metavar="ADDRESS", help="Mail one copy to ADDRESS only, [TEST] in the subject.")
@click.option("--dry-run", "dry_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              help="Write every message to DIR as .eml; send nothing.")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N messages in this run.")
@click.option("--retry-unknown", is_flag=True, help="Resend messages whose fate a crash left unknown.")
@click.pass_context
def send(ctx: click.Context, issue: Path, test_address: str | None, dry_dir: Path | None, limit: int | None,
         retry_unknown: bool) -> None:
    """Send ISSUE to every subscriber, each once, resuming where a previous run stopped."""
    from newsletter.mailing import send as sending

    gc.enable()
    if test_address and dry_dir:
        raise click.UsageError("--test and --dry-run do not go together")
    settings = _settings(ctx)
    if test_address:
        delivery = sending.send_test(issue, settings, test_address, str(issue))
        click.echo(f"Test copy to {test_address}: {delivery.status} ({delivery.detail})")
        sys.exit(0 if delivery.status == "sent" else 3)
    if dry_dir:
        count = sending.dry_run(issue, settings, dry_dir, str(issue), limit)
        click.echo(f"Wrote {count} message(s) to {dry_dir}/; nothing was sent.")
        return
    progress = _progress_bar() if sys.stderr.isatty() else None
    report = sending.send_issue(issue, settings, str(issue), limit=limit, retry_unknown=retry_unknown,
                                progress=progress)
    if progress:
        click.echo(err=True)
    _print_report(report, settings)
    if report.interrupted:
        click.echo("Stopped by Ctrl-C after the messages in flight.", err=True)
        sys.exit(130)
    if report.counts["failed"]:
        sys.exit(3)


def _progress_bar():
    """A one-line progress bar on stderr: count, rate, time left."""
    import time

    start = time.monotonic()

    def show(done: int, total: int) -> None:
        elapsed = max(time.monotonic() - start, 1e-6)
        rate = done / elapsed
        left = (total - done) / rate if rate else 0
        filled = int(30 * done / max(total, 1))
        click.echo(f"\r[{'#' * filled}{' ' * (30 - filled)}] {done}/{total}  {rate:.0f}/s  "
                   f"ETA {int(left // 60)}:{int(left % 60):02d} ", nl=False, err=True)

    return show


def _print_report(report, settings) -> None:
    counts = report.counts
    if report.recovered:
        click.echo(f"{report.recovered} message(s) were being handed to the server when the last send stopped.")
    click.echo(f"This run: {report.sent} sent, {report.failed} failed. In all: {counts['sent']} sent, "
               f"{counts['failed']} failed, {counts['unknown']} unknown, {counts['pending']} pending.")
    _print_entries(report.failures, report.unknowns)
    if counts["pending"]:
        click.echo("Run the same command again to send the rest.")


def _print_entries(failures, unknowns) -> None:
    if failures:
        click.echo("Failed (not retried; bounced addresses are no longer mailed):")
        for e in failures:
            click.echo(f"  {e.email}  {e.detail}")
    if unknowns:
        click.echo("Unknown (handed to the server, never confirmed; resent only with --retry-unknown):")
        for e in unknowns:
            click.echo(f"  {e.email}  {e.detail}")


@click.command()
@click.argument("issue", type=click.Path(path_type=Path))
@click.pass_context
def status(ctx: click.Context, issue: Path) -> None:
    """Show what the send of ISSUE has done so far."""
    from newsletter.authoring.check import check_issue
    from newsletter.mailing.journal import STATES, Journal

    settings = _settings(ctx)
    number = check_issue(issue, settings.lang, str(issue)).issue.number
    journal = Journal(settings.subscribers, number)  # opening creates or migrates the store
    try:
        counts = journal.counts()
        click.echo(f"Issue {number}: " + ", ".join(f"{counts[s]} {s}" for s in STATES))
        _print_entries(journal.entries("failed"), journal.entries("unknown"))
    finally:
        journal.close()


@click.command()
@click.option("--port", default=8025, show_default=True, type=click.IntRange(1, 65535))
@click.option("--outbox", default=Path("outbox"), show_default=True, type=click.Path(file_okay=False, path_type=Path))
def capture(port: int, outbox: Path) -> None:
    """Run a local SMTP server on 127.0.0.1 that saves each message to OUTBOX as .eml."""
    import threading

    from newsletter.mailing.capture import start_capture

    gc.enable()
    controller = start_capture(outbox, port)
    click.echo(f"Capturing mail on 127.0.0.1:{port} into {outbox}/ (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("Stopped.")
    finally:
        controller.stop()
