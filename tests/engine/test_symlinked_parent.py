"""A path backed up through a symlinked parent directory: the parent is recorded with the
directory's own permissions, never the symlink's 0o777 (a world-writable restore)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


def test_symlinked_parent_keeps_directory_mode(cli, tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    real.chmod(0o750)
    (real / "sub" / "f").write_bytes(b"data\n")
    os.symlink(real, tmp_path / "via-link")
    cli("init")
    cli("backup", "files", str(tmp_path / "via-link" / "sub"))
    dest = tmp_path / "dest"
    cli("restore", "latest", "--target", str(dest))
    restored = dest / str(tmp_path / "via-link").lstrip("/")
    assert restored.is_dir() and not restored.is_symlink()
    assert stat.S_IMODE(restored.stat().st_mode) == 0o750
    assert (restored / "sub" / "f").read_bytes() == b"data\n"
