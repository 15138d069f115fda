"""init refuses an empty password (as ``key add`` and ``key passwd`` already do): an empty
password file is usually a secret fetch that failed, not a choice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


def test_init_refuses_an_empty_password(cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pw"
    empty.write_text("\n")
    for extra in ({"STRONGROOM_PASSWORD": ""}, {"STRONGROOM_PASSWORD_FILE": str(empty)}):
        proc = cli("init", env=extra, check=False)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: ") and "empty" in proc.stderr
        assert not (tmp_path / "r" / "config").exists()
        assert not (tmp_path / "r" / "keys").exists() or not any((tmp_path / "r" / "keys")
                                                                  .iterdir())
