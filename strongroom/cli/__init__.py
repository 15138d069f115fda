"""Command line interface: ``strongroom ...``.

Each module under ``strongroom/cli/`` registers its commands on the Typer apps in
:mod:`strongroom.cli.app`; this package imports them all, then runs the app with one-line errors.
"""

from __future__ import annotations

import importlib
import os
import sys

from strongroom.cli.app import app

# Modules that register commands. Add yours here (one line), keep the commands in your module.
COMMAND_MODULES = [
    "strongroom.cli.core",
    "strongroom.cli.keys",
    "strongroom.cli.up",
    "strongroom.cli.postgres",
    "strongroom.cli.tiers",
    "strongroom.cli.redis",
    "strongroom.cli.s3bucket",
    "strongroom.cli.neo4j",
]


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def main() -> None:
    """Entry point: run the app; any error becomes one line on stderr and a non-zero exit."""
    from strongroom.cli.output import run_guarded

    _load_commands()
    sys.exit(run_guarded(app, debug=bool(os.environ.get("STRONGROOM_DEBUG"))))
