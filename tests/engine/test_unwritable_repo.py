"""A repository that cannot be written (a path through a file: how we simulate a full or broken
disk without a tiny file system) gives one clear error, and earlier snapshots stay intact."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.trees import describe, make_tree


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


def test_init_below_a_file_is_a_clear_error(cli, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a directory\n")
    proc = cli("init", env={"STRONGROOM_REPOSITORY": str(tmp_path / "plain" / "repo")},
               check=False)
    assert proc.returncode == 16, proc.stderr
    assert proc.stderr.startswith("error: cannot write ") and "Not a directory" in proc.stderr
    assert "unexpected" not in proc.stderr and "Traceback" not in proc.stderr


def test_backup_into_unwritable_pack_folders_fails_cleanly(cli, repo_env, tmp_path: Path
                                                           ) -> None:
    src = make_tree(tmp_path / "src", files=10, big=500_000)
    cli("init")
    first = json.loads(cli("backup", "files", str(src), "--json").stdout)
    data = Path(repo_env["STRONGROOM_REPOSITORY"]) / "data"
    blockers = []
    for i in range(256):  # every pack folder that does not exist yet becomes a file
        folder = data / f"{i:02x}"
        if not folder.exists():
            folder.write_bytes(b"")
            blockers.append(folder)
    (src / "new.bin").write_bytes(os.urandom(300_000))
    proc = cli("backup", "files", str(src), check=False)
    assert proc.returncode == 16, proc.stderr
    assert proc.stderr.startswith("error: cannot write ")
    assert "unexpected" not in proc.stderr and "Traceback" not in proc.stderr
    for folder in blockers:
        folder.unlink()
    assert cli("verify", "--read-data").returncode == 0
    dest = tmp_path / "dest"
    cli("restore", first["id"], "--target", str(dest))
    (src / "new.bin").unlink()
    assert describe(dest / str(src).lstrip("/")) == describe(src)
    (src / "new.bin").write_bytes(os.urandom(300_000))
    cli("backup", "files", str(src))
