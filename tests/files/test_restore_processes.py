"""Restores in worker processes: the same fidelity, shortfall report, damage detection and
Ctrl-C behaviour as with threads (the tests of tests/files and the interrupt test, run again
here with worker processes from the first file)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongroom.errors import IntegrityError
from strongroom.repository.format import pack_key
from strongroom.sources.files import restore as restore_mod
from strongroom.sources.files.restore import restore_files
from tests.concurrency.test_restore_interrupt import (  # noqa: F401 (collected again here)
    test_ctrl_c_stops_a_restore_at_the_next_chunk,
)
from tests.files.test_files_fidelity import (  # noqa: F401 (collected again here)
    repo,
    test_every_property_round_trips,
    test_target_without_xattr_support_warns,
)
from tests.files.test_files_source import (  # noqa: F401 (collected again here)
    source,
    test_backup_restore_verify,
)
from tests.tiers.helpers import backup, new_repo, open_repo, random_files

pools: list[Any] = []


class _CountingPool(restore_mod.ProcessPoolExecutor):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pools.append(self)


@pytest.fixture(autouse=True)
def processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Worker processes from the first file, and every test proves they were used."""
    monkeypatch.setattr(restore_mod, "PROCESS_MIN_FILES", 1)
    monkeypatch.setattr(restore_mod, "ProcessPoolExecutor", _CountingPool)
    monkeypatch.setattr(restore_mod, "_process_count", lambda: 2)
    # pytest's process has threads of its own (moto's server): fork anyway, as the CLI would
    monkeypatch.setattr(restore_mod, "_can_fork", lambda: True)
    pools.clear()
    yield
    assert pools, "the restore did not use worker processes"


def test_many_files_restore_in_processes_identically(tmp_path: Path) -> None:
    url = str(tmp_path / "r")
    files = random_files(5, count=300, size=20_000)
    snap = backup(new_repo(url), files)
    opened = open_repo(url)
    seen: list[int] = []
    report = restore_files(opened, opened.find_snapshot(snap.id), tmp_path / "out",
                           progress=seen.append)
    assert report["files"] == 300
    assert sum(seen) == sum(len(v) for v in files.values())
    for rel, data in files.items():
        assert (tmp_path / "out" / rel).read_bytes() == data


def test_damaged_pack_is_named_and_its_files_never_appear(tmp_path: Path) -> None:
    url = str(tmp_path / "r")
    files = random_files(6, count=40, size=50_000)
    snap = backup(new_repo(url), files)
    opened = open_repo(url)
    victim = sorted(files)[17]
    node = opened.reader(snap).node(victim)
    loc = opened.index.locations(bytes.fromhex(node.content[0]))[0]
    path = Path(url) / pack_key(loc.pack)
    os.chmod(path, 0o644)
    with open(path, "r+b") as fh:  # one flipped byte inside the victim's blob
        fh.seek(loc.offset + loc.length // 2)
        byte = fh.read(1)
        fh.seek(loc.offset + loc.length // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    out = tmp_path / "out"
    with pytest.raises(IntegrityError) as err:
        restore_files(open_repo(url), opened.find_snapshot(snap.id), out)
    assert "damaged" in str(err.value) and victim in str(err.value) and "\n" not in str(err.value)
    assert not (out / victim).exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".strongroom-partial")]
