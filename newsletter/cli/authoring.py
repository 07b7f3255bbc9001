"""The authoring commands: check, build, new, schema. Thin: parse, call one function, print."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from newsletter.cli.base import settings_of
from newsletter.errors import NewsletterError


@click.command()
@click.argument("issues", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def check(ctx: click.Context, issues: tuple[Path, ...]) -> None:
    """Check issue files; print every problem as FILE:LINE:COL: message."""
    from newsletter.authoring.build import review_issue
    from newsletter.authoring.render import Renderer
    from newsletter.errors import Invalid

    settings = settings_of(ctx)
    renderer = Renderer(settings)
    failed = False
    for path in issues:
        try:
            warnings = review_issue(path, settings, renderer, display=str(path), email_only=True).warnings
        except Invalid as e:
            failed = True
            for line in e.lines():
                click.echo(line, err=True)
            continue
        except NewsletterError as e:
            failed = True
            click.echo("\n".join(e.lines()), err=True)
            continue
        for warning in warnings:
            click.echo(str(warning), err=True)
        note = f" ({len(warnings)} warning(s))" if warnings else ""
        click.echo(f"{path}: ok{note}")
    if failed:
        sys.exit(1)


@click.command()
@click.argument("issue", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build"), show_default=True, help="Folder to write into.")
@click.pass_context
def build(ctx: click.Context, issue: Path, out_dir: Path) -> None:
    """Write DIR/<number>/email.html, email.txt and index.html for ISSUE."""
    from newsletter.authoring.build import review_issue, write_issue

    settings = settings_of(ctx)
    reviewed = review_issue(issue, settings, display=str(issue))
    for warning in reviewed.warnings:
        click.echo(str(warning), err=True)
    files = write_issue(reviewed, settings, out_dir)
    for f in files[:3]:
        click.echo(str(f))
    size = reviewed.rendered.html_size / 1024
    click.echo(f"Built issue {reviewed.rendered.issue.number} ({size:.1f} KB of email HTML). "
               f"Open {files[0]} in a browser.", err=True)


@click.command()
@click.pass_context
def new(ctx: click.Context) -> None:
    """Write the next issue file (next number, today's date) and print its path."""
    from newsletter.authoring.scaffold import new_issue

    path = new_issue(settings_of(ctx), dt.date.today())
    click.echo(str(path))


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="My Newsletter", show_default=True, help="The newsletter's name.")
def init(folder: Path, name: str) -> None:
    """Create a fresh workspace in FOLDER: settings, layouts, an empty issues/."""
    from newsletter.authoring.workspace import init_workspace

    for path in init_workspace(folder, name):
        click.echo(str(path))
    click.echo(f"Fill in {folder / 'newsletter.yaml'}, then `cd {folder}` and `newsletter new`.", err=True)


@click.command()
def schema() -> None:
    """Print the issue format as JSON Schema (for editors)."""
    from newsletter.authoring.scaffold import schema_text

    click.echo(schema_text(), nl=False)
