"""The ``newsletter`` command. Thin: parse arguments, call one function, print.

This is the only place that prints problems and picks exit statuses:
0 success, 1 a user error, 2 wrong usage, 3 a send with failed recipients.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from newsletter.errors import NewsletterError


class _Group(click.Group):
    """Turns every NewsletterError into its message on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NewsletterError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            for line in e.lines():
                click.echo(line, err=True)
            sys.exit(e.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="newsletter.yaml to use (default: found in this folder or a parent).")
@click.option("--debug", is_flag=True, help="Show tracebacks for every error.")
@click.version_option(package_name="newsletter")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """Write a curated newsletter as YAML; check, build, preview and send it."""
    ctx.obj = {"config": config_path, "debug": debug}


def _settings(ctx: click.Context):
    from newsletter.config import find_config, load_settings

    return load_settings(find_config(Path.cwd(), ctx.obj["config"]))


@main.command()
@click.argument("issues", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def check(ctx: click.Context, issues: tuple[Path, ...]) -> None:
    """Check issue files; print every problem as FILE:LINE:COL: message."""
    from newsletter.build import check_file
    from newsletter.errors import Invalid
    from newsletter.render import Renderer

    settings = _settings(ctx)
    renderer = Renderer(settings)
    failed = False
    for path in issues:
        try:
            warnings = check_file(path, settings, renderer, display=str(path))
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


@main.command()
@click.argument("issue", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build"), show_default=True, help="Folder to write into.")
@click.pass_context
def build(ctx: click.Context, issue: Path, out_dir: Path) -> None:
    """Write DIR/<number>/email.html, email.txt and index.html for ISSUE."""
    from newsletter.build import review_issue, write_issue

    settings = _settings(ctx)
    reviewed = review_issue(issue, settings, display=str(issue))
    for warning in reviewed.warnings:
        click.echo(str(warning), err=True)
    files = write_issue(reviewed, settings, out_dir)
    for f in files[:3]:
        click.echo(str(f))
    size = reviewed.rendered.html_size / 1024
    click.echo(f"Built issue {reviewed.rendered.issue.number} ({size:.1f} KB of email HTML). "
               f"Open {files[0]} in a browser.", err=True)


@main.command()
@click.pass_context
def new(ctx: click.Context) -> None:
    """Write the next issue file (next number, today's date) and print its path."""
    from newsletter.scaffold import new_issue

    path = new_issue(_settings(ctx), dt.date.today())
    click.echo(str(path))


@main.command()
def schema() -> None:
    """Print the issue format as JSON Schema (for editors)."""
    from newsletter.scaffold import schema_text

    click.echo(schema_text(), nl=False)


@main.command()
@click.argument("issue", type=click.Path(path_type=Path))
@click.option("--port", default=8800, show_default=True, type=click.IntRange(0, 65535), help="Port on 127.0.0.1.")
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in the browser.")
@click.pass_context
def preview(ctx: click.Context, issue: Path, port: int, open_browser: bool) -> None:
    """Serve a live preview of ISSUE on localhost, updating on every save."""
    from newsletter.config import find_config
    from newsletter.preview import serve_preview

    config = find_config(Path.cwd(), ctx.obj["config"]).resolve()

    def ready(url: str) -> None:
        click.echo(f"Previewing {issue} at {url} (Ctrl-C stops)")
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    try:
        serve_preview(issue.resolve(), config, port, ready, display=str(issue))
    except KeyboardInterrupt:
        click.echo("Stopped.")
