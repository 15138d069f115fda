"""Where a snapshot stands among others is decided by dates the storage gave it, never by the
reader's clock, and survives copies and re-encryption: a snapshot dated after its arrival (its
writer's clock ran ahead) stays flagged and placed by its arrival wherever it goes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from strongroom.repository import Repository
from strongroom.repository.copy import copy_snapshots
from strongroom.repository.reencrypt import reencrypt
from tests.tiers.helpers import backup, new_repo

DAY = 86400.0


def _redate(repo: Repository, snap_id: str, dated: float, arrived: float) -> str:
    """A copy of the snapshot dated ``dated`` (epoch seconds) whose file arrived at
    ``arrived`` by the file system's clock (an old client's snapshot, before ``arrived`` was
    sealed in manifests); the original removed. Its new id."""
    from datetime import UTC, datetime

    snap = repo.find_snapshot(snap_id)
    moved = repo.save_snapshot(snap.model_copy(update={
        "id": "", "time": datetime.fromtimestamp(dated, UTC), "arrived": None}))
    repo.remove_snapshot(snap)
    path = Path(repo.backend.url) / "snapshots" / moved.id
    os.utime(path, (arrived, arrived))
    return moved.id


def _history(url: str) -> tuple[Repository, str, str]:
    """A snapshot F written ten days ago by a clock nine days ahead (dated yesterday), and S,
    a real one from five days ago with newer data: S is the latest."""
    repo = new_repo(url)
    now = time.time()
    f = _redate(repo, backup(repo, {"doc": b"F: old content"}, source="app").id,
                now - DAY, now - 10 * DAY)
    s = _redate(repo, backup(repo, {"doc": b"S: newest content"}, source="app").id,
                now - 5 * DAY, now - 5 * DAY)
    return repo, f, s


def _placed(repo: Repository) -> tuple[list[str], list[str]]:
    """(ids oldest first, ids flagged future-dated)."""
    snaps = repo.list_snapshots("app")
    return [s.id for s in snaps], [s.id for s in snaps if s.future_dated]


def test_a_readers_clock_never_places_snapshots(tmp_path: Path, monkeypatch) -> None:
    """A reader a day behind on a medium it cannot write (so the storage's clock is its own):
    the dates of the files still decide, 'latest' is the real newest."""
    from strongroom.storage.local import LocalBackend

    repo, f, s = _history(str(tmp_path / "r"))
    monkeypatch.setattr(LocalBackend, "clock", lambda self: time.time() - 20 * DAY)
    reader = Repository.open(repo.url, password="tiers test password")
    assert _placed(reader) == ([f, s], [f])
    assert reader.find_snapshot("latest").id == s


def test_a_copy_keeps_its_arrival(tmp_path: Path) -> None:
    """Copied today, F arrives at the target after its own date: without the source's arrival
    it would pass for the newest, and keep-last 1 would forget S."""
    from strongroom.policy.retention import RetentionPolicy
    from strongroom.repository.forget import forget, plan_for

    repo, f, s = _history(str(tmp_path / "src"))
    dst = new_repo(str(tmp_path / "dst"))
    copy_snapshots(repo, dst, [f, s])
    order, flagged = _placed(dst)
    copies = {dst.load_snapshot(i).meta["copied_from"]["snapshot"]: i for i in order}
    assert order == [copies[f], copies[s]] and flagged == [copies[f]]
    assert dst.find_snapshot("latest").id == copies[s]
    forget(dst, plan_for(dst, RetentionPolicy(keep_last=1)))
    assert {x.id for x in dst.list_snapshots()} == {copies[f], copies[s]}  # F: future-dated


def test_re_encryption_keeps_arrival(tmp_path: Path) -> None:
    repo, f, s = _history(str(tmp_path / "r"))
    repo.rotate_epoch()
    report = reencrypt(repo)
    fresh = Repository.open(repo.url, password="tiers test password")
    order, flagged = _placed(fresh)
    assert order == [report.snapshots_resealed[f], report.snapshots_resealed[s]]
    assert flagged == [report.snapshots_resealed[f]]
