"""Re-encryption under the current epoch (``key rotate --reencrypt``) and retiring old epochs.

Prune's rules, so it runs next to backups and survives kill -9:

* *copy* (shared lock): every indexed pack that needs a target epoch is read whole, its blobs
  re-sealed (authenticated, not re-compressed) into ONE new pack under the current epoch; the
  new pack is read back and every blob decrypted and re-hashed (verified) before an index file
  naming it is written; the old -> new pairing goes into the sealed ``reencrypt/state``
  document after each pack, so a second run resumes where a killed one stopped. Snapshot files
  are re-sealed (new file first, the old one deleted after: their ids change).
* *swap* (exclusive lock, short): whatever backups wrote meanwhile under an old epoch is copied
  too; index files naming replaced packs, or sealed under a target epoch, are rewritten (new
  file first); only then are the replaced packs deleted; other sealed documents (prune mark,
  copy maps, registered prefixes) are re-sealed in place.

A kill at any point leaves every indexed pack present and every object readable with the keys
that opened the repository before. ``retire_epoch`` destroys an epoch key only when nothing
stored needs it (checked under the exclusive lock).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from strongroom.crypto.epochs import HEADER, epoch_key_name, epoch_of
from strongroom.errors import ConfigError, IntegrityError, StrongroomError
from strongroom.repository.format import (
    AAD_SNAPSHOT,
    blob_aad,
    content_name,
    open_document,
    pack_key,
    reseal,
    seal_document,
)
from strongroom.repository.index import index_document
from strongroom.repository.locks import RepositoryLock
from strongroom.repository.packs import PackWriter, header_length, pack_epochs, read_pack_header
from strongroom.repository.presence import stored_packs
from strongroom.repository.repo import Repository, keyring_objects
from strongroom.repository.usage import IndexView
from strongroom.storage.base import MissingObject

STATE_KEY = "reencrypt/state"
AAD_STATE = b"strongroom/v2/reencrypt-state"
TAIL = 64 * 1024  # bytes read from a pack's end to find its header (read again if longer)

# Sealed documents outside data/, index/, snapshots/: prefix -> AAD. Other modules add theirs.
SEALED_PREFIXES: dict[str, bytes] = {
    "prune/": b"strongroom/v1/prune-mark",
    "copymap/": b"strongroom/v1/copymap",
}

# Called with (repo, operation) before an operation that destroys or rewrites data under old
# keys ("key rotate --reencrypt", "key retire"); the second factor sets it.
SECOND_FACTOR: Callable[[Repository, str], None] = lambda repo, op: None  # noqa: E731


def register_sealed_prefix(prefix: str, aad: bytes) -> None:
    """Make re-encryption re-seal, and retirement account for, sealed documents under
    ``prefix`` (rewritten in place under the same key)."""
    SEALED_PREFIXES[prefix] = aad


def require_second_factor(repo: Repository, operation: str) -> None:
    SECOND_FACTOR(repo, operation)


@dataclass
class ReencryptReport:
    current: int = 0
    targets: list[int] = field(default_factory=list)
    packs_rewritten: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    packs_deleted: int = 0
    index_files_rewritten: int = 0
    snapshots_resealed: dict[str, str] = field(default_factory=dict)  # old id -> new id
    documents_resealed: int = 0
    skipped: list[str] = field(default_factory=list)
    resumed: bool = False
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _State:
    current: int
    targets: list[int]
    replaced: dict[str, str] = field(default_factory=dict)  # old pack -> new pack
    snapshots: dict[str, str] = field(default_factory=dict)  # old snapshot -> new snapshot


def _load_state(repo: Repository) -> _State | None:
    try:
        data = repo.backend.get(STATE_KEY)
    except MissingObject:
        return None
    try:
        doc = open_document(repo.aead, data, AAD_STATE)
    except (ValueError, StrongroomError, Exception):  # noqa: BLE001 (sealed under a gone key)
        return None  # only costs copying again
    return _State(doc["current"], doc["targets"], doc["replaced"], doc["snapshots"])


def _save_state(repo: Repository, state: _State) -> None:
    repo.backend.put(STATE_KEY, seal_document(repo.aead, asdict(state), AAD_STATE))


def _first_epoch(repo: Repository, key: str) -> int:
    return epoch_of(repo.backend.get_range(key, 0, HEADER.size))


def pack_needs(repo: Repository, pid: str, size: int) -> set[int]:
    """Epochs a stored pack needs, from its header (one or two range reads)."""
    key = pack_key(pid)
    tail = repo.backend.get_range(key, max(0, size - TAIL), min(size, TAIL))
    need = header_length(pid, tail)
    if need > len(tail):
        tail = repo.backend.get_range(key, max(0, size - need), min(size, need))
    try:
        return pack_epochs(repo.aead, pid, tail)
    except IntegrityError:
        return {epoch_of(tail[len(tail) - need:])}


def _targets(repo: Repository, epochs: set[int] | None) -> set[int]:
    if repo.format_version < 2:
        raise ConfigError(f"{repo.url} is a format-1 repository: run `strongroom migrate` "
                          "first")
    keyring = repo.refresh_keyring()
    current = keyring.current
    if epochs is None:
        return {e for e in keyring.epochs if e != current}
    if current in epochs:
        raise ConfigError(f"epoch {current} is the current epoch: `strongroom key rotate` "
                          "first, then re-encrypt it")
    unknown = sorted(epochs - set(keyring.epochs))
    if unknown:
        raise ConfigError(f"no usable key for epoch(s) {', '.join(map(str, unknown))} "
                          f"(epochs: {', '.join(map(str, keyring.epochs))})")
    return set(epochs)


def reencrypt(repo: Repository, epochs: set[int] | None = None, lock_wait_s: float = 120.0,
              on_pack: Callable[[str, str], None] | None = None) -> ReencryptReport:
    """Rewrite every object sealed under ``epochs`` (default: every epoch but the current one)
    under the current epoch. ``on_pack(old, new)`` is a test hook after each pack's copy."""
    import time

    started = time.monotonic()
    targets = _targets(repo, epochs)
    report = ReencryptReport(current=repo.keyring.current, targets=sorted(targets))
    if not targets:
        return report
    repo.require_clock("re-encrypt")
    state = _load_state(repo)
    report.resumed = state is not None
    if state is None:
        state = _State(repo.keyring.current, sorted(targets))
    shared = RepositoryLock.acquire(repo.backend, exclusive=False, purpose="reencrypt copy",
                                    wait_s=lock_wait_s)
    try:
        _copy_packs(repo, targets, state, report, shared, on_pack)
        _reseal_snapshots(repo, targets, state, report, shared)
    finally:
        shared.release()
    lock = RepositoryLock.acquire(repo.backend, exclusive=True, purpose="reencrypt swap",
                                  wait_s=lock_wait_s)
    try:
        repo.refresh_keyring()
        _copy_packs(repo, targets, state, report, lock, on_pack)  # written meanwhile
        _swap(repo, targets, state, report, lock)
        _reseal_snapshots(repo, targets, state, report, lock)
        _reseal_documents(repo, targets, report, lock)
        repo.backend.delete(STATE_KEY)
    finally:
        lock.release()
    repo.reload_index()
    report.duration_s = round(time.monotonic() - started, 3)
    return report


