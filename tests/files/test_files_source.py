"""The files source through the Source contract: what blocks, recovery tasks and the CLI call."""

from __future__ import annotations

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


def test_replace_restores_beside_and_keeps_the_old(repo, source, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", files=4)
    snap = source.backup(repo, name="app", kind="full", tags=[], settings={"paths": [str(src)]})
    target = make_tree(tmp_path / "live", files=5)
    before = describe(target)
    with pytest.raises(TargetNotEmpty, match="is not empty"):
        source.restore(repo, snap, str(target), replace=False, include=[],
                       options={"layout": "contents"})
    assert describe(target) == before
    assert source.safety_backup(repo, name="app", target=str(target), replace=True,
                                settings={}) is None  # the restore keeps the old itself
    report = source.restore(repo, snap, str(target), replace=True, include=[],
                            options={"layout": "contents", "check": "bytes"})
    assert describe(target) == describe(src)
    assert describe(Path(report["kept"])) == before
    assert source.verify_restored(repo, snap, str(target), include=[], report=report)["files"]
    assert source.in_place_target({"paths": [str(src)]}) == "/"


def test_a_file_where_the_target_directory_belongs(repo, source, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", files=2)
    snap = source.backup(repo, name="app", kind="full", tags=[], settings={"paths": [str(src)]})
    blocker = tmp_path / "f"
    blocker.write_bytes(b"x")
    with pytest.raises(TargetNotEmpty, match="not a directory"):
        source.restore(repo, snap, str(blocker), replace=True, include=[], options={})
    assert blocker.read_bytes() == b"x"
    with pytest.raises(ConfigError, match="absolute directory"):
        source.check_target("redis://127.0.0.1:6379", settings={}, replace=True, size=1)
