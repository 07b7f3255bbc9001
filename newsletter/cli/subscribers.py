"""The subscriber commands: import, add, remove, list. Thin: parse, call one function, print."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from newsletter.cli.base import settings_of
from newsletter.errors import NewsletterError


def _store(ctx: click.Context):
    from newsletter.mailing.store import Store

    return Store(settings_of(ctx).subscribers)


@click.group()
def subscribers() -> None:
    """Manage the subscriber list (a SQLite file, `subscribers` in newsletter.yaml)."""


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
