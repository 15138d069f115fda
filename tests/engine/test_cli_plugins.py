"""The engine CLI finds its command modules by itself and loads plugins from entry points of
group ``strongroom.cli``; a plugin whose imports are missing never takes the engine's commands
away."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import strongroom.cli as cli


def test_every_command_module_is_loaded_and_helpers_are_not() -> None:
    names = {name.rsplit(".", 1)[-1] for name in cli.command_modules()}
    assert {"core", "keys", "tiers"} <= names
    assert not names & {"app", "common", "output"}
    assert not any(name.startswith("_") for name in names)


def _plugin_path(tmp_path: Path) -> Path:
    """A directory holding an installed distribution with three CLI entry points: one that
    registers a command, one whose module is missing, one that fails while importing."""
    dist = tmp_path / "toy_plugin-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(
        "[strongroom.cli]\ntoy = toy_cli\nmissing = no_such_module_for_strongroom\n"
        "broken = toy_broken_cli\n")
    (tmp_path / "toy_cli.py").write_text(
        "from strongroom.cli.app import app\n\n\n@app.command('toy-hello')\n"
        "def hello() -> None:\n    print('hello from a plugin')\n")
    (tmp_path / "toy_broken_cli.py").write_text("raise RuntimeError('plugin bug')\n")
    return tmp_path


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(filter(None, [str(_plugin_path(tmp_path)),
                                         os.environ.get("PYTHONPATH")]))
    return subprocess.run(["strongroom", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": path, **env})


def test_entry_point_plugins_add_commands_and_missing_ones_are_skipped(tmp_path: Path) -> None:
    proc = _run(tmp_path, "toy-hello")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello from a plugin"
    assert "no_such_module" not in proc.stderr  # a missing extra is silent...
    assert proc.stderr.strip() == ("warning: CLI plugin broken (toy_broken_cli) failed to load: "
                                   "RuntimeError: plugin bug")  # ...a broken plugin is not


def test_missing_plugin_is_noted_under_debug(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--help", STRONGROOM_DEBUG="1")
    assert proc.returncode == 0
    assert "note: CLI plugin missing (no_such_module_for_strongroom) not loaded" in proc.stderr
    assert "toy-hello" in proc.stdout and "restore" in proc.stdout
