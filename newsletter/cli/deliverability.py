"""The deliverability commands: bounces (DSNs, complaints, mailto unsubscribes read from
a mailbox) and doctor (is the setup ready to send and be delivered). Thin: parse, call
one function, print."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.base import settings_of


@click.command()
@click.option("--maildir", type=click.Path(file_okay=False, path_type=Path), help="Read a Maildir folder.")
@click.option("--mbox", type=click.Path(dir_okay=False, path_type=Path), help="Read an mbox file.")
@click.option("--imap", metavar="URL", help="Read imaps://USER@HOST[:PORT]/MAILBOX, read-only (imap://: STARTTLS;"
              " password: NEWSLETTER_IMAP_PASSWORD).")
@click.pass_context
def bounces(ctx: click.Context, maildir: Path | None, mbox: Path | None, imap: str | None) -> None:
    """Act on bounces, complaints and unsubscribe requests in a mailbox, each message once."""
    from newsletter.errors import NewsletterError
    from newsletter.mailing import bounces as inbound
    from newsletter.mailing.tokens import secret_from_environment

    if sum(x is not None for x in (maildir, mbox, imap)) != 1:
        raise click.UsageError("give exactly one of --maildir, --mbox, --imap")
    settings = settings_of(ctx)
    secret = None
    if settings.bounces.address:  # VERP tokens are checked with the signing key
        try:
            secret = secret_from_environment()
        except NewsletterError:
            click.echo("No NEWSLETTER_SECRET: bounces named only by their VERP address are not matched.", err=True)
    source = (inbound.read_maildir(maildir) if maildir is not None else
              inbound.read_mbox(mbox) if mbox is not None else inbound.read_imap(imap))
    summary = inbound.process(settings, source, secret)
    counts = summary["counts"]
    click.echo(f"Read {sum(counts.values())} message(s): {counts['hard']} hard bounce(s), {counts['soft']} soft,"
               f" {counts['complaint']} complaint(s), {counts['unsubscribe']} unsubscribe request(s),"
               f" {counts['ignored']} other, {counts['seen before']} seen before.")
    for line in summary["changed"]:
        click.echo(f"  {line}")
    if not summary["changed"]:
        click.echo("No subscriber changed.")
    for note in summary["notes"]:
        click.echo(f"Note: {note}", err=True)


@click.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check the setup for sending and delivery: settings, DKIM key and record, SPF, DMARC."""
    import sys

    from newsletter.mailing.doctor import diagnose

    checks = diagnose(settings_of(ctx))
    marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
    for check in checks:
        click.echo(f"{marks[check.level]}  {check.name}: {check.message}")
        if check.fix and check.level != "ok":
            click.echo(f"      fix: {check.fix}")
    failed = sum(c.level == "fail" for c in checks)
    warned = sum(c.level == "warn" for c in checks)
    click.echo(f"{failed} problem(s), {warned} warning(s)." if failed or warned else "All good.")
    sys.exit(1 if failed else 0)
