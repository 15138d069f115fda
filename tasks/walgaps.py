"""WAL continuity: find gaps in a PostgreSQL cluster's WAL archive and raise the maintenance
alert ``strongroom.wal.gap`` (resource ``strongroom.source.<name>``).

A gap is a segment missing between the oldest physical backup that needs the archive and the
newest archived segment: point-in-time recovery across it is impossible (a restore stops
there). The oldest backup is the start because retention keeps its WAL for a reason; one that
carries its own WAL (``wal: fetch``) needs the archive only after its end, so an archive that
began later is not a gap. Only clusters with a WAL archive are checked.

Callers: the ``verify-backups`` flow (:func:`check_wal_gaps`, every archived cluster of the
target, or the one source) and the ``wal-replication`` flow (:class:`WalGapWatch`, every few
minutes while it streams, alerting once per new gap). Payloads name the missing segments and
never a secret.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from tasks.events import WAL_GAP, emit
from tasks.repos import repository

if TYPE_CHECKING:
    from strongroom.repository import Repository

MAX_RANGES = 10  # ranges named in one event; the count is always complete
WATCH_EVERY_S = 300.0


def archived_clusters(repo: Repository) -> list[str]:
    """Names of the PostgreSQL clusters with a WAL archive in ``repo``."""
    from strongroom.sources.postgres import walstore

    return sorted({s.source_name.removesuffix("-wal") for s in repo.list_snapshots()
                   if s.source_kind == walstore.KIND})


def _ranges(missing: list[str], seg: int) -> list[list[str]]:
    """Consecutive missing segment names folded into [first, last] ranges."""
    from strongroom.sources.postgres import walnames as wn

    out: list[list[str]] = []
    prev = None
    for name in missing:
        segno = wn.parse_segment(name, seg)[1]
        if out and prev is not None and segno == prev + 1:
            out[-1][1] = name
        else:
            out.append([name, name])
        prev = segno
    return out


def find_gap(repo: Repository, name: str) -> dict[str, Any] | None:
    """The WAL gap report of cluster ``name`` (``missing`` empty when continuous); None when
    there is nothing to check (no physical backup, or no WAL archive)."""
    from strongroom.sources.postgres import walnames as wn
    from strongroom.sources.postgres import walstore
    from strongroom.sources.postgres.backups import physical_snapshots
    from strongroom.sources.postgres.plan import choose_timeline

    bases = physical_snapshots(repo, name)
    catalog = walstore.WalCatalog.load(repo, name)
    if not bases or not catalog.snapshots:
        return None
    base = bases[0]
    meta = base.meta["postgres"]
    seg = int(meta["wal_segment_size"])
    catalog.seg_size = catalog.seg_size or seg
    tli, path = choose_timeline(base, catalog, None)
    start = wn.parse_lsn(meta["start_lsn"])
    if meta.get("wal_in_tar") and not meta.get("base_snapshot"):
        end = wn.parse_lsn(meta.get("wal_end_lsn") or meta["stop_lsn"])
        start = (wn.lsn_segno(max(end - 1, start), seg) + 1) * seg
    first = wn.lsn_segno(start, seg)
    if not any(s >= first for _, s in catalog.segments()):
        missing: list[str] = []  # nothing archived after what the backup carries itself
    else:
        missing, _ = walstore.missing_segments(catalog, start, None, path, seg)
    return {"name": name, "base": base.short_id, "timeline": tli, "missing": missing,
            "missing_count": len(missing), "ranges": _ranges(missing, seg)[:MAX_RANGES]}


def gap_summary(target: str, gap: dict[str, Any]) -> str:
    ranges = ", ".join(a if a == b else f"{a}..{b}" for a, b in gap["ranges"])
    more = "" if len(gap["ranges"]) < MAX_RANGES else " ..."
    return (f"WAL archive of {gap['name']} in {target} has a gap: {gap['missing_count']} "
            f"segment(s) missing ({ranges}{more}); point-in-time recovery across it is "
            "impossible: take a full backup")


def emit_gap(target: str, gap: dict[str, Any]) -> None:
    """Raise ``strongroom.wal.gap`` about ``strongroom.source.<name>``."""
    emit(WAL_GAP, f"strongroom.source.{gap['name']}", gap_summary(target, gap),
         {"target": target, "kind": "postgres", "timeline": gap["timeline"],
          "base": gap["base"], "missing_count": gap["missing_count"],
          "missing_first": gap["missing"][0], "missing_last": gap["missing"][-1],
          "missing_ranges": gap["ranges"]}, name=gap["name"])


@task(name="wal-gap-check", cache_policy=NO_CACHE)
def check_wal_gaps(target: str, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Check the WAL archive of clusters ``names`` (default: every archived cluster) in
    ``target``; alert on each gap. The reports of the clusters checked."""
    logger = get_run_logger()
    reports = []
    with repository(target) as repo:
        for name in names if names is not None else archived_clusters(repo):
            gap = find_gap(repo, name)
            if gap is None:
                continue
            reports.append(gap)
            if gap["missing"]:
                logger.error("%s", gap_summary(target, gap))
                emit_gap(target, gap)
    return reports


class WalGapWatch:
    """For a long-running flow: check one cluster every ``every_s`` seconds through a fresh
    repository handle (the writer keeps its own), alert when the set of missing segments
    grows; a check that fails is logged and tried again next time."""

    def __init__(self, target: str, name: str, every_s: float = WATCH_EVERY_S) -> None:
        self.target = target
        self.name = name
        self.every_s = every_s
        self.next_at = time.monotonic() + every_s
        self.reported: set[str] = set()

    def poll(self, log: Any = None) -> dict[str, Any] | None:
        """Check if due; the gap report when a new gap was alerted, else None."""
        if time.monotonic() < self.next_at:
            return None
        self.next_at = time.monotonic() + self.every_s
        from blocks.loading import load_target

        try:
            repo = load_target(self.target).open()
            try:
                gap = find_gap(repo, self.name)
            finally:
                repo.close()
        except Exception as exc:  # noqa: BLE001 - a watch never stops the replication
            if log is not None:
                log.warning("%s: WAL gap check failed (retrying): %s", self.name,
                            (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300])
            return None
        if not gap or not set(gap["missing"]) - self.reported:
            return None
        self.reported |= set(gap["missing"])
        if log is not None:
            log.error("%s", gap_summary(self.target, gap))
        emit_gap(self.target, gap)
        return gap
