"""The audit record of a CLI command: every command that opens a repository writes one record
when it ends (its name, its arguments without secrets, the outcome and exit code); what the
engine does inside it (snapshots written, verify results, bytes freed) folds into that record.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongroom.audit.operation import Operation, begin, end

if TYPE_CHECKING:
    from strongroom.repository import Repository

# Arguments never recorded (besides any whose name looks secret: strongroom.audit.operation).
SKIPPED = frozenset({"repo", "json", "option", "to_option", "restore_option", "otp"})
_OPEN: list[Operation] = []
ACTIVE = False  # set by the ``strongroom`` entry point: records are written when it ends


def _click_context() -> Any:
    for name in ("typer._click.globals", "click"):  # newer Typer vendors its own click
        try:
            ctx = importlib.import_module(name).get_current_context(silent=True)
        except (ImportError, AttributeError):
            continue
        if ctx is not None:
            return ctx
    return None


def _simple(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_simple(v) for v in value]
    return value


def command_opened(repo: Repository, role: str | None = None) -> Operation | None:
    """Record the running command on ``repo`` (``role``: e.g. "target" for copy's second)."""
    ctx = _click_context() if ACTIVE else None
    if ctx is None:  # not run from the command line (a test calling a command function)
        return None
    op = " ".join(ctx.command_path.split()[1:]) or "command"
    args = {k: _simple(v) for k, v in ctx.params.items()
            if k not in SKIPPED and v is not None and v is not False and v != []}
    if role:
        args["role"] = role
    operation = begin(repo, op, **args)
    _OPEN.append(operation)
    return operation


def command_ended(exit_code: int, error: str | None = None) -> None:
    """Write the records of the command's repositories (called once the command returned)."""
    operations = list(_OPEN)
    _OPEN.clear()
    if operations:
        end(operations, exit_code, error)
