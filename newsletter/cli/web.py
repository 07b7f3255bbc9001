"""The web commands: preview, archive, serve. Thin: parse, call one function, print."""

from __future__ import annotations

import gc
from pathlib import Path

import click

from newsletter.cli.base import settings_of
from newsletter.errors import NewsletterError


@click.command()
@click.argument("issue", type=click.Path(path_type=Path))
@click.option("--port", default=8800, show_default=True, type=click.IntRange(0, 65535), help="Port on 127.0.0.1.")
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in the browser.")
@click.pass_context
def preview(ctx: click.Context, issue: Path, port: int, open_browser: bool) -> None:
    """Serve a live preview of ISSUE on localhost, updating on every save."""
    from newsletter.config import find_config
    from newsletter.web.preview import serve_preview

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


@click.command()
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("site"), show_default=True, help="Folder to write the site into.")
@click.pass_context
def archive(ctx: click.Context, out_dir: Path) -> None:
    """Write the static archive: an index, every issue's page, an Atom feed."""
    from newsletter.web.archive import build_archive

    settings = settings_of(ctx)
    changed = build_archive(settings, out_dir)
    for path in changed:
        click.echo(str(path))
    feed = "" if settings.base_url else " (no feed: set base_url in newsletter.yaml for one)"
    if changed.unlisted:
        click.echo(f"{len(changed.unlisted)} issue(s) written unlisted: not yet published"
                   f" ({', '.join(map(str, changed.unlisted))}; a send publishes its issue,"
                   " `newsletter publish ISSUE` one sent elsewhere)", err=True)
    click.echo(f"Archive in {out_dir}/: {len(changed)} file(s) changed{feed}. Open {out_dir / 'index.html'}.",
               err=True)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--proxy-headers", is_flag=True,
              help="Behind a reverse proxy: take the client's address from X-Forwarded-For (sent by 127.0.0.1).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, proxy_headers: bool) -> None:
    """Serve the archive, one-click unsubscribe and confirmed sign-up."""
    import socket

    import uvicorn

    from newsletter.mailing.tokens import secret_from_environment
    from newsletter.web.serve import create_app

    gc.enable()
    settings = settings_of(ctx)
    secret = secret_from_environment()
    site = settings.root / "site"
    site.mkdir(parents=True, exist_ok=True)  # served at once; a thread brings it up to date (web/refresh.py)
    with socket.socket() as probe:  # a clear message for a busy port, before uvicorn starts
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise NewsletterError(f"{host}:{port} is busy ({e.strerror})", hint="pass --port N") from None
    click.echo(f"Serving {site}/ with unsubscribe and sign-up at http://{host}:{port}/ (Ctrl-C stops)")
    # uvicorn believes X-Forwarded-For from 127.0.0.1 by default; anyone could send it.
    uvicorn.run(create_app(settings, secret, site), host=host, port=port, log_level="warning",
                access_log=False, server_header=False, proxy_headers=proxy_headers)


@click.command()
@click.argument("issue")
@click.pass_context
def publish(ctx: click.Context, issue: str) -> None:
    """List ISSUE (a number or an issue file) in the archive's index and feed: for an issue
    sent elsewhere (a send publishes its issue itself)."""
    from newsletter.web.published import publish as mark_published

    settings = settings_of(ctx)
    if issue.isdigit():
        number = int(issue)
    else:
        from newsletter.authoring.check import check_issue

        number = check_issue(Path(issue), settings.lang, issue).issue.number
    new = mark_published(settings, number)
    click.echo(f"Issue {number} {'is now' if new else 'was already'} published; `newsletter archive` lists it"
               " (`newsletter serve` does on its own).")
