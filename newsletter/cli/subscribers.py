"""The subscriber commands: import, add, remove, list. Thin: parse, call one function, print."""

from __future__ import annotations

import os
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
    from newsletter.mailing.importing import CsvRows, Row

    display = str(csv_file)
    if strict:  # a first pass that only checks, so that a bad file changes nothing at all
        with CsvRows(csv_file, display) as rows:
            bad = 0
            for item in rows:
                if not isinstance(item, Row):
                    bad += 1
                    click.echo(str(item), err=True)
        if bad:
            click.echo(f"{csv_file}: {bad} bad row(s); nothing imported (--strict)", err=True)
            sys.exit(1)
    skipped = 0

    def good(rows: CsvRows):
        nonlocal skipped
        for item in rows:
            if isinstance(item, Row):
                yield item[1:]  # email, name, fields, status, created_at, updated_at
            elif strict:  # it was good a moment ago: raising rolls the import back
                raise NewsletterError(f"{item}; {csv_file} changed while it was imported, nothing imported")
            else:
                skipped += 1
                click.echo(f"{item} (row skipped)", err=True)

    with CsvRows(csv_file, display) as rows:
        store = _store(ctx)
        try:  # one transaction, streamed: every row or, on any error, none
            counts = store.add_many(good(rows), source=f"import {csv_file.name}")
        finally:
            store.close()
    summary = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
    click.echo(f"{csv_file}: {summary or 'no rows'}" + (f"; {skipped} row(s) skipped" if skipped else ""))
    if skipped:
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
    """Print every subscriber with status and dates; `import` reads it back as it was."""
    from newsletter.mailing.importing import RESERVED

    store = _store(ctx)
    try:
        with store.listing() as (names, people):
            # Imports before status and dates had columns stored them as fields: never listed twice.
            columns = [n for n in names if n.lower() not in RESERVED]
            if len(columns) < len(names):
                people = (p._replace(fields={k: v for k, v in p.fields.items() if k.lower() not in RESERVED})
                          for p in people)
            if fmt == "json":
                _write_json(people, sys.stdout)
            else:
                _write_csv(columns, people, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head` has read enough: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        store.close()


def _write_json(people, out) -> None:
    """A JSON array, one subscriber a line, written as the rows come."""
    import json

    out.write("[")
    separator = "\n"
    for p in people:
        out.write(separator + json.dumps(p._asdict(), ensure_ascii=False))
        separator = ",\n"
    out.write("]\n" if separator == "\n" else "\n]\n")


def _write_csv(columns: list[str], people, out) -> None:
    """A column for every field any subscriber has, then a line for each subscriber; cells
    a spreadsheet would run as formulas are defused (and `import` undoes that)."""
    import csv

    from newsletter.mailing.importing import defuse

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "name", "status", "created_at", "updated_at", *columns])
    for p in people:
        row = [p.email, p.name, p.status, p.created_at, p.updated_at, *(p.fields.get(c, "") for c in columns)]
        writer.writerow([defuse(v) for v in row])
