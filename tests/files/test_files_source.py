"""The files source through the Source contract: what blocks, recovery tasks and the CLI call."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strongroom.errors import ConfigError, IntegrityError, TargetNotEmpty
from strongroom.repository import Repository
from strongroom.sources import registry
from tests.support.trees import describe, make_tree


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(str(tmp_path / "repo"), password="pw")


@pytest.fixture
def source():
    return registry.get("files")


def test_registered_with_its_attributes(source) -> None:
    assert "files" in registry.kinds()
    assert (source.kind, source.default_class, source.progress_unit, source.target_is_path) == \
        ("files", "files", "bytes", True)


def test_backup_restore_verify(repo, source, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", files=12)
    (src / "skip.tmp").write_bytes(b"not wanted")
    settings = {"paths": [str(src)], "exclude": ["*.tmp"]}
    full = source.backup(repo, name="docs", kind="full", tags=["t"], settings=settings)
    snap = source.backup(repo, name="docs", kind="snapshot", tags=[], settings=settings)
    assert snap.kind == "incremental" and snap.parent == full.id and full.tags == ["t"]
    written: list[float] = []
    dest = tmp_path / "dest"
    report = source.restore(repo, snap, str(dest), replace=False, include=[], options={},
                            progress=written.append)
    assert sum(written) == report["bytes"] > 0
    (src / "skip.tmp").unlink()
    assert describe(dest / str(src).lstrip("/")) == describe(src)
    checked = source.verify_restored(repo, snap, str(dest), include=[], report=report)
    assert checked["files"] == checked["files_identical"] >= report["files"]  # + hard links
    with pytest.raises(ConfigError, match="no restore options"):
        source.restore(repo, snap, str(tmp_path / "other"), replace=False, include=[],
                       options={"verify": "quick"})


def test_verify_restored_finds_a_changed_byte(repo, source, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", files=3)
    snap = source.backup(repo, name="s", kind="full", tags=[], settings={"paths": [str(src)]})
    dest = tmp_path / "dest"
    report = source.restore(repo, snap, str(dest), replace=False, include=[], options={})
    victim = next(p for p in (dest / str(src).lstrip("/")).rglob("*")
                  if p.is_file() and not p.is_symlink() and p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[0] ^= 1
    victim.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="contents differ"):
        source.verify_restored(repo, snap, str(dest), include=[], report=report)


def test_safety_backup_refuses_keeps_then_empties(repo, source, tmp_path: Path) -> None:
    target = make_tree(tmp_path / "live", files=5)
    before = describe(target)
    with pytest.raises(TargetNotEmpty, match="is not empty"):
        source.safety_backup(repo, name="app", target=str(target), replace=False, settings={})
    assert describe(target) == before
    safety = source.safety_backup(repo, name="app", target=str(target), replace=True,
                                  settings={})
    assert safety is not None and safety.source_name == "app-safety"
    assert safety.kind == "full" and safety.tags == ["safety", "pre-restore"]
    assert list(target.iterdir()) == []  # the restore will leave exactly the snapshot
    back = tmp_path / "back"
    source.restore(repo, safety, str(back), replace=False, include=[], options={})
    assert describe(back / str(target).lstrip("/")) == before


def test_safety_backup_of_a_missing_or_empty_target(repo, source, tmp_path: Path) -> None:
    missing = tmp_path / "a" / "b"
    assert source.safety_backup(repo, name="x", target=str(missing), replace=False,
                                settings={}) is None
    assert missing.is_dir()
    assert source.safety_backup(repo, name="x", target=str(missing), replace=True,
                                settings={}) is None
    assert repo.list_snapshots() == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_safety_backup_of_an_unwritable_target(repo, source, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            source.safety_backup(repo, name="x", target=str(locked), replace=False,
                                 settings={})
    finally:
        locked.chmod(0o700)


def test_a_file_where_the_target_directory_belongs(repo, source, tmp_path: Path) -> None:
    blocker = tmp_path / "f"
    blocker.write_bytes(b"x")
    with pytest.raises(TargetNotEmpty, match="not a directory"):
        source.safety_backup(repo, name="x", target=str(blocker), replace=True, settings={})
