"""``newsletter migrate --to TARGET``: the subscriber store copied whole to another
database (SQLite to PostgreSQL, or back for a backup). Thin: copy (``mailing.transfer``),
print what was copied and how to switch."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.base import settings_of


@click.command()
@click.option("--to", "target", required=True, metavar="TARGET",
              help="postgresql://user@host:port/db (an empty database; the password from NEWSLETTER_PGPASSWORD,"
                   " PGPASSWORD or ~/.pgpass), or a new SQLite file.")
@click.pass_context
def migrate(ctx: click.Context, target: str) -> None:
    """Copy the subscriber store (subscribers, consent record, journals, everything) to
    TARGET in one transaction, check the copy, and say how to switch to it."""
    from newsletter.mailing.dialects import PASSWORD_VARIABLE, is_url
    from newsletter.mailing.transfer import copy_store

    settings = settings_of(ctx)
    to: Path | str = target if is_url(target) else Path(target).resolve()
    click.echo(f"Copying {_name(settings.subscribers)} to {_name(to)}...", err=True)
    done = copy_store(settings.subscribers, to)
    width = max(len(table) for table, _ in done.tables)
    digits = max(len(f"{rows:,}") for _, rows in done.tables)
    click.echo(f"Copied {done.source} to {done.target} (schema {done.version}) in {done.seconds:.1f} s;"
               " row counts and checksums match:")
    for table, rows in done.tables:
        click.echo(f"  {table:<{width}}  {rows:>{digits},}")
    if done.skipped:
        click.echo(f"Not copied, not part of the store: {', '.join(done.skipped)}")
    password = (f" (the password from {PASSWORD_VARIABLE}, PGPASSWORD or ~/.pgpass)" if is_url(to) else "")
    click.echo(f"To switch, stop `serve` and cron, then set in newsletter.yaml{password}:\n"
               f"  subscribers: {done.target}\n"
               f"{done.source} is unchanged: keep it as a backup.")


def _name(store: Path | str) -> str:
    from newsletter.mailing.storage import store_name

    return store_name(store)
