"""``ls`` of a file inside a snapshot lists that file; it never reports the repository as
damaged because a file has no tree."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


def test_ls_of_a_file_and_a_symlink(cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"12345")
    os.symlink("d/f", src / "link")
    cli("init")
    cli("backup", "files", str(src))
    rows = json.loads(cli("ls", "latest", f"{src}/d/f", "--json").stdout)
    assert rows == [{"path": f"{src}/d/f".lstrip("/"), "type": "file", "size": 5,
                     "mode": "0o644"}]
    rows = json.loads(cli("ls", "latest", f"{src}/link", "--json").stdout)
    assert [r["type"] for r in rows] == ["symlink"]
    rows = json.loads(cli("ls", "latest", f"{src}/d/", "--json").stdout)
    assert [r["path"] for r in rows] == [f"{src}/d/f".lstrip("/")]
    proc = cli("ls", "latest", f"{src}/nope", check=False)
    assert proc.returncode == 12 and proc.stderr.startswith("error: ")
