"""The ``newsletter`` command. Thin: parse arguments, call one function, print.

This is the only place that prints problems and picks exit statuses:
0 success, 1 a user error, 2 wrong usage, 3 a send with failed recipients.
"""

from __future__ import annotations

import datetime as dt
import gc
import sys
from pathlib import Path

import click

from newsletter.errors import NewsletterError


class _Group(click.Group):
    """Turns every NewsletterError into its message on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        # The cyclic garbage collector runs dozens of times while a command imports its
        # libraries and frees nothing: off for short commands (6% of `check`); the
        # long-running ones (send, serve, preview, capture) turn it back on.
        gc.disable()
        try:
            return super().invoke(ctx)
        except NewsletterError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            for line in e.lines():
                click.echo(line, err=True)
            sys.exit(e.exit_code)
        finally:
            gc.enable()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="newsletter.yaml to use (default: found in this folder or a parent).")
@click.option("--debug", is_flag=True, help="Show tracebacks for every error.")
@click.version_option(package_name="newsletter")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """Write a curated newsletter as YAML; check, build, preview and send it."""
    ctx.obj = {"config": config_path, "debug": debug}


def settings_of(ctx: click.Context):
    """The workspace's Settings: --config, or newsletter.yaml here or above."""
    from newsletter.config import find_config, load_settings

    return load_settings(find_config(Path.cwd(), ctx.obj["config"]))


@main.command()
@click.argument("issues", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def check(ctx: click.Context, issues: tuple[Path, ...]) -> None:
    """Check issue files; print every problem as FILE:LINE:COL: message."""
    from newsletter.build import review_issue
    from newsletter.errors import Invalid
    from newsletter.render import Renderer

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


@main.command()
@click.argument("issue", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build"), show_default=True, help="Folder to write into.")
@click.pass_context
def build(ctx: click.Context, issue: Path, out_dir: Path) -> None:
    """Write DIR/<number>/email.html, email.txt and index.html for ISSUE."""
    from newsletter.build import review_issue, write_issue

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


@main.command()
@click.pass_context
def new(ctx: click.Context) -> None:
    """Write the next issue file (next number, today's date) and print its path."""
    from newsletter.scaffold import new_issue

    path = new_issue(settings_of(ctx), dt.date.today())
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

    gc.enable()
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


@main.command()
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("site"), show_default=True, help="Folder to write the site into.")
@click.pass_context
def archive(ctx: click.Context, out_dir: Path) -> None:
    """Write the static archive: an index, every issue's page, an Atom feed."""
    from newsletter.archive import build_archive

    settings = settings_of(ctx)
    changed = build_archive(settings, out_dir)
    for path in changed:
        click.echo(str(path))
    feed = "" if settings.base_url else " (no feed: set base_url in newsletter.yaml for one)"
    click.echo(f"Archive in {out_dir}/: {len(changed)} file(s) changed{feed}. Open {out_dir / 'index.html'}.",
               err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the archive, one-click unsubscribe and confirmed sign-up."""
    import socket

    import uvicorn

    from newsletter.archive import build_archive
    from newsletter.tokens import secret_from_environment
    from newsletter.web import create_app

    gc.enable()
    settings = settings_of(ctx)
    secret = secret_from_environment()
    site = settings.root / "site"
    build_archive(settings, site)
    with socket.socket() as probe:  # a clear message for a busy port, before uvicorn starts
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise NewsletterError(f"{host}:{port} is busy ({e.strerror})", hint="pass --port N") from None
    click.echo(f"Serving {site}/ with unsubscribe and sign-up at http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(create_app(settings, secret, site), host=host, port=port, log_level="warning",
                access_log=False, server_header=False)


def _register_mailing_commands() -> None:
    from newsletter.cli_mail import capture, send, status, subscribers

    for command in (subscribers, send, status, capture):
        main.add_command(command)


_register_mailing_commands()
