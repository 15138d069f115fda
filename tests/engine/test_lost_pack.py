"""After a pack is lost, the next backup stores that data again instead of deduplicating
against the missing pack: the new snapshot restores even though older ones cannot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from strongroom.repository import Repository
from strongroom.repository.format import pack_key
from tests.support.trees import describe


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


@pytest.mark.parametrize("kind", ["incremental", "full"])
def test_backup_after_a_lost_pack_is_restorable(cli, repo_env, tmp_path: Path,
                                                 kind: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / name).write_bytes(os.urandom(700_000))
    cli("init", "--pack-size", "1")
    first = json.loads(cli("backup", "files", str(src), "--json").stdout)

    repo = Repository.open(repo_env["STRONGROOM_REPOSITORY"], password="pw")
    node = repo.reader(repo.find_snapshot(first["id"])).node(f"{src}/a")
    lost = repo.index.get(bytes.fromhex(node.content[0])).pack
    Path(repo_env["STRONGROOM_REPOSITORY"], pack_key(lost)).unlink()

    second = json.loads(cli("backup", "files", str(src), "--kind", kind, "--json").stdout)
    dest = tmp_path / "dest"
    cli("restore", second["id"], "--target", str(dest))
    assert describe(dest / str(src).lstrip("/")) == describe(src)
    proc = cli("verify", "--json", check=False)
    report = json.loads(proc.stdout)
    assert report["errors"] and all(second["id"][:8] not in e for e in report["errors"])
