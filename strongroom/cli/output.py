"""Output helpers: one-line errors, JSON, tables and progress bars.

On a terminal, output is rich (tables, colours, bars). Anywhere else (a pipe, a file, a log)
it is plain text that is never cut or wrapped at any width, like restic's: whole ids and paths
on one line each, tables as space-aligned columns.
"""

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
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

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

last_error: str | None = None  # the last ``error:`` line's message (for the audit record)

# Wide enough that nothing is ever cut; soft_wrap: no line is ever broken either.
PLAIN_WIDTH = 1_000_000


def is_terminal(stream: Any) -> bool:
    """True if ``stream`` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def make_console(stderr: bool = False, highlight: bool = True) -> Console:
    """A rich console on a terminal; a plain, unbounded-width one anywhere else."""
    if is_terminal(sys.stderr if stderr else sys.stdout):
        return Console(stderr=stderr, highlight=highlight)
    return Console(stderr=stderr, highlight=False, width=PLAIN_WIDTH, soft_wrap=True,
                   no_color=True, emoji=False)


console = make_console()
err_console = make_console(stderr=True, highlight=False)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """A rich table on a terminal; plain space-aligned columns, never cut, elsewhere."""
    if console.is_terminal:
        table = Table(*headers)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    for line in [headers, ["-" * w for w in widths], *rows]:
        sys.stdout.write("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)
                                   ).rstrip() + "\n")


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
    global last_error
    last_error = message
    err_console.print(f"error: {message}", markup=False, soft_wrap=True)
    return typer.Exit(code)


class ByteProgress:
    """The callback a progress bar hands to the engine (``progress(n_bytes)``), and the way to
    tell the bar its total once it is known (a first pass, or the parent snapshot's size)."""

    def __init__(self, prog: Progress, task: Any) -> None:
        self._prog, self._task = prog, task

    def _state(self) -> Any:
        return next(t for t in self._prog.tasks if t.id == self._task)

    def __call__(self, n: int) -> None:
        self._prog.advance(self._task, n)
        task = self._state()
        if task.total is not None and task.completed > task.total:  # an estimate ran short
            self._prog.update(self._task, total=task.completed)

    def set_total(self, total: int | None) -> None:
        """Known total bytes (None: unknown, the bar then shows only what was done)."""
        task = self._state()
        self._prog.update(self._task, total=None if total is None else max(total,
                                                                            task.completed))


@contextmanager
def progress_bar(label: str, total: int | None = None, enabled: bool = True
                 ) -> Iterator[ByteProgress | None]:
    """A byte-counting progress bar on a terminal (with percentage and time left once the
    total is known); None otherwise."""
    if not enabled or not is_terminal(sys.stdout):
        yield None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as prog:
        yield ByteProgress(prog, prog.add_task(label, total=total or None))


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
        global last_error
        last_error = str(exc)
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
