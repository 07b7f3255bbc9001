"""The authoring commands: check, build, new, enrich, schema. Thin: parse, call one function, print."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from newsletter.cli.base import settings_of
from newsletter.errors import NewsletterError


@click.command()
@click.argument("issues", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--links", is_flag=True, help="Also fetch every link: broken ones are errors, redirects notes.")
@click.pass_context
def check(ctx: click.Context, issues: tuple[Path, ...], links: bool) -> None:
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
        if links and not _links_answer(path, settings):
            failed = True
            continue
        note = f" ({len(warnings)} warning(s))" if warnings else ""
        click.echo(f"{path}: ok{note}")
    if failed:
        sys.exit(1)


def _links_answer(path: Path, settings) -> bool:
    """`check --links`: print the broken links and the redirects of ``path``; True if none is broken."""
    from newsletter.authoring.linkcheck import check_links

    report = check_links(path, settings, str(path))
    for line in report.lines():
        click.echo(line, err=True)
    click.echo(f"{path}: {report.checked} link(s) fetched, {len(report.errors)} broken, "
               f"{len(report.notes)} redirected", err=True)
    return not report.errors


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
@click.option("--links", "links_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A text file of URLs (under '## featured'-style headings, optionally) to draft from.")
@click.option("--feed", "feeds", multiple=True, metavar="URL",
              help="An RSS or Atom feed: its entries since the previous issue become items (repeatable).")
@click.pass_context
def new(ctx: click.Context, links_file: Path | None, feeds: tuple[str, ...]) -> None:
    """Write the next issue file (next number, today's date) and print its path.

    With --links or --feed: a draft with those links as items, enriched, each with
    'summary: TODO' for you to write. Exit 1 if some link could not be filled.
    """
    settings = settings_of(ctx)
    if links_file is None and not feeds:
        from newsletter.authoring.scaffold import new_issue

        click.echo(str(new_issue(settings, dt.date.today())))
        return
    from newsletter.authoring.drafts import draft_issue

    draft = draft_issue(settings, dt.date.today(), links_file, feeds)
    click.echo(str(draft.path))
    _report(draft.report, f"{draft.links} item(s); now write each 'summary: TODO' and the title")


@click.command()
@click.argument("issue", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Also replace what the file already says with what the pages say.")
@click.pass_context
def enrich(ctx: click.Context, issue: Path, force: bool) -> None:
    """Fill in missing titles, sources, link cards and arXiv papers from the linked pages.

    Edits ISSUE in place, keeping its comments and layout; what you wrote stays unless
    --force. Lists every link that could not be filled (exit 1).
    """
    from newsletter.authoring.enrich import enrich_issue

    report = enrich_issue(issue, settings_of(ctx), force=force, display=str(issue))
    _report(report, f"{issue}: {report.filled} value(s) filled in {report.items} item(s)")


def _report(report, summary: str) -> None:
    """Print what could not be filled (and redirects), then the summary; exit 1 on failures."""
    for problem in report.problems:
        click.echo(str(problem), err=True)
    failed = sum(not p.warning for p in report.problems)
    note = f"; {failed} could not be filled" if failed else ""
    click.echo(f"{summary}{note} ({report.requests} request(s))", err=True)
    if failed:
        sys.exit(1)


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="My Newsletter", show_default=True, help="The newsletter's name.")
def init(folder: Path, name: str) -> None:
    """Create a fresh workspace in FOLDER: settings, layouts, an empty issues/."""
    from newsletter.authoring.workspace import init_workspace

    for path in init_workspace(folder, name):
        click.echo(str(path))
    click.echo(f"Fill in {folder / 'newsletter.yaml'}, then `cd {folder}` and `newsletter new`.", err=True)


@click.command("import-archive")
@click.argument("source", type=click.Path(path_type=Path))
@click.pass_context
def import_archive(ctx: click.Context, source: Path) -> None:
    """Turn past issues written in Markdown (one .md file an issue) into issue files in issues/.

    SOURCE is a folder of .md files, or one. Everything is checked first: an error in any
    file writes nothing (exit 1). Existing issue files are never overwritten.
    """
    from newsletter.authoring.importarchive import import_archive as run

    done = run(settings_of(ctx), source, str(source))
    for line in [*map(str, done.warnings), *done.skipped]:
        click.echo(line, err=True)
    for path in done.written:
        click.echo(str(path))
    summary = f"{len(done.written)} issue(s) written to issues/, {done.images} image(s) copied"
    summary += f", {len(done.skipped)} file(s) skipped" if done.skipped else ""
    if done.unnamed:
        summary += (f"; {done.unnamed} arXiv item(s) have no paper title: `newsletter enrich` on their issues "
                    "fills the papers")
    click.echo(summary, err=True)


@click.command()
def schema() -> None:
    """Print the issue format as JSON Schema (for editors)."""
    from newsletter.authoring.scaffold import schema_text

    click.echo(schema_text(), nl=False)
