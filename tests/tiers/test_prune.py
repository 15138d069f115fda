"""Prune: two phases, grace period, re-check, repack, bytes freed, verify clean after."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from strongroom.policy.retention import RetentionPolicy
from strongroom.repository.forget import forget, plan_for
from strongroom.repository.presence import stored_packs
from strongroom.repository.prune import load_mark, prune
from strongroom.repository.verify import verify
from tests.tiers.helpers import (
    backup,
    leftover_pack,
    new_repo,
    open_repo,
    random_files,
    read_all,
)


def test_forget_then_prune_frees_space_and_keeps_the_rest(tmp_path: Path) -> None:
    repo = new_repo(str(tmp_path / "r"))
    snaps = [backup(repo, random_files(i)) for i in range(4)]
    before = sum(stored_packs(repo.backend).values())
    plan = plan_for(repo, RetentionPolicy(keep_last=2))
    dry = forget(repo, plan, dry_run=True)
    assert len(dry.plan.forget) == 2 and not dry.removed
    assert forget(repo, plan).removed == [s.id for s in plan.forget]
    report = prune(repo, grace=timedelta(0))
    assert report.swept and report.deleted_packs > 0 and report.bytes_freed > before / 3
    assert sum(stored_packs(repo.backend).values()) == before - report.deleted_bytes + \
        report.repack_bytes_written
    fresh = open_repo(str(tmp_path / "r"))
    for i, snap in enumerate(snaps[2:], start=2):
        assert read_all(fresh, fresh.find_snapshot(snap.id)) == random_files(i)
    check = verify(fresh, read_data=True)
    assert check.ok and not check.garbage, check.as_dict()


def test_grace_period_and_recheck_rescue_reused_blobs(tmp_path: Path) -> None:
    url = str(tmp_path / "r")
    repo = new_repo(url)
    old = backup(repo, random_files(1))
    forget(repo, plan_for(repo, RetentionPolicy(keep_tag=("none",))))
    assert not repo.list_snapshots()
    first = prune(repo, grace=timedelta(seconds=1))
    assert not first.swept and first.marked_packs > 0 and "due after" in first.pending
    assert prune(repo, grace=timedelta(hours=1)).pending  # not yet due: nothing happens
    # A backup after the mark dedups against the marked packs: the sweep must rescue them.
    again = backup(open_repo(url), random_files(1))
    assert again.stats.bytes_new == 0
    time.sleep(1.1)
    second = prune(open_repo(url), grace=timedelta(seconds=1))
    assert second.swept and second.deleted_packs == 0 and second.rescued
    fresh = open_repo(url)
    assert read_all(fresh, fresh.find_snapshot(again.id)) == random_files(1)
    assert verify(fresh, read_data=True).ok
    assert old.id not in fresh.snapshot_names()


def test_repack_partly_used_packs(tmp_path: Path) -> None:
    url = str(tmp_path / "r")
    repo = new_repo(url, pack_target=4 * 1024 * 1024)  # one pack holds both snapshots' data
    files = random_files(3, count=8)
    keep = {k: v for k, v in list(files.items())[:2]}
    with repo.writer(source_name="app", source_kind="files") as w:
        for path, data in files.items():
            w.add_bytes(path, data)
        big = w.commit()
    small = backup(repo, keep)
    assert small.stats.bytes_new < 4096  # only its trees are new
    forget(repo, plan_for(repo, RetentionPolicy(keep_last=1)))
    dry = prune(repo, dry_run=True, repack_threshold=0.3)
    report = prune(repo, grace=timedelta(0), repack_threshold=0.3)
    assert report.repacked_packs >= 1 and report.deleted_packs >= 1
    assert (dry.repacked_packs, dry.repack_bytes_written) == (report.repacked_packs, 0)
    assert 0 < report.repack_bytes_written < report.deleted_bytes
    assert report.bytes_freed == report.deleted_bytes - report.repack_bytes_written
    fresh = open_repo(url)
    assert read_all(fresh, fresh.find_snapshot(small.id)) == keep
    assert big.id not in fresh.snapshot_names()
    check = verify(fresh, read_data=True)
    assert check.ok and not check.garbage, check.as_dict()


def test_unindexed_leftovers_are_collected_and_dry_run_writes_nothing(tmp_path: Path) -> None:
    url = str(tmp_path / "r")
    repo = new_repo(url)
    leftover_pack(repo, random_files(9)["dir0/f00.bin"])  # an interrupted backup's pack
    assert stored_packs(repo.backend)
    dry = prune(repo, dry_run=True)
    assert dry.marked_packs == 1 and load_mark(repo) is None
    report = prune(repo, grace=timedelta(0))
    assert report.deleted_packs == 1 and not stored_packs(repo.backend)


def test_long_lived_repository_object_sees_prune(tmp_path: Path) -> None:
    """A worker keeping one Repository open must not dedup against packs prune removed."""
    url = str(tmp_path / "r")
    worker = new_repo(url)
    backup(worker, random_files(1))
    other = open_repo(url)
    forget(other, plan_for(other, RetentionPolicy(keep_tag=("none",))))
    assert prune(other, grace=timedelta(0)).deleted_packs > 0
    again = backup(worker, random_files(1))
    assert again.stats.bytes_new > 0
    fresh = open_repo(url)
    assert read_all(fresh, fresh.find_snapshot(again.id)) == random_files(1)
    assert verify(fresh).ok


def test_pack_indexed_after_the_mark_is_not_swept(tmp_path: Path) -> None:
    """Two prunes at once: B marks while A's repacked pack is not yet indexed; A then indexes
    it and deletes the original. B's sweep must keep A's new pack: old snapshots need it."""
    from strongroom.repository.format import pack_key
    from strongroom.repository.index import index_document
    from strongroom.repository.packs import PackWriter
    from strongroom.repository.prune import Mark, PruneReport, mark, sweep
    from strongroom.repository.usage import IndexView

    url = str(tmp_path / "r")
    repo = new_repo(url)
    files = random_files(5, count=3)
    snap = backup(repo, files)
    view = IndexView.load(repo)
    (old_pack,) = [p for p in view.packs if any(e[0] == "D" for e in view.entries[p])]
    # A: copy the old pack's blobs into a new pack, not indexed yet.
    data = repo.backend.get(pack_key(old_pack))
    made: list = []
    writer = PackWriter(repo.backend, repo.aead, lambda *p: made.append(p), repo.pack_target)
    for btype, bid, off, length, raw in view.entries[old_pack]:
        writer.add(btype, bytes.fromhex(bid), data[off:off + length], raw)
    writer.flush()
    writer.close()
    (new_pack, size, entries) = made[0]
    # B marks now: A's pack is "not indexed".
    b_report = PruneReport()
    b_mark = mark(open_repo(url), b_report, repack_threshold=None)
    assert b_mark.candidates[new_pack]["reason"] == "not indexed"
    # A finishes: indexes its pack and sweeps the original (its blobs now live in new_pack).
    repo.save_index(index_document([(new_pack, size, entries)]))
    a_mark = Mark(b_mark.time, b_mark.snapshots, {old_pack: {
        "size": len(data), "reason": "repacked", "keep": [e[1] for e in entries]}})
    a_report = PruneReport()
    sweep(open_repo(url), a_mark, a_report)
    assert a_report.deleted_packs == 1
    # B sweeps its older mark: the pack indexed since then must survive.
    sweep(open_repo(url), b_mark, b_report)
    assert b_report.deleted_packs == 0 and "indexed since the mark" in b_report.rescued[0]
    fresh = open_repo(url)
    assert read_all(fresh, fresh.find_snapshot(snap.id)) == files
    assert verify(fresh, read_data=True).ok
