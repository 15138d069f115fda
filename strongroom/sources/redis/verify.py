"""Checks of a Redis restore: loaded facts against the backup, target key by key against scratch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.errors import IntegrityError
from strongroom.sources.redis.conn import Endpoint, errors
from strongroom.sources.redis.inventory import (
    BATCH,
    DbFacts,
    Fold,
    fingerprint,
    key_facts,
    now_ms,
    scan_batches,
)

if TYPE_CHECKING:
    from strongroom.repository import Snapshot
    from strongroom.sources.redis.proc import RedisProcess


def show_key(key: bytes) -> str:
    """A key for a one-line message (repr, at most 80 characters)."""
    text = key.decode("utf-8", "backslashreplace")
    return repr(text if len(text) <= 80 else text[:77] + "...")


def check_against_meta(snap: Snapshot, facts: dict[int, DbFacts], now: int | None = None
                       ) -> int:
    """Compare loaded facts with those recorded at backup; return keys expired since then."""
    recorded = snap.meta.get("dbs", {})
    expired = 0
    for db in sorted(set(recorded) | {str(d) for d in facts}):
        rec = recorded.get(db)
        got = facts.get(int(db), DbFacts())
        if rec is None:
            raise IntegrityError(f"snapshot {snap.short_id}: db {db} holds {got.keys} keys the "
                                 "backup never recorded")
        missing = rec["keys"] - got.keys
        if missing < 0 or missing > rec.get("expires", 0):
            raise IntegrityError(f"snapshot {snap.short_id}: db {db} loads {got.keys} keys, "
                                 f"the backup recorded {rec['keys']}")
        if missing == 0 and got.checksum != rec["checksum"]:
            raise IntegrityError(f"snapshot {snap.short_id}: db {db} content checksum differs "
                                 "from the one recorded at backup")
        expired += missing
    return expired


def verify_live(snap: Snapshot, proc: RedisProcess, ep: Endpoint, dbs: list[int],
                replace: bool, tolerance: int) -> dict[str, Any]:
    """Key by key: type, value digest and expiry equal on scratch and target; counts too."""
    facts: dict[int, DbFacts] = {}
    present: dict[int, int] = {}
    other = 0
    for db in dbs:
        src, dst = proc.client(db), ep.client(db)
        f = facts[db] = DbFacts()
        total = Fold()
        present[db] = 0
        for keys in scan_batches(src, BATCH):
            with errors(ep, "restore target"):
                theirs = key_facts(dst, keys)
            now = now_ms()
            for k, a, b in zip(keys, key_facts(src, keys), theirs, strict=True):
                if a.type == "none":
                    continue  # expired in the scratch copy meanwhile
                f.keys += 1
                f.types[a.type] += 1
                total.add(fingerprint(k, a.type, a.digest))
                if b.type == "none" and 0 <= a.expire_ms <= now + tolerance:
                    continue  # expired in the target meanwhile
                if b.type != a.type or b.digest != a.digest:
                    raise IntegrityError(f"restore check failed: db {db} key {show_key(k)} differs "
                                         f"on {ep.label} (type {b.type}, expected {a.type})")
                if (a.expire_ms < 0) != (b.expire_ms < 0) or \
                        abs(a.expire_ms - b.expire_ms) > tolerance:
                    raise IntegrityError(f"restore check failed: db {db} key {show_key(k)} has "
                                         f"expiry {b.expire_ms}, expected {a.expire_ms}")
                present[db] += 1
        f.checksum = total.digest().hex()
        with errors(ep, "restore target"):
            size = dst.dbsize()
        if size > present[db]:
            if not replace:
                raise IntegrityError(f"restore check failed: db {db} of {ep.label} holds "
                                     f"{size} keys, the snapshot {present[db]}")
            other += size - present[db]
    # what the scratch server loaded must be what the backup recorded
    check_against_meta(snap, facts)
    keys = sum(present.values())
    return {"databases": {str(db): n for db, n in present.items()}, "keys": keys,
            "expired_since_backup": max(0, int(snap.meta.get("keys", keys)) - keys),
            "other_keys_in_target": other, "verified": True}
