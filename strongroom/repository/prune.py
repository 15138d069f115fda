"""Two-phase garbage collection, safe alongside concurrent backups.

Phase 1, *mark* (shared lock, runs while backups run): find packs no snapshot uses, packs left
by interrupted backups, and partly used packs over the repack threshold; copy the used blobs of
the latter into new packs (additive, like a backup); record the candidates, with the snapshot
files seen, in a sealed ``prune/mark`` file. Nothing is deleted.

Phase 2, *sweep* (exclusive lock, short): only once the mark is older than the grace period.
Re-check: walk every snapshot written since the mark and every index file; a candidate holding a
blob that is now used and has no other copy is rescued. Then index files naming the doomed
packs are rewritten (new file first, old one deleted after), and only then packs are deleted.
A kill at any point leaves every indexed pack present: leftovers are garbage, never damage.
A second run resumes an interrupted sweep from the same mark. Objects under Object Lock or legal
hold are never deleted; the report says why each was skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from strongroom.audit.operation import recorded
from strongroom.crypto.aead import SealError
from strongroom.errors import IntegrityError, LockedError, StorageError, StrongroomError
from strongroom.repository.format import open_document, pack_key, seal_document
from strongroom.repository.index import index_document
from strongroom.repository.locks import RepositoryLock
from strongroom.repository.packs import PackWriter
from strongroom.repository.presence import stored_packs
from strongroom.repository.repo import Repository
from strongroom.repository.usage import IndexView, clear_dead_locks, used_blobs

MARK_KEY = "prune/mark"
AAD_MARK = b"strongroom/v1/prune-mark"
DEFAULT_GRACE = timedelta(hours=1)
DEFAULT_REPACK = 0.25  # repack a pack when at least this fraction of its bytes is unused


@dataclass
class PruneReport:
    """What a prune run did; ``bytes_freed`` is net of bytes written by repacking."""

    dry_run: bool = False
    marked_packs: int = 0
    marked_bytes: int = 0
    repacked_packs: int = 0
    repack_bytes_written: int = 0
    swept: bool = False
    deleted_packs: int = 0
    deleted_bytes: int = 0
    bytes_freed: int = 0
    index_files_rewritten: int = 0
    rescued: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pending: str = ""
    deferred: str = ""
    missing: list[str] = field(default_factory=list)
    cleared_locks: int = 0
    removed_temp_files: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Mark:
    time: float
    snapshots: list[str]
    candidates: dict[str, dict[str, Any]]  # pack id -> {size, reason, keep: [blob hex]}

    def age(self, now: float) -> timedelta:
        """How long ago the mark was made; ``now`` and ``time`` by the storage's clock."""
        return timedelta(seconds=now - self.time)


def load_mark(repo: Repository) -> Mark | None:
    """The outstanding mark, or None (a damaged one is an IntegrityError)."""
    if not repo.backend.exists(MARK_KEY):
        return None
    try:
        doc = open_document(repo.aead, repo.backend.get(MARK_KEY), AAD_MARK)
    except (SealError, ValueError) as exc:
        raise IntegrityError(f"prune mark {MARK_KEY} is damaged ({exc}); delete it and prune "
                             "again") from None
    return Mark(doc["time"], doc["snapshots"], doc["candidates"])


def _save_mark(repo: Repository, mark: Mark) -> None:
    doc = {"version": 1, "time": mark.time, "snapshots": mark.snapshots,
           "candidates": mark.candidates}
    repo.backend.put(MARK_KEY, seal_document(repo.aead, doc, AAD_MARK))


def _acquire(repo: Repository, exclusive: bool, purpose: str, wait_s: float) -> RepositoryLock:
    return RepositoryLock.acquire(repo.backend, exclusive=exclusive, purpose=purpose,
                                  wait_s=wait_s)


def _readable(repo: Repository, pid: str) -> bool:
    """False for a pack sitting unstaged in archive storage."""
    return repo.backend.readable(pack_key(pid))