def _copy_packs(repo: Repository, targets: set[int], state: _State, report: ReencryptReport,
                lock: RepositoryLock, on_pack: Callable[[str, str], None] | None) -> None:
    index = repo.reload_index()
    stored = stored_packs(repo.backend)
    for pid in sorted(index.packs):
        if pid not in stored:
            continue
        done = state.replaced.get(pid)
        if done is not None and done in index.packs and done in stored:
            continue
        if not pack_needs(repo, pid, stored[pid]) & targets:
            continue
        if not repo.backend.readable(pack_key(pid)):
            report.skipped.append(f"pack {pid[:16]}: in archive storage (stage it first)")
            continue
        lock.ensure_held()
        new = _copy_pack(repo, pid, report)
        state.replaced[pid] = new
        _save_state(repo, state)
        if on_pack:
            on_pack(pid, new)


def _copy_pack(repo: Repository, pid: str, report: ReencryptReport) -> str:
    """One old pack -> one new pack under the current epoch, verified, then indexed."""
    data = repo.backend.get(pack_key(pid))
    if content_name(data) != pid:
        raise IntegrityError(f"pack {pid[:16]} is damaged (contents do not match its name); "
                             "nothing re-encrypted from it")
    made: list[tuple[str, int, list[list[Any]]]] = []
    writer = PackWriter(repo.backend, repo.aead, lambda *p: made.append(p),
                        target=1 << 62, uploaders=1)
    try:
        for btype, bid_hex, off, length, raw in read_pack_header(repo.aead, pid, data, False):
            bid = bytes.fromhex(bid_hex)
            sealed = reseal(repo.aead, repo.aead, memoryview(data)[off:off + length],
                            blob_aad(btype, bid))
            writer.add(btype, bid, sealed, raw)
        writer.flush()
    finally:
        writer.close()
    new_id, size, entries = made[0]
    _verify_pack(repo, new_id, entries)
    repo.save_index(index_document([(new_id, size, entries)]))
    report.packs_rewritten += 1
    report.bytes_read += len(data)
    report.bytes_written += size
    return new_id


