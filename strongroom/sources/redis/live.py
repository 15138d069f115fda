"""Redis restore into a running server (``mode=live``): DUMP/RESTORE of every key, then verified.

The snapshot is loaded into a scratch server and every key of every database is copied with
DUMP/RESTORE keeping its absolute expiry; the target is then checked key by key against the
scratch copy, and the scratch copy against the facts recorded at backup.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongroom.errors import ConfigError, SourceError, StrongroomError, TargetNotEmpty
from strongroom.sources.redis.conn import Endpoint, connect, database_count, errors, parse_url
from strongroom.sources.redis.extract import extract_rdb
from strongroom.sources.redis.inventory import BATCH, keyspace_dbs, now_ms, scan_batches
from strongroom.sources.redis.scratch import scratch
from strongroom.sources.redis.verify import show_key, verify_live

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot
    from strongroom.sources.redis.proc import RedisProcess

TTL_TOLERANCE_MS = 2000


def restore_live(repo: Repository, snap: Snapshot, target: str, *, replace: bool,
                 options: dict[str, Any], workdir: str | Path | None = None,
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Load the snapshot into a scratch server, then DUMP/RESTORE every key into ``target``."""
    ep = parse_url(target, options.get("password_env"), options.get("password"))
    if options.get("username") and not ep.username:  # e.g. from a Prefect source block
        ep = dataclasses.replace(ep, username=str(options["username"]))
    dst = connect(ep, "restore target")
    with errors(ep, "restore target"):
        busy = keyspace_dbs(dst)
        target_dbs = database_count(dst)
    refuse_busy(ep, busy, replace)
    flush = str(options.get("flush", "")).lower() in ("1", "yes", "true")
    tolerance = int(options.get("ttl_tolerance_ms", TTL_TOLERANCE_MS))
    with tempfile.TemporaryDirectory(prefix="strongroom-redis-", dir=workdir) as tmp:
        extract_rdb(repo, snap, Path(tmp) / "dump.rdb", progress)
        with scratch(Path(tmp), int(snap.meta.get("databases", 16))) as proc:
            dbs = keyspace_dbs(proc.client())
            too_high = [db for db in dbs if db >= target_dbs]
            if too_high:
                raise ConfigError(f"restore target {ep.label} has {target_dbs} databases; the "
                                  f"snapshot uses db {too_high[0]}")
            written = [0]  # keys RESTOREd so far: a failure midway says what it left
            flushed = False
            try:
                if flush and replace:
                    with errors(ep, "restore target"):
                        dst.flushall()
                    flushed = True
                copied = {db: _copy_db(proc, ep, db, replace, written) for db in dbs}
            except StrongroomError as exc:
                if not written[0] and not flushed:
                    raise
                after = " after FLUSHALL" if flushed else ""
                raise type(exc)(f"{str(exc).rstrip('.')}; {ep.label} is left partially "
                                f"restored ({written[0]} key(s) written{after}): fix the cause, "
                                "then restore again with --replace") from None
            report = verify_live(snap, proc, ep, dbs, replace, tolerance)
    report.update({"snapshot": snap.id, "target": ep.label, "mode": "live",
                   "keys_copied": sum(copied.values())})
    return report


def refuse_busy(ep: Endpoint, busy: list[int], replace: bool) -> None:
    """TargetNotEmpty when the server holds keys (in the databases ``busy``) and ``replace``
    is false: the one rule of a live restore and of the check before it."""
    if busy and not replace:
        raise TargetNotEmpty(f"restore target {ep.label} already holds keys in db "
                             f"{', '.join(map(str, busy))} (use --replace to overwrite the "
                             "snapshot's keys)")


def _copy_db(proc: RedisProcess, ep: Endpoint, db: int, replace: bool,
             written: list[int]) -> int:
    src = proc.client(db)
    dst = ep.client(db)
    copied = 0
    extra = ["REPLACE"] if replace else []
    for keys in scan_batches(src, BATCH):
        pipe = src.pipeline(transaction=False)
        for k in keys:
            pipe.dump(k)
            pipe.execute_command("PEXPIRETIME", k)
        raw = pipe.execute()
        out = dst.pipeline(transaction=False)
        sent: list[bytes] = []
        now = now_ms()
        for k, payload, exp in zip(keys, raw[0::2], raw[1::2], strict=True):
            if payload is None or exp == -2 or (exp >= 0 and exp <= now):
                continue  # expired since the snapshot was taken
            ttl = ["0"] if exp == -1 else [str(exp)]
            absttl = ["ABSTTL"] if exp >= 0 else []
            out.execute_command("RESTORE", k, *ttl, payload, *extra, *absttl)
            sent.append(k)
        with errors(ep, "restore target"):
            results = out.execute(raise_on_error=False)
        written[0] += sum(1 for res in results if not isinstance(res, Exception))
        for k, res in zip(sent, results, strict=True):
            if isinstance(res, Exception):
                msg = str(res).splitlines()[0]
                if msg.startswith("BUSYKEY"):
                    raise TargetNotEmpty(f"restore target {ep.label}: key {show_key(k)} already "
                                         f"exists in db {db} (use --replace)")
                raise SourceError(f"restore target {ep.label}: RESTORE of {show_key(k)} in db {db} "
                                  f"failed: {msg}")
        copied += len(sent)
    return copied