def mark(repo: Repository, report: PruneReport, repack_threshold: float | None,
         dry_run: bool = False) -> Mark:
    """Phase 1: find candidates, repack partly used packs (unless dry run), save the mark."""
    snapshots = repo.snapshot_names()  # listed before the index: newer snapshots get re-checked
    repo.reload_index()
    view = IndexView.load(repo)
    stored = stored_packs(repo.backend)
    used = used_blobs(repo, snapshots)
    candidates: dict[str, dict[str, Any]] = {}
    repack: list[str] = []
    report.missing = sorted(p for p in view.packs if p not in stored)
    for pid, size in stored.items():
        entries = view.entries.get(pid)
        if entries is None:
            candidates[pid] = {"size": size, "reason": "not indexed", "keep": []}
            continue
        live = [e for e in entries if e[1] in used]
        if not live:
            candidates[pid] = {"size": size, "reason": "unused", "keep": []}
        elif repack_threshold is not None:
            total = sum(e[3] for e in entries)  # blob bytes: header overhead is not waste
            unused = total - sum(e[3] for e in live)
            if unused > 0 and unused >= repack_threshold * total:
                repack.append(pid)
    for pid in list(candidates) + repack:
        reason = repo.backend.protection(pack_key(pid))
        if reason:
            report.skipped.append(f"pack {pid[:16]}: {reason}; never removed")
            candidates.pop(pid, None)
            if pid in repack:
                repack.remove(pid)
    if repack and not dry_run:
        _repack(repo, view, used, repack, candidates, report)
    elif repack:
        report.repacked_packs = len(repack)  # a dry run says what it would repack
        for pid in repack:
            candidates[pid] = {"size": stored[pid], "reason": "repack", "keep": []}
    report.marked_packs = len(candidates)
    report.marked_bytes = sum(c["size"] for c in candidates.values())
    result = Mark(repo.backend.clock(), snapshots, candidates)
    if candidates and not dry_run:
        _save_mark(repo, result)
    return result


def _repack(repo: Repository, view: IndexView, used: set[str], repack: list[str],
            candidates: dict[str, dict[str, Any]], report: PruneReport) -> None:
    """Copy the used blobs of ``repack`` packs into new packs; the old ones become candidates."""
    doomed = set(candidates) | set(repack)
    new_packs: list[tuple[str, int, list[list[Any]]]] = []
    writer = PackWriter(repo.backend, repo.aead, lambda *p: new_packs.append(p),
                        repo.pack_target)
    copied: set[str] = set()
    try:
        for pid in repack:
            if not _readable(repo, pid):
                report.skipped.append(f"pack {pid[:16]}: in archive storage, not repacked")
                continue
            data = repo.backend.get(pack_key(pid))
            keep = []
            for btype, bid_hex, off, length, raw in view.entries[pid]:
                if bid_hex not in used:
                    continue
                keep.append(bid_hex)
                if bid_hex in copied or view.blob_packs[bid_hex] - doomed:
                    continue  # already has a copy that stays
                sealed = data[off:off + length]
                repo.decode_blob(pid, btype, bytes.fromhex(bid_hex), sealed)  # never copy damage
                writer.add(btype, bytes.fromhex(bid_hex), sealed, raw)
                copied.add(bid_hex)
            candidates[pid] = {"size": len(data), "reason": "repacked", "keep": keep}
            report.repacked_packs += 1
        writer.flush()
    finally:
        writer.close()
    if new_packs:
        repo.save_index(index_document(new_packs))
        report.repack_bytes_written = sum(size for _, size, _ in new_packs)


def sweep(repo: Repository, found: Mark, report: PruneReport,
          on_delete: Callable[[str], None] | None = None,
          lock: RepositoryLock | None = None) -> None:
    """Phase 2 (caller holds the exclusive ``lock``): re-check, rewrite index files, delete
    packs; stops (LockedError) before any write once the lock's lease may have run out."""
    held = lock.ensure_held if lock is not None else (lambda: None)
    current = repo.snapshot_names()
    repo.reload_index()
    view = IndexView.load(repo)
    stored = stored_packs(repo.backend)
    new_snaps = [n for n in current if n not in set(found.snapshots)]
    used_new = used_blobs(repo, new_snaps)
    doomed = {pid for pid in found.candidates if pid in stored}

    def needed(pid: str) -> set[str]:
        now_used = {e[1] for e in view.entries.get(pid, ()) if e[1] in used_new}
        return now_used | set(found.candidates[pid].get("keep", ()))

    for pid in sorted(doomed):
        if found.candidates[pid]["reason"] == "not indexed" and pid in view.entries:
            # Indexed since the mark (a backup or another prune's repack finished): its blobs
            # may be used by snapshots the mark already walked. Judge it at the next mark.
            doomed.discard(pid)
            report.rescued.append(f"pack {pid[:16]}: indexed since the mark")
    changed = True
    while changed:  # rescuing one pack can make another one's blobs the only copy left
        changed = False
        for pid in sorted(doomed):
            orphans = [b for b in needed(pid)
                       if not any(p in stored and p not in doomed
                                  for p in view.blob_packs.get(b, ()))]
            if orphans:
                doomed.discard(pid)
                changed = True
                report.rescued.append(f"pack {pid[:16]}: {len(orphans)} blob(s) now used by a "
                                      "snapshot written since the mark")
    for pid in sorted(doomed):
        reason = repo.backend.protection(pack_key(pid))
        if reason:
            doomed.discard(pid)
            report.skipped.append(f"pack {pid[:16]}: {reason}; never removed")
    # Index files naming doomed packs: rewrite (new first), or keep their packs if locked.
    rewrite = {name for pid in doomed for name in view.pack_indexes.get(pid, ())}
    for name in sorted(rewrite):
        reason = repo.backend.protection(f"index/{name}")
        if reason:
            for pack in view.docs[name]["packs"]:
                if pack["id"] in doomed:
                    doomed.discard(pack["id"])
                    report.skipped.append(f"pack {pack['id'][:16]}: its index file {name[:16]} "
                                          f"is protected ({reason}); never removed")
    rewrite = {name for pid in doomed for name in view.pack_indexes.get(pid, ())}
    freed = 0
    for name in sorted(rewrite):
        held()
        doc = view.docs[name]
        keep = [p for p in doc["packs"] if p["id"] not in doomed]
        if keep:
            repo.save_index(index_document([(p["id"], p["size"], p["blobs"]) for p in keep]))
        repo.backend.delete(f"index/{name}")
        report.index_files_rewritten += 1
    for pid in sorted(doomed):
        if on_delete:
            on_delete(pid)
        held()
        try:
            repo.backend.delete(pack_key(pid))
        except StorageError as exc:
            report.skipped.append(f"pack {pid[:16]}: {exc}")
            continue
        report.deleted_packs += 1
        freed += stored[pid]
    report.deleted_bytes = freed
    report.swept = True
    repo.backend.delete(MARK_KEY)
    repo.reload_index()


