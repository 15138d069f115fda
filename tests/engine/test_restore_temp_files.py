"""A restore's temporary files must never meet the snapshot's own entries: a symlink or a file
named like a temporary file is restored as itself, and nothing is written outside the target."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.trees import describe


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


def test_entries_named_like_partial_files_restore_exactly(cli, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"must stay untouched\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "foo").write_bytes(b"the real foo\n")
    os.symlink(victim, src / ".foo.strongroom-partial")
    for i in range(20):  # files whose names are the old temporary names of their neighbours
        (src / f"f{i}").write_bytes(os.urandom(50_000))
        (src / f".f{i}.strongroom-partial").write_bytes(os.urandom(70_000))
    cli("init")
    cli("backup", "files", str(src))
    dest = tmp_path / "dest"
    cli("restore", "latest", "--target", str(dest))
    assert victim.read_bytes() == b"must stay untouched\n"
    assert describe(dest / str(src).lstrip("/")) == describe(src)
