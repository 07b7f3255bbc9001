"""What every command module shares: the group class that turns a NewsletterError into
its message and exit status, and the workspace's settings.

The CLI is the only place that prints problems and picks exit statuses:
0 success, 1 a user error, 2 wrong usage, 3 a send with failed recipients,
130 stopped by Ctrl-C.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import click

from newsletter.errors import NewsletterError


class Group(click.Group):
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


def settings_of(ctx: click.Context):
    """The workspace's Settings: --config, or newsletter.yaml here or above."""
    from newsletter.config import find_config, load_settings

    return load_settings(find_config(Path.cwd(), ctx.obj["config"]))
