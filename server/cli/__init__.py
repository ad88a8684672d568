"""The `sipang` command line (`sipang = server.cli:main`)."""

from server.cli import county, upkeep, web  # noqa: F401 - each module adds its commands
from server.cli.root import main

__all__ = ["main"]
