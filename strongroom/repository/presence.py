"""Are the packs an operation relies on still in storage? Checked before its result is
written: a pack deleted while the operation ran (by a prune that judged its lock dead, or by
hand) must make it fail, never leave a snapshot that names missing data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from strongroom.errors import IntegrityError, LockedError, StrongroomError
from strongroom.repository.format import pack_key
from strongroom.storage.base import Backend

if TYPE_CHECKING:
    from strongroom.repository.locks import RepositoryLock
    from strongroom.repository.model import Snapshot
    from strongroom.repository.repo import Repository

HEAD_LIMIT = 64  # up to this many packs: one HEAD each; more: one listing of data/


class PacksVanished(IntegrityError):
    """Packs an operation relied on are gone from storage."""


def vanished_packs(backend: Backend, expected: Iterable[str]) -> list[str]:
    """The packs of ``expected`` not in storage now (sorted)."""
    wanted = set(expected)
    if len(wanted) <= HEAD_LIMIT:
        return sorted(p for p in wanted if not backend.exists(pack_key(p)))
    stored = {key.rsplit("/", 1)[-1] for key, _ in backend.list("data/")}
    return sorted(wanted - stored)


def confirm_packs(backend: Backend, expected: Iterable[str], what: str) -> None:
    """PacksVanished naming the first missing pack if any of ``expected`` is gone."""
    missing = vanished_packs(backend, expected)
    if missing:
        raise PacksVanished(
            f"{len(missing)} pack(s) {what} relies on vanished while it ran (first "
            f"{missing[0][:16]}): nothing was saved; run it again, it stores that data anew")


def save_while_held(repo: Repository, lock: RepositoryLock, snap: Snapshot) -> Snapshot:
    """Write ``snap``'s manifest, then confirm the lock was held throughout. A holder paused
    between its last check and the write could land a manifest after a prune that judged it
    dead had listed the snapshots (and deleted what it names): such a manifest is withdrawn
    and the operation fails (LockedError, exit 17). Once the lock is confirmed after the write,
    any prune that follows sees the snapshot."""
    saved = repo.save_snapshot(snap)
    try:
        lock.ensure_held()
    except LockedError:
        try:
            repo.remove_snapshot(saved)
        except StrongroomError as exc:
            raise LockedError(f"snapshot {saved.short_id} was written after the repository lock "
                              f"was lost and could not be withdrawn ({exc}); it may name "
                              f"deleted data: forget it (strongroom forget {saved.id})") from None
        raise
    return saved
