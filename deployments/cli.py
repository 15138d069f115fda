"""``strongroom up``: the embedded default (local Prefect server, demo platform, UI address).

The orchestration layer adds this command to the engine's CLI through the ``strongroom.cli``
entry-point group (``up = "deployments.cli"``); the engine itself never imports prefect. Prefect
is imported only once the command runs, after the stack's environment is in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strongroom.cli.app import app
from strongroom.errors import NotSupported


@app.command("up")
def up_command(
    state_dir: Annotated[Path | None, typer.Option(
        "--state-dir", help="Where the server's SQLite database, logs and demo data live "
        "(default: $XDG_STATE_HOME/strongroom or ~/.local/state/strongroom).")] = None,
    port: Annotated[int, typer.Option("--port", help="Loopback port for the API and UI "
                                      "(0: any free port).")] = 4200,
    once: Annotated[bool, typer.Option("--once", help="Stop after the demo backup and "
                                       "recovery instead of waiting for Ctrl-C.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="Serve this platform file "
                                                "instead of the demo.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse a platform file whose "
                                         "schedules cannot meet a source's RPO.")] = False,
) -> None:
    """Start a local Prefect server with Strongroom's flows, run a demo backup and recovery.

    Other shells find the server with the export PREFECT_API_URL=... line printed first, or
    through the Prefect profile strongroom-local (prefect profile use strongroom-local)."""
    import importlib.util

    # Look for prefect without importing it: its settings are read at import time, and the
    # stack's environment (API URL, PREFECT_HOME) must be in place first.
    if importlib.util.find_spec("prefect") is None:
        raise NotSupported("strongroom up needs the orchestration extra (prefect is missing): "
                           "pip install -e '.[orchestration]'")
    from deployments.up import up

    code = up(state_dir, port=port, once=once, config_path=config, as_json=as_json,
              strict=strict)
    if code:
        raise typer.Exit(code)
