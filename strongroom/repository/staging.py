"""Staging a snapshot out of archive storage before a restore (S3 ``restore_object``).

Packs holding trees are staged first (the listing needs them), then the data packs the snapshot
uses. Copies made by ``strongroom copy`` keep tree packs in STANDARD, so usually only data
packs wait. Each wait is bounded; the estimate comes from AWS's published retrieval times.
"""

from __future__ import annotations

from collections.abc import Callable

from strongroom.repository.format import BLOB_TREE, pack_key
from strongroom.repository.model import Snapshot
from strongroom.repository.repo import Repository
from strongroom.repository.usage import used_blobs
from strongroom.storage.staging import StagingReport


def stage_snapshot(repo: Repository, snap: Snapshot, *, days: int = 7,
                   retrieval_tier: str = "Standard", wait_s: float = 0.0, poll_s: float = 30.0,
                   on_report: Callable[[StagingReport], None] | None = None) -> StagingReport:
    """Request staging of every pack ``snap`` needs; wait up to ``wait_s`` for each phase.

    With ``wait_s`` 0 it only requests and returns the report (run again to continue).
    """
    index = repo.reload_index()
    tree_packs = sorted({loc.pack for loc in index.blobs.values() if loc.type == BLOB_TREE})
    report = StagingReport(retrieval_tier=retrieval_tier)
    first = repo.backend.stage([pack_key(p) for p in tree_packs], days, retrieval_tier)
    report.merge(first)
    if on_report:
        on_report(first)
    waiting = first.requested + first.in_progress
    if waiting:
        if wait_s <= 0:
            return report
        repo.backend.wait_readable(waiting, wait_s, poll_s)
    used = used_blobs(repo, [snap.id])
    data_packs = sorted({loc.pack for bid, loc in index.blobs.items()
                         if bid.hex() in used} - set(tree_packs))
    second = repo.backend.stage([pack_key(p) for p in data_packs], days, retrieval_tier)
    report.merge(second)
    if on_report:
        on_report(second)
    waiting = second.requested + second.in_progress
    if waiting and wait_s > 0:
        repo.backend.wait_readable(waiting, wait_s, poll_s)
        report.ready += waiting
        report.requested, report.in_progress = [], []
    return report