def _verify_pack(repo: Repository, pid: str, entries: list[list[Any]]) -> None:
    """Read a new pack back from storage; every blob must decrypt and match its id."""
    data = repo.backend.get(pack_key(pid))
    if content_name(data) != pid:
        raise IntegrityError(f"re-encrypted pack {pid[:16]} reads back damaged; the old pack "
                             "is kept")
    for btype, bid_hex, off, length, _raw in entries:
        repo.decode_blob(pid, btype, bytes.fromhex(bid_hex), data[off:off + length])


def _reseal_snapshots(repo: Repository, targets: set[int], state: _State,
                      report: ReencryptReport, lock: RepositoryLock) -> None:
    """Snapshot files: the new one first, the old one deleted after (ids change). A manifest
    without ``arrived`` gets its file's date, so the new file's later date never re-places it
    (a snapshot dated in the future stays flagged)."""
    stored = {key.rsplit("/", 1)[-1]: when for key, _size, when in
              repo.backend.list_times("snapshots/")}
    for name in list(stored):
        key = f"snapshots/{name}"
        new = state.snapshots.get(name)
        if new is not None and repo.backend.exists(f"snapshots/{new}"):
            lock.ensure_held()
            repo.backend.delete(key)  # resumed: the new file is in place
            report.snapshots_resealed[name] = new
            continue
        try:
            if _first_epoch(repo, key) not in targets:
                continue
            data = repo.backend.get(key)
        except MissingObject:
            continue  # forgotten meanwhile
        if content_name(data) != name:
            raise IntegrityError(f"snapshot file {name} is damaged; not re-encrypted")
        doc = open_document(repo.aead, data, AAD_SNAPSHOT)
        if doc.get("arrived") is None:
            doc["arrived"] = datetime.fromtimestamp(stored[name], UTC).isoformat()
        fresh = seal_document(repo.aead, doc, AAD_SNAPSHOT)
        new = content_name(fresh)
        state.snapshots[name] = new
        _save_state(repo, state)
        lock.ensure_held()
        repo.backend.put(f"snapshots/{new}", fresh)
        repo.backend.delete(key)
        repo._snapshot_cache.pop(name, None)
        report.snapshots_resealed[name] = new


def _swap(repo: Repository, targets: set[int], state: _State, report: ReencryptReport,
          lock: RepositoryLock) -> None:
    """Exclusive: index files without the replaced packs (new first), then delete those."""
    repo.reload_index()
    view = IndexView.load(repo)
    stored = stored_packs(repo.backend)
    replaced = {old for old, new in state.replaced.items()
                if old != new and new in view.packs and new in stored}
    for name, doc in sorted(view.docs.items()):
        names_old = any(p["id"] in replaced for p in doc["packs"])
        try:
            sealed_old = _first_epoch(repo, f"index/{name}") in targets
        except MissingObject:
            continue
        if not (names_old or sealed_old):
            continue
        reason = repo.backend.protection(f"index/{name}")
        if reason:
            report.skipped.append(f"index file {name[:16]}: {reason}")
            replaced -= {p["id"] for p in doc["packs"]}
            continue
        keep = [p for p in doc["packs"] if p["id"] not in replaced]
        lock.ensure_held()
        if keep:
            repo.save_index(index_document([(p["id"], p["size"], p["blobs"]) for p in keep]))
        repo.backend.delete(f"index/{name}")
        report.index_files_rewritten += 1
    for pid in sorted(replaced):
        if pid not in stored:
            continue
        reason = repo.backend.protection(pack_key(pid))
        if reason:
            report.skipped.append(f"pack {pid[:16]}: {reason}; kept")
            continue
        lock.ensure_held()
        repo.backend.delete(pack_key(pid))
        report.packs_deleted += 1


