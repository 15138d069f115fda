"""Usage mistakes and Ctrl-C end in one ``error:`` line and the documented exit code, whatever
Typer (with click, or with its own vendored copy of click) raises underneath."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest


def _sigint_default() -> None:
    """A shell running the suite in the background ignores SIGINT, and children inherit that:
    give the child the terminal's default, as an operator's Ctrl-C would find it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


@pytest.mark.parametrize("args", [
    ["restore", "latest", "--bogus"],
    ["restore"],
    ["restore", "latest"],
    ["backup", "files"],
    ["verify", "--read-data-subset", "0"],
    ["backup", "files", ".", "--kind"],
])
def test_usage_errors_are_one_line(cli, args: list[str]) -> None:
    proc = cli(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "unexpected" not in proc.stderr and "Traceback" not in proc.stderr


def test_ctrl_c_during_backup(cli, repo_env, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "small").write_bytes(os.urandom(100_000))
    cli("init")
    first = json.loads(cli("backup", "files", str(src), "--json").stdout)
    with open(src / "sparse", "wb") as fh:  # long to read, nothing on disk
        fh.truncate(1 << 30)
    locks = Path(repo_env["STRONGROOM_REPOSITORY"]) / "locks"
    for delay in (0, 0, 0.002, 0.01, 0.2):  # right after the lock appears, and later
        proc = subprocess.Popen(["strongroom", "backup", "files", str(src)], env=repo_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_sigint_default)
        deadline = time.monotonic() + 60
        while not any(locks.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 130, err
        assert err.strip() == "error: interrupted"
        assert not list(locks.iterdir()), f"Ctrl-C {delay} s after taking the lock"
    snaps = json.loads(cli("snapshots", "--json").stdout)
    assert [s["id"] for s in snaps] == [first["id"]]
    assert cli("verify").returncode == 0
    (src / "sparse").unlink()
    cli("restore", first["id"], "--target", str(tmp_path / "dest"))
    cli("backup", "files", str(src))


def test_ctrl_c_does_not_wait_for_a_huge_file(cli, repo_env, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "huge", "wb") as fh:  # 32 GiB of zeros to read, nothing on disk
        fh.truncate(32 << 30)
    cli("init")
    locks = Path(repo_env["STRONGROOM_REPOSITORY"]) / "locks"
    proc = subprocess.Popen(["strongroom", "backup", "files", str(src)], env=repo_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_default)
    deadline = time.monotonic() + 60
    while not (locks.is_dir() and any(locks.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 15, "Ctrl-C waited for the whole file to be read"
    assert not list(locks.iterdir())
