"""``newsletter stats [ISSUE]``: what each send did and what came back, as a table for
the terminal, JSON for scripts, or a self-contained HTML report with charts. Thin:
read the numbers (``mailing.stats``), print or write them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from newsletter.cli.base import settings_of


@click.command()
@click.argument("issue", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "html"]), default="table", show_default=True,
              help="table for the terminal, json for scripts, html for a report with charts.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Write here ('-': standard output). Default: the terminal; html: build/stats[-ISSUE].html.")
@click.pass_context
def stats(ctx: click.Context, issue: str | None, fmt: str, output: Path | None) -> None:
    """Show ISSUE's deliveries, bounces, unsubscribes, complaints and clicks per link;
    without ISSUE (a number or an issue file), subscribers over time and a row per issue."""
    from newsletter.mailing.stats import IssueStats, issue_number, read_stats

    settings = settings_of(ctx)
    data = read_stats(settings.subscribers, None if issue is None else issue_number(issue), latest=fmt == "html")
    if fmt == "html":
        from newsletter.web.report import render_report

        text = render_report(settings, data)
        output = output or Path("build") / (f"stats-{data.issue}.html" if isinstance(data, IssueStats)
                                            else "stats.html")
    elif fmt == "json":
        text = json.dumps(data.as_json(), ensure_ascii=False, indent=2) + "\n"
    else:
        text = "\n".join(issue_table(data) if isinstance(data, IssueStats) else overview_table(data)) + "\n"
    if output is None or str(output) == "-":
        sys.stdout.write(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, "utf-8")
    click.echo(f"Wrote {output}" + (f"; open it in a browser (file://{output.resolve()})" if fmt == "html" else ""),
               err=True)


def issue_table(s) -> list[str]:
    """One issue, for the terminal."""
    d, n = s.deliveries, "{:,}".format
    failed = ", ".join(f"{kind} {n(count)}" for kind, count in s.failed.items() if count)
    pruned = " (journal pruned; its totals kept)" if s.pruned else ""
    lines = [f"Issue {s.issue}, sent {s.sent_at[:16].replace('T', ' ')} UTC{pruned}",
             f"  audience      {n(d['audience'])}",
             f"  delivered     {n(d['delivered'])}",
             f"  failed        {n(d['failed'])}  refused by the relay at send time" + (f": {failed}" if failed else ""),
             f"  unknown       {n(d['unknown'])}  handed over, never confirmed"]
    lines += [f"  {state:<13} {n(d[state])}" for state in ("pending", "sending", "skipped") if d[state]]
    sources = ", ".join(f"{source} {n(count)}" for source, count in s.unsubscribes["by_source"].items())
    c = s.clicks
    lines += [f"  bounced       {n(s.bounced['hard'] + s.bounced['soft'])}  bounce reports naming the issue, after"
              f" delivery: {n(s.bounced['hard'])} hard, {n(s.bounced['soft'])} soft",
              f"  unsubscribed  {n(s.unsubscribes['total'])}  through this issue" + (f": {sources}" if sources else ""),
              f"  complaints    {n(s.complaints)}",
              f"  clicks        {n(c['counted'])}  by {n(c['readers'])} reader(s); not counted: {n(c['repeat'])}"
              f" repeat, {n(c['scanner'])} scanner" + (f", {n(c['canary'])} on the hidden link" if c["canary"] else "")]
    if not s.links:
        return [*lines, "", "No tracked links (sent without tracking: {clicks: true})."]
    rows = [(str(x.link), n(x.counted), n(x.repeat), n(x.scanner), x.section, x.title or x.url) for x in s.links]
    return [*lines, "", "Clicks per link, top first:",
            *table(("#", "clicks", "repeat", "scanner", "section", "item"), rows, right=4)]


def overview_table(o) -> list[str]:
    """Subscribers over time and a row per issue, for the terminal."""
    from newsletter.mailing.stats import by_period, period_for

    n, sub = "{:,}".format, o.subscribers
    lines = [f"Subscribers: {n(sub['subscribed'])} subscribed, {n(sub['unsubscribed'])} unsubscribed,"
             f" {n(sub['bounced'])} bounced"]
    if o.growth:
        period = period_for(o.growth)
        rows = [(p.date, n(p.joined), n(p.unsubscribed), n(p.bounced), n(p.subscribed))
                for p in by_period(o.growth, period)]
        lines += ["", f"Subscribers per {period} (UTC, from the consent record):",
                  *table((f"{period} of", "joined", "unsubscribed", "bounced", "subscribed"), rows, right=5, left=1)]
    if not o.issues:
        return [*lines, "", "No issue has been sent from this subscriber store yet."]
    rows = [(str(r.issue), r.sent_at[:10], n(r.audience), n(r.delivered), n(r.failed), n(r.unknown), n(r.bounced),
             n(r.unsubscribes), n(r.complaints), n(r.clicks), n(r.readers)) for r in o.issues]
    return [*lines, "", "Issues (failed: refused at send time; bounced: bounce reports read later; clicks: counted):",
            *table(("issue", "sent", "audience", "delivered", "failed", "unknown", "bounced", "unsubscribed",
                    "complaints", "clicks", "readers"), rows, right=11, skip=(1,))]


def table(head: tuple[str, ...], rows: list[tuple[str, ...]], right: int, left: int = 0,
          skip: tuple[int, ...] = ()) -> list[str]:
    """Columns padded to their widest cell: the first ``right`` right-aligned (numbers),
    except the first ``left`` and those in ``skip``; trailing spaces are dropped."""
    widths = [max(len(row[i]) for row in (head, *rows)) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(widths[i]) if left <= i < right and i not in skip else cell.ljust(widths[i])
                 for i, cell in enumerate(row)]
        return "  " + "  ".join(cells).rstrip()

    return [line(head), *map(line, rows)]
