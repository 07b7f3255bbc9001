"""The ``newsletter`` command: one group, its commands in a module per side
(authoring, mailing, web), each thin: parse arguments, call one function, print."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli import authoring, deliverability, mailing, stats, storage, subscribers, web
from newsletter.cli.base import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="newsletter.yaml to use (default: found in this folder or a parent).")
@click.option("--debug", is_flag=True, help="Show tracebacks for every error.")
@click.version_option(package_name="newsletter")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """Write a curated newsletter as YAML; check, build, preview and send it."""
    ctx.obj = {"config": config_path, "debug": debug}


for _command in (authoring.init, authoring.check, authoring.build, authoring.new, authoring.enrich,
                 authoring.schema, authoring.import_archive,
                 web.preview, web.archive, web.serve, web.publish,
                 subscribers.subscribers, mailing.send, mailing.status, mailing.schedule, mailing.journal_group,
                 mailing.capture, deliverability.bounces, deliverability.doctor, stats.stats,
                 storage.migrate):
    main.add_command(_command)
