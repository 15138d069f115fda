"""Checking the WAL archive for gaps before anyone needs it."""

from __future__ import annotations

from typing import Any

from strongroom.errors import SnapshotNotFound
from strongroom.repository import Repository
from strongroom.sources.postgres import walnames as wn
from strongroom.sources.postgres import walstore
from strongroom.sources.postgres.backups import physical_snapshots
from strongroom.sources.postgres.plan import choose_timeline


def verify_archive(repo: Repository, name: str, snapshot: str | None = None) -> dict[str, Any]:
    """Every segment from the base backup's start (default: the oldest backup) to the newest
    archived segment on the newest timeline descending from it; ``missing`` names gaps."""
    snaps = physical_snapshots(repo, name)
    if snapshot:
        base = repo.find_snapshot(snapshot, name)
    elif snaps:
        base = snaps[0]
    else:
        raise SnapshotNotFound(f"no physical backup of {name!r} in the repository")
    meta = base.meta["postgres"]
    seg = int(meta["wal_segment_size"])
    catalog = walstore.WalCatalog.load(repo, name)
    catalog.seg_size = catalog.seg_size or seg
    tli, path = choose_timeline(base, catalog, None)
    start = wn.parse_lsn(meta["start_lsn"])
    missing, last = walstore.missing_segments(catalog, start, None, path, seg)
    first = start // seg
    return {"name": name, "base": base.id, "timeline": tli, "missing": missing,
            "first": wn.segment_name(wn.tli_at(start, path), first, seg),
            "last": wn.segment_name(wn.tli_at(last * seg, path), last, seg),
            "segments": last - first + 1 - len(missing),
            "wal_snapshots": len(catalog.snapshots)}
