"""Are the packs an operation relies on still in storage? Checked before its result is
written: a pack deleted while the operation ran (by a prune that judged its lock dead, or by
hand) must make it fail, never leave a snapshot that names missing data."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from strongroom.errors import IntegrityError, LockedError, StrongroomError
from strongroom.repository.format import pack_key
from strongroom.repository.locks import BACKUP_LOCK_WAIT, RepositoryLock
from strongroom.storage.base import Backend

if TYPE_CHECKING:
    from strongroom.repository.index import Index
    from strongroom.repository.model import Snapshot
    from strongroom.repository.repo import Repository

log = logging.getLogger("strongroom")
HEAD_LIMIT = 64  # up to this many packs: one HEAD each; more: one listing of data/


class PacksVanished(IntegrityError):
    """Packs an operation relied on are gone from storage."""


def stored_packs(backend: Backend) -> dict[str, int]:
    """Pack id -> size of every pack file in storage."""
    return {key.rsplit("/", 1)[-1]: size for key, size in backend.list("data/")}


def index_of_stored_packs(repo: Repository) -> Index:
    """The index read again, without the packs missing from storage (lost, deleted by hand):
    a writer never deduplicates against them, so their blobs are stored anew. Index first,
    then the listing: packs are stored before the index files naming them."""
    index = repo.reload_index()
    index.drop_packs(set(index.packs) - stored_packs(repo.backend).keys())
    return index


def vanished_packs(backend: Backend, expected: Iterable[str]) -> list[str]:
    """The packs of ``expected`` not in storage now (sorted)."""
    wanted = set(expected)
    if len(wanted) <= HEAD_LIMIT:
        return sorted(p for p in wanted if not backend.exists(pack_key(p)))
    return sorted(wanted - stored_packs(backend).keys())


def confirm_packs(backend: Backend, expected: Iterable[str], what: str) -> None:
    """PacksVanished naming the first missing pack if any of ``expected`` is gone."""
    missing = vanished_packs(backend, expected)
    if missing:
        raise PacksVanished(
            f"{len(missing)} pack(s) {what} relies on vanished while it ran (first "
            f"{missing[0][:16]}): nothing was saved; run it again, it stores that data anew")


def confirm_held(lock: RepositoryLock, backend: Backend, expected: Iterable[str],
                 what: str) -> None:
    """Before a result is written: the lock is ours (LockedError), every pack in ``expected``
    is stored (PacksVanished), and the lock is still ours after that look."""
    lock.ensure_held()
    confirm_packs(backend, expected, what)
    lock.ensure_held()


def save_while_held(repo: Repository, lock: RepositoryLock, snap: Snapshot,
                    relied: Iterable[str]) -> Snapshot:
    """Write ``snap``'s manifest, then confirm the lock was held throughout.

    A holder paused around the write may find its lock lost: a prune may have judged it dead
    and, having listed the snapshots before this one landed, deleted packs it names. Then,
    once no sweep runs (a shared lock taken anew), the snapshot stands if every pack in
    ``relied`` is still stored (a concurrent ``forget`` may already have counted it as the
    newest: withdrawing a sound snapshot could leave none), and is withdrawn otherwise
    (PacksVanished, exit 13: a new attempt stores the data anew). A withdrawal that fails is
    an IntegrityError naming the snapshot to forget (not retried: it would hide it)."""
    saved = repo.save_snapshot(snap)
    try:
        lock.ensure_held()
        return saved
    except LockedError as exc:
        lost = str(exc)
    settle = RepositoryLock.acquire(repo.backend, exclusive=False, wait_s=BACKUP_LOCK_WAIT,
                                    purpose=f"confirm snapshot {saved.short_id}")
    try:
        missing = vanished_packs(repo.backend, relied)
        if not missing:
            log.warning("%s; snapshot %s was written meanwhile and every pack it names is "
                        "still stored: it stands", lost, saved.short_id)
            return saved
        try:
            repo.remove_snapshot(saved)
        except StrongroomError as err:  # permanent: a retry must not hide a damaged snapshot
            raise IntegrityError(
                f"snapshot {saved.short_id} names {len(missing)} pack(s) a prune deleted "
                f"after the repository lock was lost, and could not be withdrawn ({err}): "
                f"forget it (strongroom forget {saved.id}) and back up again") from None
    finally:
        settle.release()
    raise PacksVanished(f"snapshot {saved.short_id} was written after the repository lock was "
                        f"lost and a prune deleted {len(missing)} pack(s) it names (first "
                        f"{missing[0][:16]}): it was withdrawn, nothing saved; back up again")
