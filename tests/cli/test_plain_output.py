"""Output that is not a terminal is plain text that is never cut or wrapped at 80 (or
$COLUMNS) columns: whole names, ids and paths on one line each, like restic's."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import one_line_error

LONG = "a-source-name-far-longer-than-any-terminal-" + "x" * 150


def test_snapshots_and_ls_are_never_cut(cli, tmp_path: Path) -> None:
    deep = tmp_path / "src" / ("folder-with-a-long-name-" * 6).rstrip("-")
    deep.mkdir(parents=True)
    (deep / ("file-" * 30 + ".txt")).write_text("x")
    cli("init")
    snap = json.loads(cli("backup", "files", str(tmp_path / "src"), "--name", LONG,
                          "--tag", "t" * 90, "--json").stdout)
    out = cli("snapshots").stdout  # COLUMNS=40 in the environment changes nothing
    assert "…" not in out and "\x1b[" not in out
    row = next(line for line in out.splitlines() if line.startswith(snap["short_id"]))
    assert f"{LONG} (files)" in row and "t" * 90 in row
    header, rule = out.splitlines()[:2]
    assert header.split()[:3] == ["id", "time", "(UTC)"] and set(rule) <= {"-", " "}
    listing = cli("ls", "latest").stdout.splitlines()
    assert any(line.endswith(str(deep / ("file-" * 30 + ".txt")).lstrip("/"))
               for line in listing)
    assert len(listing) == len(json.loads(cli("ls", "latest", "--json").stdout))


def test_long_errors_stay_on_one_line(cli, tmp_path: Path) -> None:
    missing = tmp_path / ("no-such-repository-" * 8)
    one_line_error(cli("snapshots", "-r", str(missing), check=False), 10, str(missing))


def test_init_says_once_what_a_lost_key_means(cli) -> None:
    proc = cli("init", "--json")
    assert json.loads(proc.stdout)["id"]  # --json output stays machine-readable
    note = proc.stderr.strip()
    assert note.count("\n") == 0 and "lost" in note and "strongroom key add" in note
    assert cli("snapshots").stderr == ""  # said once, at init
