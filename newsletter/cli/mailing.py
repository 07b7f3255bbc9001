"""The mailing commands: subscribers, send, status, capture. Thin: parse, call one
function, print."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import click

from newsletter.cli.base import settings_of


@click.command()
@click.argument("issue", type=click.Path(path_type=Path), required=False)
@click.option("--at", "at", metavar="TIME", help="Send later, at TIME (ISO 8601 with a timezone:"
              " 2026-12-01T09:00+09:00); `send --due` or `serve` starts it.")
@click.option("--due", is_flag=True, help="Start every scheduled send whose time has come (no ISSUE; cron).")
@click.option("--test", "test_address", metavar="ADDRESS", help="Mail one copy to ADDRESS only, [TEST] in the subject.")
@click.option("--dry-run", "dry_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              help="Write every message to DIR as .eml; send nothing.")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N messages in this run.")
@click.option("--yes", is_flag=True, help="Do not ask before sending (cron, scripts).")
@click.option("--retry-unknown", is_flag=True, help="Resend messages whose fate a crash left unknown.")
@click.option("--retry-failed", is_flag=True, help="Resend messages that failed for reasons other than a bad address.")
@click.option("--include-new", is_flag=True, help="Also send to those who subscribed since the first run.")
@click.option("--where", metavar="EXPR", help="Send to the subscribers EXPR matches (lang = 'zh' and 'ml' in tags)"
              " who do not have this issue yet; a later --where adds another segment, nobody twice.")
@click.pass_context
def send(ctx: click.Context, issue: Path | None, at: str | None, due: bool, test_address: str | None,
         dry_dir: Path | None, limit: int | None, yes: bool, retry_unknown: bool, retry_failed: bool,
         include_new: bool, where: str | None) -> None:
    """Send ISSUE to every subscriber, each once, resuming where a previous run stopped."""
    from newsletter.mailing import send as sending

    gc.enable()
    if test_address and dry_dir:
        raise click.UsageError("--test and --dry-run do not go together")
    if where is not None and (test_address or include_new):
        raise click.UsageError(f"--where does not go with {'--test' if test_address else '--include-new'}: --where"
                               " already adds the segment's readers who do not have the issue yet")
    others = test_address or dry_dir or limit or retry_unknown or retry_failed or include_new or where is not None
    if due and (issue or at or others):
        raise click.UsageError("--due takes no ISSUE and no other option")
    if at and others:
        raise click.UsageError("--at goes with no other option: a scheduled send is a plain send")
    if not due and issue is None:
        raise click.UsageError("Missing argument 'ISSUE'.")
    settings = settings_of(ctx)
    segment = _segment(where, settings)  # a bad expression stops us before anything is rendered
    if due:
        _send_due(settings)
        return
    if at:
        _schedule(settings, issue, at)
        return
    if test_address:
        delivery = sending.send_test(issue, settings, test_address, str(issue))
        click.echo(f"Test copy to {test_address}: {delivery.status} ({delivery.detail})")
        sys.exit(0 if delivery.status == "sent" else 3)
    if dry_dir:
        count = sending.dry_run(issue, settings, dry_dir, str(issue), limit, segment)
        click.echo(f"Wrote {count} message(s) to {dry_dir}/; nothing was sent.")
        return
    progress = _progress_bar() if sys.stderr.isatty() else None
    report = sending.send_issue(issue, settings, str(issue), limit=limit, retry_unknown=retry_unknown,
                                retry_failed=retry_failed, include_new=include_new,
                                confirm=None if yes else _ask, progress=progress, where=segment)
    if progress:
        click.echo(err=True)
    _print_report(report)
    if report.interrupted:
        click.echo("Stopped by Ctrl-C after the messages in flight.", err=True)
        sys.exit(130)
    if report.stopped is not None:
        for line in report.stopped.lines():
            click.echo(line, err=True)
        sys.exit(1)
    if report.counts["failed"]:
        sys.exit(3)
    if report.counts["pending"] > report.elsewhere and limit is None:
        click.echo(f"{report.counts['pending']} recipient(s) left pending.", err=True)  # why the exit is 1
        sys.exit(1)


def _segment(where: str | None, settings):
    """The parsed --where (None without one), with a warning for a field no one has."""
    if where is None:
        return None
    from newsletter.cli.subscribers import warn_unknown_fields
    from newsletter.mailing.segments import parse
    from newsletter.mailing.store import Store

    segment = parse(where)
    if segment.fields:
        store = Store(settings.subscribers)
        try:
            warn_unknown_fields(segment, store.field_names())
        finally:
            store.close()
    return segment


def _schedule(settings, issue: Path, at: str) -> None:
    from newsletter.mailing.schedule import parse_at, schedule_send

    row = schedule_send(issue, settings, str(issue), parse_at(at))
    click.echo(f"Issue {row.issue} is scheduled for {row.when()}. `newsletter send --due` (cron) or"
               " `newsletter serve` sends it then; `newsletter schedule --cancel` cancels it.")


def _send_due(settings) -> None:
    """Every due scheduled send, each reported like a send; the worst exit status."""
    from newsletter.mailing.schedule import run_due

    worst = 0
    for fired in run_due(settings):
        click.echo(f"Scheduled send of issue {fired.scheduled.issue} ({fired.scheduled.path}):")
        if fired.error is not None:
            for line in fired.error.lines():
                click.echo(line, err=True)
            worst = max(worst, 1)
            continue
        report = fired.report
        _print_report(report)
        if report.stopped is not None:
            for line in report.stopped.lines():
                click.echo(line, err=True)
        status = 1 if report.stopped or report.counts["pending"] else 3 if report.counts["failed"] else 0
        worst = max(worst, status)
    if worst:
        sys.exit(worst)


def _ask(issue: int, count: int) -> bool:
    """On a terminal, ask; anywhere else, refuse: a send is not undone."""
    if not sys.stdin.isatty():
        raise click.UsageError(f"not sending issue {issue} to {count:,} subscriber(s) without a question, and"
                               " standard input is not a terminal: pass --yes to send")
    return click.confirm(f"Send issue {issue} to {count:,} subscriber(s)?", default=False, abort=True, err=True)


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


def _print_report(report) -> None:
    counts = report.counts
    if report.recovered:
        click.echo(f"{report.recovered} message(s) were being handed to the server when the last send stopped.")
    unknown = f", {report.unknown} unknown" if report.unknown else ""
    click.echo(f"This run: {report.sent} sent, {report.failed} failed{unknown}. In all: {counts['sent']} sent, "
               f"{counts['failed']} failed, {counts['unknown']} unknown, {counts['pending']} pending"
               + (f", {counts['skipped']} skipped (unsubscribed meanwhile)." if counts["skipped"] else "."))
    _print_entries(report.failures, report.unknowns)
    if report.elsewhere:
        click.echo(f"{report.elsewhere} pending recipient(s) are being sent by another process.")
    if counts["pending"] > report.elsewhere and not report.stopped:
        click.echo("Run the same command again to send the rest.")
    elif counts["pending"]:
        click.echo("Run the same command again to send the rest once the cause is fixed.")


def _print_entries(failures, unknowns) -> None:
    if failures:
        click.echo("Failed (bounced addresses are no longer mailed; --retry-failed resends the others):")
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
    from newsletter.mailing.schedule import listing

    settings = settings_of(ctx)
    number = check_issue(issue, settings.lang, str(issue)).issue.number
    journal = Journal(settings.subscribers, number)  # opening creates or migrates the store
    try:
        counts = journal.counts()
        click.echo(f"Issue {number}: " + ", ".join(f"{counts[s]} {s}" for s in STATES))
        for part in journal.audience():  # how the audience was put together, segment by segment
            what = f'--where "{part["where"]}"' if part["where"] else {
                "first run": "everyone subscribed", "--include-new": "--include-new"}[part["how"]]
            first = "first run, " if part["how"] == "first run" else ""
            click.echo(f"Audience: {first}{what}: {part['added']} reader(s), {part['at'][:16].replace('T', ' ')} UTC")
        if (who := journal.running()) is not None:
            click.echo(f"Being sent now by {who}.")
        for row in listing(settings, number):
            click.echo(f"Scheduled for {row.when()}: {row.state}" + (f" ({row.detail})" if row.detail else ""))
        _print_entries(journal.entries("failed"), journal.entries("unknown"))
    finally:
        journal.close()


@click.command()
@click.option("--cancel", "cancel_issue", metavar="ISSUE", help="Cancel ISSUE's scheduled send (a file or a number).")
@click.pass_context
def schedule(ctx: click.Context, cancel_issue: str | None) -> None:
    """List the scheduled sends, or cancel one that has not started."""
    from newsletter.mailing.schedule import cancel, listing

    settings = settings_of(ctx)
    if cancel_issue:
        number = int(cancel_issue) if cancel_issue.isdigit() else _number(settings, Path(cancel_issue))
        row = cancel(settings, number)
        click.echo(f"Cancelled the send of issue {row.issue} scheduled for {row.when()}.")
        return
    rows = listing(settings)
    if not rows:
        click.echo("No scheduled sends.")
    for row in rows:
        click.echo(f"Issue {row.issue}  {row.when()}  {row.state}  {row.path}"
                   + (f"  ({row.detail})" if row.detail else ""))


def _number(settings, issue: Path) -> int:
    from newsletter.authoring.check import check_issue

    return check_issue(issue, settings.lang, str(issue)).issue.number


@click.group("journal")
def journal_group() -> None:
    """Keep the send journal small (one row per issue and reader)."""


@journal_group.command("prune")
@click.argument("issue", type=click.Path(path_type=Path))
@click.pass_context
def journal_prune(ctx: click.Context, issue: Path) -> None:
    """Drop the sent and skipped rows of ISSUE's finished send, keeping its totals."""
    from newsletter.authoring.check import check_issue
    from newsletter.mailing.journal import Journal

    settings = settings_of(ctx)
    number = check_issue(issue, settings.lang, str(issue)).issue.number
    journal = Journal(settings.subscribers, number)
    try:
        result = journal.prune()
    finally:
        journal.close()
    click.echo(f"Issue {number}: dropped {result['dropped']:,} row(s); kept the totals and the failed and unknown"
               " rows. `status` still shows every count.")


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