@recorded("prune")
def prune(repo: Repository, grace: timedelta = DEFAULT_GRACE,
          repack_threshold: float | None = DEFAULT_REPACK, dry_run: bool = False,
          lock_wait_s: float = 120.0,
          on_delete: Callable[[str], None] | None = None) -> PruneReport:
    """Sweep a due mark, then mark anew; with ``grace`` 0 the new mark is swept at once.

    ``dry_run`` only reports what would be marked (no lock, no writes). ``on_delete`` is a test
    hook called before each pack deletion.
    """
    if repack_threshold is not None and not 0 < repack_threshold <= 1:
        raise StrongroomError("repack threshold must be a fraction in (0, 1]")
    report = PruneReport(dry_run=dry_run)
    if dry_run:
        mark(repo, report, repack_threshold, dry_run=True)
        return report
    now = repo.require_clock("prune")
    report.cleared_locks = len(clear_dead_locks(repo.backend))
    report.removed_temp_files = _remove_leftovers(repo, grace)
    outstanding = load_mark(repo)
    if outstanding is not None and outstanding.age(now) < grace:
        due = datetime.fromtimestamp(outstanding.time, UTC) + grace
        report.pending = (f"{len(outstanding.candidates)} pack(s) marked "
                          f"{_ago(outstanding.age(now))} ago; deletion is due after "
                          f"{due.isoformat(timespec='seconds')}")
        return report
    if outstanding is not None:
        if not _sweep_locked(repo, outstanding, report, lock_wait_s, on_delete):
            return report
    shared = _acquire(repo, False, "prune mark", lock_wait_s)
    try:
        fresh = mark(repo, report, repack_threshold)
    finally:
        shared.release()
    if not fresh.candidates:
        pass  # nothing to delete: no mark, no exclusive lock
    elif grace <= timedelta(0):
        _sweep_locked(repo, fresh, report, lock_wait_s, on_delete)
    else:
        due = datetime.fromtimestamp(fresh.time, UTC) + grace
        report.pending = (f"{len(fresh.candidates)} pack(s) marked; deletion is due after "
                          f"{due.isoformat(timespec='seconds')}")
    report.bytes_freed = report.deleted_bytes - report.repack_bytes_written
    return report


def _sweep_locked(repo: Repository, found: Mark, report: PruneReport, wait_s: float,
                  on_delete: Callable[[str], None] | None) -> bool:
    try:
        lock = _acquire(repo, True, "prune sweep", wait_s)
    except LockedError as exc:
        report.deferred = f"sweep deferred, the mark is kept for the next run: {exc}"
        return False
    try:
        sweep(repo, found, report, on_delete, lock)
    finally:
        lock.release()
    report.bytes_freed = report.deleted_bytes - report.repack_bytes_written
    return True


def _remove_leftovers(repo: Repository, grace: timedelta) -> int:
    """Remove temporary objects of killed writers older than the grace period."""
    removed = 0
    for name, _size in list(repo.backend.leftovers(grace.total_seconds())):
        try:
            repo.backend.remove_leftover(name)
        except StorageError:
            continue
        removed += 1
    return removed


def _ago(delta: timedelta) -> str:
    secs = int(delta.total_seconds())
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m" if secs >= 3600 else f"{secs // 60}m"
