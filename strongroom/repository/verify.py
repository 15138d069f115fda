"""Repository checks: structure always; with read_data, every (or a sample of) pack re-read.

Problems are named by object: pack, blob, index file, snapshot. Leftovers of interrupted
backups (packs no index names, blobs no snapshot uses) are garbage, reported apart from errors.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from strongroom.errors import IntegrityError, StrongroomError
from strongroom.repository.format import content_name, pack_key
from strongroom.repository.packs import read_pack_header
from strongroom.repository.repo import Repository


@dataclass
class VerifyReport:
    snapshots: int = 0
    packs: int = 0
    packs_read: int = 0
    blobs_checked: int = 0
    errors: list[str] = field(default_factory=list)
    garbage: list[str] = field(default_factory=list)
    damaged_snapshots: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "snapshots": self.snapshots, "packs": self.packs,
                "packs_read": self.packs_read, "blobs_checked": self.blobs_checked,
                "errors": self.errors, "garbage": self.garbage,
                "damaged_snapshots": self.damaged_snapshots}


def verify(repo: Repository, read_data: bool = False, subset_pct: float | None = None,
           snapshot_ids: list[str] | None = None,
           progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Check the repository; ``read_data`` or ``subset_pct`` also re-reads pack contents."""
    report = VerifyReport()
    # Snapshots first, then the index, then the packs: writers store packs, then index files,
    # then the snapshot, so every snapshot listed here has its index files and packs visible
    # by the time we read those (a backup running meanwhile is not reported as damage).
    names = repo.snapshot_names()
    index = repo.reload_index()
    report.errors.extend(repo.index_errors)
    stored = dict(repo.backend.list("data/"))
    stored_packs = {key.rsplit("/", 1)[-1]: size for key, size in stored.items()}
    report.packs = len(index.packs)

    for pid, size in index.packs.items():
        actual = stored_packs.get(pid)
        if actual is None:
            report.errors.append(f"pack {pid} named by index {_names(index, pid)} is missing")
        elif actual != size:
            report.errors.append(f"pack {pid} has {actual} bytes, index says {size} (truncated "
                                 "or damaged)")
    for pid in stored_packs.keys() - index.packs.keys():
        report.garbage.append(f"pack {pid} is not in any index (left by an interrupted backup)")

    # Walk every snapshot's trees; remember which snapshots use each blob.
    users: dict[bytes, set[str]] = {}
    wanted = set(snapshot_ids) if snapshot_ids else None
    for name in names:
        if wanted is not None and not any(name.startswith(w) for w in wanted):
            continue
        try:
            snap = repo.load_snapshot(name)
        except IntegrityError as exc:
            report.errors.append(str(exc))
            report.damaged_snapshots.append(name)
            continue
        report.snapshots += 1
        _walk_snapshot(repo, snap, users, report)

    for bid, who in users.items():
        loc = index.get(bid)
        if loc is None:
            report.errors.append(f"blob {bid.hex()[:16]} used by snapshot(s) "
                                 f"{_short(who)} is not in the index")
        elif not any(c.pack in stored_packs for c in index.locations(bid)):
            report.errors.append(f"blob {bid.hex()[:16]} used by snapshot(s) {_short(who)} is "
                                 f"in missing pack {loc.pack[:16]}")
    if wanted is None:
        unused = sum(1 for bid in index.blobs if bid not in users)
        if unused:
            report.garbage.append(f"{unused} blob(s) are used by no snapshot (prune frees them)")

    if read_data or subset_pct:
        packs = sorted(pid for pid in index.packs if pid in stored_packs)
        if subset_pct and not read_data:
            count = max(1, round(len(packs) * subset_pct / 100)) if packs else 0
            packs = sorted(random.sample(packs, count))
        for i, pid in enumerate(packs):
            _read_pack(repo, pid, users, report)
            if progress:
                progress(i + 1, len(packs))
    return report


def _names(index: Any, pid: str) -> str:
    return ", ".join(sorted(n[:16] for n in index.pack_sources.get(pid, ())))


def _short(ids: set[str]) -> str:
    return ", ".join(sorted(i[:8] for i in ids))


def _walk_snapshot(repo: Repository, snap: Any, users: dict[bytes, set[str]],
                   report: VerifyReport) -> None:
    stack = [(snap.tree, "/")]
    while stack:
        tree_id, path = stack.pop()
        bid = bytes.fromhex(tree_id)
        users.setdefault(bid, set()).add(snap.id)
        try:
            nodes = repo.load_tree(tree_id)
        except IntegrityError as exc:
            report.errors.append(f"snapshot {snap.short_id}: tree of {path}: {exc}")
            continue
        for node in nodes:
            for cid in node.content:
                users.setdefault(bytes.fromhex(cid), set()).add(snap.id)
            if node.subtree:
                stack.append((node.subtree, f"{path.rstrip('/')}/{node.name}"))


def _read_pack(repo: Repository, pid: str, users: dict[bytes, set[str]],
               report: VerifyReport) -> None:
    indexed = {bid: loc for bid, loc in repo.index.blobs.items() if loc.pack == pid}
    affected = {s for bid in indexed for s in users.get(bid, ())}
    try:
        data = repo.backend.get(pack_key(pid))
        if content_name(data) != pid:
            report.errors.append(f"pack {pid}: contents do not match its name (damaged); "
                                 f"affects snapshot(s) {_short(affected) or 'none'}")
        entries = read_pack_header(repo.aead, pid, data, check_name=False)
    except StrongroomError as exc:
        report.errors.append(f"{exc}; affects snapshot(s) {_short(affected) or 'none'}")
        return
    report.packs_read += 1
    # Restores read where the index points: it must agree with the pack's own header.
    listed = {bytes.fromhex(e[1]): (e[0], e[2], e[3]) for e in entries}
    for bid, loc in indexed.items():
        if listed.get(bid) != (loc.type, loc.offset, loc.length):
            report.errors.append(f"blob {bid.hex()[:16]}: the index places it in pack "
                                 f"{pid[:16]} at {loc.offset}+{loc.length}, where the pack's "
                                 f"header does not; used by snapshot(s) "
                                 f"{_short(users.get(bid, set())) or 'none'}")
    for btype, bid_hex, off, length, _raw in entries:
        bid = bytes.fromhex(bid_hex)
        report.blobs_checked += 1
        try:
            repo.decode_blob(pid, btype, bid, data[off:off + length])
        except IntegrityError as exc:
            report.errors.append(f"{exc}; used by snapshot(s) {_short(users.get(bid, set()))}")
