"""A snapshot is written only when every pack it relies on is still in storage: packs its
deduplicated blobs are read from, its own, and (once it reuses a parent's nodes) every pack the
index names. A pack deleted while the backup ran fails it with nothing saved."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest

from strongroom.repository.format import pack_key
from strongroom.repository.presence import PacksVanished
from tests.tiers.helpers import backup, new_repo, random_files


def _pack_of(repo, data: bytes) -> str:
    from strongroom.repository.format import blob_id

    return repo.index.get(blob_id(repo.id_key, data)).pack


def test_a_deduplicated_pack_deleted_mid_backup_saves_nothing(tmp_path: Path) -> None:
    repo = new_repo(str(tmp_path / "r"))
    files = random_files(11, count=3, size=50_000)
    first = backup(repo, files)
    with repo.writer(source_name="app", source_kind="files") as w:
        for path, data in sorted(files.items()):
            w.add_stream(path, io.BytesIO(data))  # every chunk deduplicated
        w.add_stream("new", io.BytesIO(b"fresh data"))
        repo.backend.delete(pack_key(_pack_of(repo, next(iter(files.values())))))
        with pytest.raises(PacksVanished, match="nothing was saved"):
            w.commit()
    assert [s.id for s in repo.list_snapshots()] == [first.id]


def test_a_parents_pack_deleted_mid_backup_saves_nothing(tmp_path: Path) -> None:
    """Unchanged files are taken from the parent's nodes, never looked up: every indexed pack
    is confirmed."""
    repo = new_repo(str(tmp_path / "r"))
    files = random_files(12, count=3, size=50_000)
    first = backup(repo, files)
    reader = repo.reader(first)
    nodes = {path: node for path, node in reader.walk() if node.type == "file"}
    with repo.writer(source_name="app", source_kind="files", kind="incremental",
                     parent=first) as w:
        for path, node in sorted(nodes.items()):
            w.add_node(path, copy.copy(node))
        repo.backend.delete(pack_key(_pack_of(repo, next(iter(files.values())))))
        with pytest.raises(PacksVanished):
            w.commit()
    assert [s.id for s in repo.list_snapshots()] == [first.id]
