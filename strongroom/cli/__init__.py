"""Command line interface: ``strongroom ...``.

Each module under ``strongroom/cli/`` registers its commands on the Typer apps in
:mod:`strongroom.cli.app`; :func:`load_commands` imports every one of them (a new CLI module
needs no list entry), then the modules named by installed entry points of group
``strongroom.cli`` (e.g. ``up = "deployments.cli"``), which register their commands the same
way. Helper modules without commands are ``app``, ``common``, ``output`` and any module whose
name starts with ``_``; they are not imported here.

A run loads only the module of the command it names (:func:`load_commands_for`): ``backup X``
lives in module ``X``, other commands where :data:`COMMAND_HOMES` says, a plugin's command in the
entry point of that name. Building every command costs a third of the start-up (0.6 s), which
PostgreSQL's ``archive_command`` pays per WAL segment. A command found nowhere by these rules
still works: every module is loaded then.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from importlib.metadata import entry_points

import typer
from typer.main import get_command_name

from strongroom.cli.app import app, backup_app

ENTRY_POINT_GROUP = "strongroom.cli"
HELPER_MODULES = frozenset({"app", "common", "output"})
# The module of each top-level command or group whose name is not its module's
COMMAND_HOMES = {"init": "core", "snapshots": "core", "ls": "core", "restore": "core",
                 "verify": "core", "forget": "tiers", "prune": "tiers", "copy": "tiers",
                 "status": "tiers", "archive": "tiers", "key": "keys", "pg": "postgres"}


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


def _command_names(group: typer.Typer) -> set[str]:
    return ({info.name or get_command_name(info.callback.__name__)
             for info in group.registered_commands if info.callback}
            | {info.name for info in group.registered_groups if info.name})


def _resolves(args: list[str]) -> bool:
    """True if the commands loaded so far include the one ``args`` names."""
    if args[0] not in _command_names(app):
        return False
    return args[0] != "backup" or (len(args) > 1 and args[1] in _command_names(backup_app))


def _import_home(args: list[str]) -> bool:
    """Import the module the rules above give for ``args``; False if there is none."""
    word = args[0]
    home = args[1] if word == "backup" and len(args) > 1 else COMMAND_HOMES.get(word, word)
    if home.isidentifier() and not home.startswith("_") and home not in HELPER_MODULES:
        try:
            importlib.import_module(f"{__name__}.{home}")
            return True
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{home}":
                raise
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=word):
        try:
            importlib.import_module(ep.value.partition(":")[0])
            return True
        except Exception:  # noqa: BLE001 - load_commands says why, as for every plugin
            return False
    return False


def load_commands_for(args: list[str], debug: bool = False) -> None:
    """Register what the command line ``args`` needs: its command's module, or everything
    (no command named, ``--help``, a command the rules do not find)."""
    if args and not args[0].startswith("-") and _import_home(args) and _resolves(args):
        return
    load_commands(debug)


def main() -> None:
    """Entry point: run the app; any error becomes one line on stderr and a non-zero exit."""
    from strongroom.cli import _audit, output
    from strongroom.cli.output import run_guarded

    debug = bool(os.environ.get("STRONGROOM_DEBUG"))
    load_commands_for(sys.argv[1:], debug)
    _audit.ACTIVE = True
    code = run_guarded(app, debug=debug)
    _audit.command_ended(code, output.last_error)
    sys.exit(code)
