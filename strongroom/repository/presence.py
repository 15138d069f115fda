"""Are the packs an operation relies on still in storage? Checked before its result is
written: a pack deleted while the operation ran (by a prune that judged its lock dead, or by
hand) must make it fail, never leave a snapshot that names missing data."""

from __future__ import annotations

from collections.abc import Iterable

from strongroom.errors import IntegrityError
from strongroom.repository.format import pack_key
from strongroom.storage.base import Backend

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
