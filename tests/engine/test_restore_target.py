"""Restore targets and includes that cannot work are one clear error before anything is
written: a dangling symlink, a path below a file, an include the snapshot does not hold."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.trees import describe, make_tree


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


@pytest.fixture
def src(cli, tmp_path: Path) -> Path:
    src = make_tree(tmp_path / "src", files=8, big=100_000)
    cli("init")
    cli("backup", "files", str(src))
    return src


def _one_error_line(proc, code: int) -> str:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "unexpected" not in proc.stderr
    return lines[0]


def test_dangling_symlink_target(cli, src: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    line = _one_error_line(cli("restore", "latest", "--target", str(tmp_path / "dangling"),
                               check=False), 15)
    assert "symlink" in line
    assert not (tmp_path / "nowhere").exists()


def test_target_below_a_file(cli, src: Path, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    line = _one_error_line(cli("restore", "latest", "--target", str(tmp_path / "plain" / "t"),
                               check=False), 2)
    assert "Not a directory" in line


def test_include_that_matches_nothing(cli, src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    line = _one_error_line(cli("restore", "latest", "--target", str(dest),
                               "--include", f"{src}-typo", check=False), 12)
    assert f"{src}-typo".lstrip("/") in line
    assert not dest.exists()
    cli("restore", "latest", "--target", str(dest), "--include", f"{src}/a/b/")
    assert describe(dest / str(src).lstrip("/") / "a" / "b") == describe(src / "a" / "b")
    every = tmp_path / "every"
    cli("restore", "latest", "--target", str(every), "--include", "/")
    assert describe(every / str(src).lstrip("/")) == describe(src)
