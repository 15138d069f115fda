"""``strongroom --version`` prints the installed version and exits 0."""

from __future__ import annotations

from importlib.metadata import version

from typer.testing import CliRunner

from strongroom.cli import app, load_commands


def test_version(cli) -> None:
    for flag in ("--version", "-V"):
        proc = cli(flag)
        assert proc.stdout.startswith(f"strongroom {version('strongroom')} (Python ")
        assert proc.stderr == ""


def test_version_wins_over_a_command() -> None:
    load_commands()
    result = CliRunner().invoke(app, ["--version", "snapshots"])
    assert result.exit_code == 0 and result.output.startswith("strongroom ")
