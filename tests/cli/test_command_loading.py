"""A run loads only the module of the command it names (start-up time: PostgreSQL's
archive_command starts ``strongroom pg wal-push`` once per WAL segment), and every command is
found by the rules of :mod:`strongroom.cli`, so none falls back to loading everything."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
from typer.main import get_command_name

import strongroom.cli as cli
from strongroom.cli.app import app


def _modules(group) -> set[str]:
    return {info.callback.__module__ for info in group.registered_commands if info.callback}


def test_every_command_lives_where_the_rules_look() -> None:
    cli.load_commands()
    plugins = {ep.name: ep.value.partition(":")[0]
               for ep in entry_points(group=cli.ENTRY_POINT_GROUP)}
    for info in app.registered_commands:
        name = info.name or get_command_name(info.callback.__name__)
        home = f"strongroom.cli.{cli.COMMAND_HOMES.get(name, name)}"
        module = info.callback.__module__
        assert module in (home, plugins.get(name)), (
            f"command {name!r} is in {module}: add it to COMMAND_HOMES")
    for group in app.registered_groups:
        commands = group.typer_instance.registered_commands
        if group.name == "backup":
            for info in commands:
                assert info.callback.__module__ == f"strongroom.cli.{info.name}", info.name
        else:
            home = f"strongroom.cli.{cli.COMMAND_HOMES.get(group.name, group.name)}"
            assert _modules(group.typer_instance) == {home}, group.name


def _loaded_for(*args: str) -> list[str]:
    code = ("import json, sys\n"
            "from strongroom.cli import load_commands_for\n"
            "load_commands_for(sys.argv[1:])\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('strongroom.cli.')"
            " or m.startswith('deployments.'))))\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, check=True)
    helpers = {"strongroom.cli.app", "strongroom.cli.common", "strongroom.cli.output"}
    return [m for m in json.loads(proc.stdout)
            if m not in helpers and not m.startswith("strongroom.cli._")]


@pytest.mark.parametrize(("args", "modules"), [
    (["snapshots", "--json"], ["strongroom.cli.core"]),
    (["backup", "files", "/x"], ["strongroom.cli.core", "strongroom.cli.files"]),  # imports
    (["pg", "wal-push", "x"], ["strongroom.cli.postgres"]),
    (["key", "list"], ["strongroom.cli.keys", "strongroom.cli.mfa"]),  # imports mfa
    (["audit"], ["strongroom.cli.audit"]),
])
def test_a_command_loads_only_its_module(args: list[str], modules: list[str]) -> None:
    assert _loaded_for(*args) == modules


@pytest.mark.parametrize("args", [[], ["--help"], ["backup"], ["backup", "--help"],
                                  ["no-such-command"], ["backup", "no-such-kind"]])
def test_help_and_unknown_commands_load_everything(args: list[str]) -> None:
    loaded = _loaded_for(*args)
    assert set(cli.command_modules()) <= set(loaded)
