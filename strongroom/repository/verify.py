"""Repository checks: structure always; with read_data, every (or a sample of) pack re-read.

Problems are named by object: pack, blob, index file, snapshot. Leftovers of interrupted
backups (packs no index names, blobs no snapshot uses, temporary files of killed writers) are
garbage, reported apart from errors.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from strongroom.audit.operation import recorded
from strongroom.errors import IntegrityError, SnapshotNotFound, StrongroomError
from strongroom.repository.format import content_name, pack_key
from strongroom.repository.packs import read_pack_header
from strongroom.repository.repo import Repository
from strongroom.storage.base import MissingObject

CONFIRM_ROUNDS = 3  # fresh looks at what seemed missing, while a prune may still be running


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


@recorded("verify")
def verify(repo: Repository, read_data: bool = False, subset_pct: float | None = None,
           snapshot_ids: list[str] | None = None,
           progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Check the repository; ``read_data`` or ``subset_pct`` also re-reads pack contents.

    Runs beside backups, forget and prune without a lock: what looks missing (a pack, a blob,
    a snapshot's tree) is looked at again in a fresh listing and index before it is reported,
    and a snapshot forgotten meanwhile is not damage."""
    report = VerifyReport()
    # Snapshots first, then the index, then the packs: writers store packs, then index files,
    # then the snapshot, so every snapshot listed here has its index files and packs visible
    # by the time we read those (a backup running meanwhile is not reported as damage).
    names = repo.snapshot_names()
    index = repo.reload_index()
    report.errors.extend(repo.index_errors)
    stored_packs = _stored(repo)
    report.packs = len(index.packs)

    missing: set[str] = set()
    for pid, size in index.packs.items():
        actual = stored_packs.get(pid)
        if actual is None:
            missing.add(pid)
        elif actual != size:
            report.errors.append(f"pack {pid} has {actual} bytes, index says {size} (truncated "
                                 "or damaged)")
    for pid in stored_packs.keys() - index.packs.keys():
        report.garbage.append(f"pack {pid} is not in any index (left by an interrupted backup)")
    temp = list(repo.backend.leftovers())
    if temp:
        report.garbage.append(f"{len(temp)} temporary file(s) of killed writers "
                              f"({sum(size for _, size in temp)} bytes; prune removes those "
                              "older than the grace period)")

    # Walk every snapshot's trees; remember which snapshots use each blob.
    users: dict[bytes, set[str]] = {}
    walked: dict[str, Any] = {}
    tree_errors: dict[str, list[str]] = {}
    wanted = set(snapshot_ids) if snapshot_ids else None
    for name in names:
        if wanted is not None and not any(name.startswith(w) for w in wanted):
            continue
        try:
            snap = repo.load_snapshot(name)
        except SnapshotNotFound:
            continue  # forgotten since the listing: not damage
        except IntegrityError as exc:
            report.errors.append(str(exc))
            report.damaged_snapshots.append(name)
            continue
        report.snapshots += 1
        walked[name] = snap
        _walk_snapshot(repo, snap, users, tree_errors.setdefault(name, []))

    suspects = {bid for bid in users
                if not any(c.pack in stored_packs for c in index.locations(bid))}
    vanished: set[str] = set()
    if read_data or subset_pct:
        packs = sorted(pid for pid in index.packs if pid in stored_packs)
        if subset_pct and not read_data:
            count = max(1, round(len(packs) * subset_pct / 100)) if packs else 0
            packs = sorted(random.sample(packs, count))
        for i, pid in enumerate(packs):
            if not _read_pack(repo, pid, users, report):
                vanished.add(pid)
            if progress:
                progress(i + 1, len(packs))
    _confirm(repo, report, walked, users, tree_errors, missing | vanished, suspects)
    if wanted is None:
        unused = sum(1 for bid in index.blobs if bid not in users)
        if unused:
            report.garbage.append(f"{unused} blob(s) are used by no snapshot (prune frees them)")
    return report


