"""A damaged lock file (valid JSON, wrong shape) is ignored like an unreadable one; it must
not make every backup fail with an unexpected exception."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


@pytest.mark.parametrize("content", ["[]", '"lock"', "{}", '{"time": "x"}', '{"time": null}',
                                     "", "{"])
def test_damaged_lock_file_does_not_block_backups(cli, repo_env, tmp_path: Path,
                                                  content: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    cli("init")
    locks = Path(repo_env["STRONGROOM_REPOSITORY"]) / "locks"
    locks.mkdir(exist_ok=True)
    (locks / ("0" * 32)).write_text(content)
    proc = cli("backup", "files", str(src), check=False)
    assert proc.returncode == 0, proc.stderr
