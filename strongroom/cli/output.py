"""Output helpers: one-line errors, JSON, rich tables and progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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

# Typer up to 0.2x raises click's exceptions; newer Typer vendors its own copy of click (with
# typer.Exit, typer.Abort and TyperException as the public names). Catch whichever we get.
_EXIT: tuple[type[BaseException], ...] = (typer.Exit,)
_ABORT: tuple[type[BaseException], ...] = (typer.Abort,)
_USAGE: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(typer, "TyperException", None),) if t is not None)
try:
    import click
except ImportError:  # pragma: no cover - only with a Typer that no longer needs click
    pass
else:
    _EXIT += (click.exceptions.Exit,)
    _ABORT += (click.exceptions.Abort,)
    _USAGE += (click.ClickException,)

console = Console()
err_console = Console(stderr=True, highlight=False)


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


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
        if rv == 130:  # newer Typer turns Ctrl-C into a quiet exit code 130
            err_console.print("error: interrupted", markup=False)
        return rv if isinstance(rv, int) else 0
    except _EXIT as exc:
        return exc.exit_code  # type: ignore[attr-defined]
    except _ABORT:
        err_console.print("error: aborted", markup=False)
        return 130
    except _USAGE as exc:
        message = exc.format_message()  # type: ignore[attr-defined]
        if message:  # empty when the help was shown instead (no arguments at all)
            err_console.print(f"error: {message}", markup=False, soft_wrap=True)
        return exc.exit_code  # type: ignore[attr-defined]
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