def _reseal_documents(repo: Repository, targets: set[int], report: ReencryptReport,
                      lock: RepositoryLock) -> None:
    for prefix, aad in SEALED_PREFIXES.items():
        for key, _size in list(repo.backend.list(prefix)):
            try:
                if _first_epoch(repo, key) not in targets:
                    continue
                data = repo.backend.get(key)
            except MissingObject:
                continue
            lock.ensure_held()
            repo.backend.put(key, reseal(repo.aead, repo.aead, data, aad))
            report.documents_resealed += 1


# ---- what still needs an epoch; retiring one ------------------------------------------------

def epoch_usage(repo: Repository) -> dict[int, dict[str, int]]:
    """Epoch -> {"packs", "index", "snapshots", "documents"}: how many stored objects need it
    (indexed packs by their header's list of blob epochs)."""
    usage: dict[int, dict[str, int]] = {}

    def count(epoch: int, kind: str) -> None:
        usage.setdefault(epoch, {"packs": 0, "index": 0, "snapshots": 0, "documents": 0})
        usage[epoch][kind] += 1

    index = repo.reload_index()
    stored = stored_packs(repo.backend)
    for pid in index.packs:
        if pid in stored:
            for epoch in pack_needs(repo, pid, stored[pid]):
                count(epoch, "packs")
    for prefix, kind in (("index/", "index"), ("snapshots/", "snapshots"),
                         *((p, "documents") for p in SEALED_PREFIXES)):
        for key, _size in repo.backend.list(prefix):
            try:
                count(_first_epoch(repo, key), kind)
            except MissingObject:
                continue
    return usage


def retire_epoch(repo: Repository, epoch: int, lock_wait_s: float = 120.0) -> None:
    """Destroy an old epoch's key (its keyring object keeps only a tombstone). Refused for the
    current epoch, for epoch 0 while the format-1 master that derives it is still the master,
    and while any stored object still needs it (checked under the exclusive lock)."""
    keyring = repo.refresh_keyring()
    if repo.format_version < 2:
        raise ConfigError(f"{repo.url} is a format-1 repository: run `strongroom migrate` "
                          "first")
    repo.require_clock("retire a key epoch")
    if epoch == keyring.current:
        raise ConfigError(f"epoch {epoch} is the current epoch: `strongroom key rotate` first")
    objects = {o.name: o for o in keyring_objects(repo.backend)}
    obj = objects.get(epoch_key_name(epoch).removeprefix("keyring/"))
    if obj is None:
        raise ConfigError(f"no epoch {epoch} in {repo.url}")
    if obj.retired:
        raise ConfigError(f"epoch {epoch} was already retired ({obj.retired})")
    if epoch == 0 and _derives_epoch0(repo, obj):
        raise ConfigError("epoch 0 is derived from the format-1 master key: run `strongroom "
                          "key rotate --master` first, or its key is not destroyed")
    lock = RepositoryLock.acquire(repo.backend, exclusive=True, purpose="key retire",
                                  wait_s=lock_wait_s)
    try:
        usage = epoch_usage(repo).get(epoch)
        if usage and any(usage.values()):
            what = ", ".join(f"{n} {k}" for k, n in usage.items() if n)
            raise ConfigError(f"epoch {epoch} is still needed ({what}): run `strongroom key "
                              f"rotate --reencrypt --epoch {epoch}` first")
        from datetime import UTC, datetime

        obj.meta["retired"] = datetime.now(UTC).isoformat(timespec="seconds")
        obj.wrapped = {}
        lock.ensure_held()
        repo.backend.put(obj.key, obj.dump())
    finally:
        lock.release()
    repo.refresh_keyring()


def _derives_epoch0(repo: Repository, obj: Any) -> bool:
    """True while the master key in use is the format-1 master that derives epoch 0's key."""
    try:
        return obj.unwrap(repo.master, repo.id) == repo.master.encryption_key
    except StrongroomError:
        return False


def describe_state(repo: Repository) -> str | None:
    """A one-line note if a re-encryption was interrupted (for ``key list``)."""
    if not repo.backend.exists(STATE_KEY):
        return None
    state = _load_state(repo)
    if state is None:
        return "an interrupted re-encryption left its state: run `key rotate --reencrypt` again"
    return (f"an interrupted re-encryption of epoch(s) {json.dumps(state.targets)} copied "
            f"{len(state.replaced)} pack(s): run `strongroom key rotate --reencrypt` again")
