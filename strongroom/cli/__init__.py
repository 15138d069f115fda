"""Command line interface: ``strongroom ...``.

Each module under ``strongroom/cli/`` registers its commands on the Typer apps in
:mod:`strongroom.cli.app`; :func:`load_commands` imports every one of them (a new CLI module
needs no list entry), then the modules named by installed entry points of group
``strongroom.cli`` (e.g. ``up = "deployments.cli"``), which register their commands the same
way. Helper modules without commands are ``app``, ``common``, ``output`` and any module whose
name starts with ``_``; they are not imported here.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from importlib.metadata import entry_points

from strongroom.cli.app import app

ENTRY_POINT_GROUP = "strongroom.cli"
HELPER_MODULES = frozenset({"app", "common", "output"})


def command_modules() -> list[str]:
    """Every module of this package that registers commands, by the naming rule above."""
    return sorted(f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__)
                  if not info.name.startswith("_") and info.name not in HELPER_MODULES)


def _load_plugins(debug: bool) -> None:
    """Import each ``strongroom.cli`` entry point's module. One whose imports are missing (the
    orchestration extra not installed) is skipped, so the engine's commands always work."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            importlib.import_module(ep.value.partition(":")[0])
        except ImportError as exc:
            if debug:
                print(f"note: CLI plugin {ep.name} ({ep.value}) not loaded: {exc}",
                      file=sys.stderr)
        except Exception as exc:  # a broken plugin must not take restore away
            print(f"warning: CLI plugin {ep.name} ({ep.value}) failed to load: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)


def load_commands(debug: bool = False) -> None:
    """Register every command: this package's modules, then the installed plugins."""
    for name in command_modules():
        importlib.import_module(name)
    _load_plugins(debug)


def main() -> None:
    """Entry point: run the app; any error becomes one line on stderr and a non-zero exit."""
    from strongroom.cli import _audit, output
    from strongroom.cli.output import run_guarded

    debug = bool(os.environ.get("STRONGROOM_DEBUG"))
    load_commands(debug)
    _audit.ACTIVE = True
    code = run_guarded(app, debug=debug)
    _audit.command_ended(code, output.last_error)
    sys.exit(code)