def _stored(repo: Repository) -> dict[str, int]:
    return {key.rsplit("/", 1)[-1]: size for key, size in repo.backend.list("data/")}


def _confirm(repo: Repository, report: VerifyReport, walked: dict[str, Any],
             users: dict[bytes, set[str]], tree_errors: dict[str, list[str]],
             missing: set[str], suspects: set[bytes]) -> None:
    """Report what is still missing in a fresh look: a forget or prune that ran meanwhile
    explains a vanished snapshot, pack or index entry; damage stays."""
    tree_errors = {sid: errs for sid, errs in tree_errors.items() if errs}
    for _round in range(CONFIRM_ROUNDS):
        if not (missing or suspects or tree_errors):
            return
        live = set(repo.snapshot_names())
        before = _stored(repo)  # packs first, then the index naming them (prune's order)
        index = repo.reload_index()
        after = _stored(repo)
        missing = {pid for pid in missing if pid in index.packs and pid not in before}
        suspects = {bid for bid in suspects if users[bid] & live
                    and not any(c.pack in after for c in index.locations(bid))}
        retried: dict[str, list[str]] = {}
        for sid in tree_errors:
            if sid in live:  # walk it again with the fresh index
                _walk_snapshot(repo, walked[sid], {}, retried.setdefault(sid, []))
        tree_errors = {sid: errs for sid, errs in retried.items() if errs}
    for pid in sorted(missing):
        report.errors.append(f"pack {pid} named by index {_names(repo.index, pid)} is missing")
    for sid in sorted(tree_errors):
        report.errors.extend(tree_errors[sid])
    live = set(repo.snapshot_names())
    for bid in sorted(suspects):
        who = users[bid] & live
        loc = repo.index.get(bid)
        if not who:
            continue
        if loc is None:
            report.errors.append(f"blob {bid.hex()[:16]} used by snapshot(s) "
                                 f"{_short(who)} is not in the index")
        else:
            report.errors.append(f"blob {bid.hex()[:16]} used by snapshot(s) {_short(who)} is "
                                 f"in missing pack {loc.pack[:16]}")


def _names(index: Any, pid: str) -> str:
    return ", ".join(sorted(n[:16] for n in index.pack_sources.get(pid, ())))


def _short(ids: set[str]) -> str:
    return ", ".join(sorted(i[:8] for i in ids))


def _walk_snapshot(repo: Repository, snap: Any, users: dict[bytes, set[str]],
                   errors: list[str]) -> None:
    stack = [(snap.tree, "/")]
    while stack:
        tree_id, path = stack.pop()
        bid = bytes.fromhex(tree_id)
        users.setdefault(bid, set()).add(snap.id)
        try:
            nodes = repo.load_tree(tree_id)
        except IntegrityError as exc:
            errors.append(f"snapshot {snap.short_id}: tree of {path}: {exc}")
            continue
        for node in nodes:
            for cid in node.content:
                users.setdefault(bytes.fromhex(cid), set()).add(snap.id)
            if node.subtree:
                stack.append((node.subtree, f"{path.rstrip('/')}/{node.name}"))


def _read_pack(repo: Repository, pid: str, users: dict[bytes, set[str]],
               report: VerifyReport) -> bool:
    """Re-read one pack; False if it vanished meanwhile (confirmed or not by the caller)."""
    indexed = {bid: loc for bid, loc in repo.index.blobs.items() if loc.pack == pid}
    affected = {s for bid in indexed for s in users.get(bid, ())}
    try:
        data = repo.backend.get(pack_key(pid))
        if content_name(data) != pid:
            report.errors.append(f"pack {pid}: contents do not match its name (damaged); "
                                 f"affects snapshot(s) {_short(affected) or 'none'}")
        entries = read_pack_header(repo.aead, pid, data, check_name=False)
    except MissingObject:
        return False
    except StrongroomError as exc:
        report.errors.append(f"{exc}; affects snapshot(s) {_short(affected) or 'none'}")
        return True
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
    return True
