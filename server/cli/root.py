"""The `sipang` command group and the `--instance` option its commands share."""

import functools
from pathlib import Path

import click

from server import create_app

INSTANCE_HELP = "Instance folder (database, secrets, keys). Default ./instance or $SIPANG_INSTANCE."


def with_app(command):
    """Give a command an `--instance` option and run it inside that instance's app."""

    @click.option(
        "--instance",
        "instance",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="SIPANG_INSTANCE",
        default="instance",
        show_default=True,
        help=INSTANCE_HELP,
    )
    @functools.wraps(command)
    def run(instance: Path, **kwargs):
        app = create_app({"INSTANCE_PATH": str(instance)})
        with app.app_context():
            return command(app, **kwargs)

    return run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sipang")
def main() -> None:
    """Sipang (四旁): village trees into carbon credits, with the farmers paid T+1."""
