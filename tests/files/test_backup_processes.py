"""Backups read by worker processes: the same snapshot (tree ids, checksum, dedup) as with
threads, every property kept, unreadable files noted, a dead worker a clear failure (the
fidelity, source and streaming tests run again here with worker processes from the first
file)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongroom.errors import SourceError
from strongroom.repository import Repository
from strongroom.sources.files import backup as backup_mod
from strongroom.sources.files import reading
from strongroom.sources.files.backup import backup_files
from strongroom.sources.files.restore import restore_files
from tests.files.test_files_fidelity import (  # noqa: F401 (collected again here)
    repo,
    test_every_property_round_trips,
    test_incremental_from_a_parent_without_holes_reads_the_file_again,
)
from tests.files.test_files_source import (  # noqa: F401 (collected again here)
    source,
    test_backup_restore_verify,
)
from tests.files.test_tree_streaming import (  # noqa: F401 (collected again here)
    data_tree,
    test_streamed_trees_equal_trees_stored_at_the_end,
)
from tests.support.trees import describe

pools: list[Any] = []


class _CountingPool(backup_mod.ProcessPoolExecutor):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pools.append(self)


def _use_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_mod, "PROCESS_MIN_FILES", 1)
    monkeypatch.setattr(backup_mod, "PROCESS_BATCH_FILES", 4)  # many batches, out of order
    monkeypatch.setattr(backup_mod, "ProcessPoolExecutor", _CountingPool)
    monkeypatch.setattr(backup_mod, "_process_count", lambda: 2)
    # pytest's process has threads of its own (moto's server): fork anyway, as the CLI would
    monkeypatch.setattr(backup_mod, "_can_fork", lambda: True)


@pytest.fixture(autouse=True)
def processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Worker processes from the first file, and every test proves they were used."""
    _use_processes(monkeypatch)
    pools.clear()
    yield
    assert pools, "the backup did not use worker processes"


def _tree(root: Path) -> Path:
    """Small files (some equal), multi-chunk ones, one read by a thread, a hard link, a
    sparse file, an empty one."""
    for d in range(4):
        sub = root / f"d{d}"
        sub.mkdir(parents=True)
        for f in range(40):
            (sub / f"f{f}.txt").write_bytes(f"file {f % 7}\n".encode() * (f + 1))
    (root / "big.bin").write_bytes(os.urandom(700_000) * 3)  # chunks repeated: dedup inside
    (root / "huge.bin").write_bytes(os.urandom(3_000_000))  # above PROCESS_FILE_MAX below
    (root / "empty").write_bytes(b"")
    os.link(root / "d0" / "f3.txt", root / "link.txt")
    with open(root / "sparse.img", "wb") as fh:
        fh.truncate(2 << 20)
        fh.write(b"data at the start")
    return root


def test_same_snapshot_as_threads_and_blobs_stored_once(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setattr(backup_mod, "PROCESS_FILE_MAX", 2_500_000)
    src = _tree(tmp_path / "src")
    Repository.init(str(tmp_path / "repo"), password="pw")
    shutil.copytree(tmp_path / "repo", tmp_path / "copy")  # the same keys: the same blob ids
    opened = Repository.open(str(tmp_path / "repo"), password="pw")
    in_procs = backup_files(opened, [src], name="p").snapshot
    assert pools
    threads_repo = Repository.open(str(tmp_path / "copy"), password="pw")
    with monkeypatch.context() as m:
        m.setattr(backup_mod, "_can_fork", lambda: False)
        in_threads = backup_files(threads_repo, [src], name="p").snapshot
    assert (data_tree(opened, in_procs, src), in_procs.checksum) == \
        (data_tree(threads_repo, in_threads, src), in_threads.checksum)
    for key in ("files", "bytes_total", "bytes_read", "bytes_new", "blobs_new"):
        assert getattr(in_procs.stats, key) == getattr(in_threads.stats, key), key
    node = opened.reader(in_procs).node(str(src / "sparse.img").lstrip("/"))
    assert node.holes and node.holes[-1][0] + node.holes[-1][1] == 2 << 20
    again = backup_files(opened, [src], name="p", kind="full").snapshot  # all known: none new
    assert data_tree(opened, again, src) == data_tree(opened, in_procs, src)
    # but the trees of ancestors whose times moved meanwhile (/tmp is busy)
    assert again.stats.blobs_new <= len(src.parents)
    assert again.stats.bytes_read == in_procs.stats.bytes_read
    restore_files(opened, again, tmp_path / "out")
    assert describe(tmp_path / "out" / str(src).lstrip("/")) == describe(src)


def test_an_unreadable_file_is_noted_and_the_rest_kept(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "src")
    victim = str(src / "d2" / "f5.txt")
    read_one = reading._read_one

    def failing(path: str, size: int, sparse: bool, errors: list[str]) -> Any:
        if path == victim:  # as if it vanished or lost its permissions after the walk
            raise PermissionError(13, "Permission denied", path)
        return read_one(path, size, sparse, errors)

    monkeypatch.setattr(reading, "_read_one", failing)  # before the fork: the workers have it
    opened = Repository.init(str(tmp_path / "repo"), password="pw")
    result = backup_files(opened, [src], name="p")
    assert result.errors == [f"{victim}: Permission denied"]
    restore_files(opened, result.snapshot, tmp_path / "out")
    out = tmp_path / "out" / str(src).lstrip("/")
    assert not (out / "d2" / "f5.txt").exists()
    assert (out / "d2" / "f6.txt").read_bytes() == (src / "d2" / "f6.txt").read_bytes()


def _die(batch: list[Any]) -> None:
    os._exit(9)  # as the kernel's OOM killer would end it


def test_a_dead_worker_fails_the_backup_clearly(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "src")
    monkeypatch.setattr(reading, "read_files", _die)
    opened = Repository.init(str(tmp_path / "repo"), password="pw")
    with pytest.raises(SourceError, match="backup worker process died"):
        backup_files(opened, [src], name="p")
    assert opened.list_snapshots() == []
