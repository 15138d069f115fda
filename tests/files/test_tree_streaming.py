"""Directory trees stored as soon as each directory is done (bounded memory) give the same
snapshot as trees stored all at the end: same tree ids, same checksum, same restore.

Tree ids are compared from the backed-up directory down: the root tree also holds that
directory's ancestors (``/tmp``, pytest's base directories) as they are at each backup, times
included, and other processes (the other xdist worker, anything using ``/tmp``) change those
between two backups.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.repository import Repository, Snapshot
from strongroom.sources.files import backup as backup_mod
from strongroom.sources.files import backup_files, restore_files
from tests.support.trees import describe, make_tree


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(str(tmp_path / "repo"), password="pw")


def data_tree(repo: Repository, snap: Snapshot, path: Path) -> str:
    """The tree id of directory ``path`` as backed up in ``snap`` (its ancestors left out)."""
    return repo.reader(snap).node(str(path).lstrip("/")).subtree


def _deep_tree(root: Path) -> Path:
    make_tree(root, files=40, big=300_000)
    for d in range(6):
        sub = root / f"d{d}" / "x" / "y"
        sub.mkdir(parents=True)
        for f in range(30):
            (sub / f"f{f}.txt").write_bytes(f"{d} {f}\n".encode() * (f + 1))
    (root / "unicode-é").mkdir()
    (root / "unicode-é" / "naïve.txt").write_bytes(b"x")
    return root


def test_streamed_trees_equal_trees_stored_at_the_end(repo, tmp_path: Path,
                                                      monkeypatch) -> None:
    src = _deep_tree(tmp_path / "src")
    monkeypatch.setattr(backup_mod, "BATCH_FILES", 3)  # many batches, finishing out of order
    monkeypatch.setattr(backup_mod, "HOLD_NODES", 5)  # and the walk waiting on its files
    streamed = backup_files(repo, [src], name="s").snapshot
    at_end = backup_files(repo, [src, src / "a"], name="s2").snapshot  # overlapping roots
    tree = data_tree(repo, streamed, src)
    assert (tree, streamed.checksum) == (data_tree(repo, at_end, src), at_end.checksum)
    again = backup_files(repo, [src], name="s", kind="incremental").snapshot
    assert (data_tree(repo, again, src), again.checksum, again.stats.bytes_read) == \
        (tree, streamed.checksum, 0)
    (src / "d3" / "x" / "y" / "f7.txt").write_bytes(b"changed")
    changed = backup_files(repo, [src], name="s", kind="incremental").snapshot
    assert data_tree(repo, changed, src) != tree
    assert changed.stats.bytes_read == len(b"changed")
    restore_files(repo, changed, tmp_path / "dest")
    assert describe(tmp_path / "dest" / str(src).lstrip("/")) == describe(src)


def test_a_directory_cannot_grow_after_its_tree_is_stored(repo, tmp_path: Path) -> None:
    with repo.writer("w", "files", "full", None, [], []) as w:
        w.add_dir("a")
        w.add_bytes("a/one", b"1")
        w.finish_dir("a")
        with pytest.raises(Exception, match="after its tree was stored"):
            w.add_bytes("a/two", b"2")
