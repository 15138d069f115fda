"""Output helpers: one-line errors, JSON, rich tables and progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from strongroom.errors import StrongroomError

console = Console()
err_console = Console(stderr=True, highlight=False)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` and return an Exit to raise."""
    err_console.print(f"error: {message}", markup=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def progress_bar(label: str, total: int | None = None, enabled: bool = True
                 ) -> Iterator[Any]:
    """A byte-counting progress bar on a terminal; a no-op callback otherwise."""
    if not enabled or not sys.stdout.isatty():
        yield None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as prog:
        task = prog.add_task(label, total=total)
        yield lambda n: prog.advance(task, n)


def run_guarded(app: typer.Typer, debug: bool = False) -> int:
    """Run the app; turn every failure into ``error: ...`` on stderr and an exit code."""
    try:
        rv = app(standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        err_console.print("error: aborted", markup=False)
        return 130
    except click.ClickException as exc:
        err_console.print(f"error: {exc.format_message()}", markup=False, soft_wrap=True)
        return exc.exit_code
    except StrongroomError as exc:
        if debug:
            raise
        err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("error: interrupted", markup=False)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback
        if debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        err_console.print(f"error: unexpected {type(exc).__name__}: {first} "
                          "(set STRONGROOM_DEBUG=1 for details)", markup=False, soft_wrap=True)
        return 1
