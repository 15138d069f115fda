"""Redis: point-in-time RDB snapshots through replication; restores into stopped or live servers.

Backup: ``redis-cli --rdb`` pulls a consistent RDB over the replication protocol (all databases),
the file is validated (magic, version, CRC-64) and loaded into a private scratch redis-server whose
per-database key counts, types, expiries and value checksums go into the snapshot's meta; then
the RDB is sealed as ``dump.rdb``.

Restore, ``mode=live`` (target ``redis://host:port``): the snapshot is loaded into a scratch
server and every key of every database is copied with DUMP/RESTORE keeping its absolute expiry;
``mode=rdb-dir`` (target a directory): ``dump.rdb`` is placed into a stopped server's data
directory, with a rebuilt AOF when the server uses appendonly (the AOF wins at start-up).
Both are verified key by key afterwards; any difference is an IntegrityError.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from strongroom.errors import (
    ConfigError,
    IntegrityError,
    NotSupported,
    SourceError,
    StrongroomError,
    TargetNotEmpty,
)
from strongroom.repository import Repository, Snapshot
from strongroom.sources.redis_conn import Endpoint, connect, errors, parse_url, redact
from strongroom.sources.redis_inventory import (
    BATCH,
    DbFacts,
    Fold,
    db_facts,
    fingerprint,
    key_facts,
    keyspace_dbs,
    now_ms,
    scan_batches,
)
from strongroom.sources.redis_proc import RedisProcess
from strongroom.sources.redis_rdb import RdbInfo, validate_file
from strongroom.sources.registry import register_restorer

RDB_PATH = "dump.rdb"
# password and progress come only from in-process callers (a Prefect source block)
RESTORE_OPTIONS = {"mode", "workdir", "password_env", "password", "username", "flush",
                   "ttl_tolerance_ms", "config", "appendonly", "dbfilename", "appenddirname",
                   "appendfilename", "progress"}
DEFAULT_TIMEOUT = 3600.0
TTL_TOLERANCE_MS = 2000


# ---- backup -------------------------------------------------------------------------------------
def fetch_rdb(ep: Endpoint, dest: Path, timeout: float = DEFAULT_TIMEOUT) -> None:
    """``redis-cli --rdb dest``: a consistent RDB via SYNC; the password goes by environment."""
    cli = shutil.which("redis-cli")
    if not cli:
        raise NotSupported("redis-cli is not installed (needed to take Redis snapshots)")
    cmd = [cli, "-h", ep.host, "-p", str(ep.port), "--no-auth-warning", "--rdb", str(dest)]
    if ep.username:
        cmd += ["--user", ep.username]
    if ep.tls:
        cmd.append("--tls")
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    if ep.password:
        env["REDISCLI_AUTH"] = ep.password
    try:
        proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        dest.unlink(missing_ok=True)
        raise SourceError(f"redis-cli --rdb from {ep.label} did not finish within "
                          f"{timeout:.0f} s") from None
    if proc.returncode != 0 or not dest.exists() or dest.stat().st_size == 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).decode(errors="replace").splitlines()
                 if ln.strip()]
        reason = lines[-1] if lines else f"exit code {proc.returncode}"
        if ep.password:
            reason = reason.replace(ep.password, "***")
        raise SourceError(f"cannot take an RDB snapshot of {ep.label}: {reason}")


def _databases(client: redis.Redis) -> int:
    try:
        return int(client.config_get("databases").get("databases", 16))
    except redis.exceptions.ResponseError:  # CONFIG not allowed for this user
        return 16


def scratch(workdir: Path, databases: int, **settings: str) -> RedisProcess:
    """A private redis-server that loads ``workdir/dump.rdb``; not started yet."""
    size = (workdir / "dump.rdb").stat().st_size if (workdir / "dump.rdb").exists() else 0
    return RedisProcess(workdir, settings={"databases": str(max(databases, 16)),
                                           "activerehashing": "no", **settings},
                        start_timeout=60 + size / 20e6)


def load_facts(proc: RedisProcess) -> dict[int, DbFacts]:
    return {db: db_facts(proc.client(db)) for db in keyspace_dbs(proc.client())}


def backup_redis(repo: Repository, url: str, name: str, *, password_env: str | None = None,
                 password: str | None = None, tags: list[str] | tuple[str, ...] = (),
                 kind: str = "full", timeout: float = DEFAULT_TIMEOUT,
                 workdir: str | Path | None = None,
                 progress: Callable[[int], None] | None = None) -> Snapshot:
    """Snapshot every database of the server at ``url`` into a new ``redis`` snapshot.

    Every Redis snapshot is a complete RDB: ``kind`` "snapshot" is kept (its retention tier),
    any other kind is recorded as "full"."""
    ep = parse_url(url, password_env, password)
    client = connect(ep)
    with errors(ep):
        version = client.info("server").get("redis_version", "")
        databases = _databases(client)
    with tempfile.TemporaryDirectory(prefix="strongroom-redis-", dir=workdir) as tmp:
        rdb = Path(tmp) / "dump.rdb"
        started = time.time()
        fetch_rdb(ep, rdb, timeout)
        info = validate_file(rdb, f"RDB from {ep.label}")
        with scratch(Path(tmp), databases) as proc:
            facts = load_facts(proc)
        meta = _meta(ep, version, databases, info, facts, started)
        with repo.writer(source_name=name, source_kind="redis",
                         kind="snapshot" if kind == "snapshot" else "full", tags=list(tags),
                         paths=[ep.label], progress=progress) as w:
            with open(rdb, "rb") as f:
                node = w.add_stream(RDB_PATH, f, mode=0o600, meta=info.as_meta())
            if node.sha256 != info.sha256:
                raise SourceError(f"RDB from {ep.label} changed while it was being stored")
            w.set_meta(meta)
            return w.commit()


def _meta(ep: Endpoint, version: str, databases: int, info: RdbInfo,
          facts: dict[int, DbFacts], started: float) -> dict[str, Any]:
    return {"endpoint": ep.label, "redis_version": version, "databases": databases,
            "rdb": {k: v for k, v in info.as_meta().items() if k != "aux"},
            "rdb_aux": info.aux, "snapshot_time_ms": int(started * 1000),
            "keys": sum(f.keys for f in facts.values()),
            "dbs": {str(db): f.as_meta() for db, f in sorted(facts.items())}}


# ---- restore: common ----------------------------------------------------------------------------
def extract_rdb(repo: Repository, snap: Snapshot, dest: Path,
                progress: Callable[[int], None] | None = None) -> RdbInfo:
    """Write the snapshot's RDB to ``dest`` (every blob verified), then validate the file."""
    reader = repo.reader(snap)
    node = reader.node(RDB_PATH)
    with open(dest, "wb") as out:
        for chunk in reader.chunks(node, RDB_PATH):
            out.write(chunk)
            if progress:
                progress(len(chunk))
    info = validate_file(dest, f"snapshot {snap.short_id}: {RDB_PATH}")
    if info.sha256 != node.sha256:
        raise IntegrityError(f"snapshot {snap.short_id}: {RDB_PATH} does not match its SHA-256")
    return info


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


def restore_redis(repo: Repository, snap: Snapshot, target: str, *, replace: bool = False,
                  include: list[str] | None = None, options: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """Restorer for ``redis`` snapshots (see the module doc for modes and options)."""
    opts = dict(options or {})
    unknown = sorted(set(opts) - RESTORE_OPTIONS)
    if unknown:  # a misspelt flush= or appendonly= must not silently do the default
        raise ConfigError(f"unknown redis restore option(s) {', '.join(unknown)} (known: "
                          f"{', '.join(sorted(RESTORE_OPTIONS - {'password', 'progress'}))})")
    if include:
        raise ConfigError("--include is not supported for redis snapshots (all databases "
                          "are restored)")
    default = "live" if target.startswith(("redis://", "rediss://")) else "rdb-dir"
    mode = str(opts.get("mode") or default).replace("_", "-")
    workdir = opts.get("workdir")
    if mode == "live":
        return restore_live(repo, snap, target, replace=replace, options=opts, workdir=workdir)
    if mode == "rdb-dir":
        from strongroom.sources.redis_place import restore_rdb_dir

        if "://" in target and not target.startswith("file://"):
            raise ConfigError(f"mode=rdb-dir needs a directory, not {redact(target)!r}")

        return restore_rdb_dir(repo, snap, target, replace=replace, options=opts)
    raise ConfigError(f"unknown redis restore mode {mode!r} (live or rdb-dir)")


# ---- restore: live ------------------------------------------------------------------------------
def restore_live(repo: Repository, snap: Snapshot, target: str, *, replace: bool,
                 options: dict[str, Any], workdir: str | Path | None = None) -> dict[str, Any]:
    """Load the snapshot into a scratch server, then DUMP/RESTORE every key into ``target``."""
    ep = parse_url(target, options.get("password_env"), options.get("password"))
    if options.get("username") and not ep.username:  # e.g. from a Prefect source block
        ep = dataclasses.replace(ep, username=str(options["username"]))
    dst = connect(ep, "restore target")
    with errors(ep, "restore target"):
        busy = keyspace_dbs(dst)
        target_dbs = _databases(dst)
    if busy and not replace:
        raise TargetNotEmpty(f"restore target {ep.label} already holds keys in db "
                             f"{', '.join(map(str, busy))} (use --replace to overwrite the "
                             "snapshot's keys)")
    flush = str(options.get("flush", "")).lower() in ("1", "yes", "true")
    tolerance = int(options.get("ttl_tolerance_ms", TTL_TOLERANCE_MS))
    with tempfile.TemporaryDirectory(prefix="strongroom-redis-", dir=workdir) as tmp:
        extract_rdb(repo, snap, Path(tmp) / "dump.rdb", options.get("progress"))
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
                    raise TargetNotEmpty(f"restore target {ep.label}: key {_show(k)} already "
                                         f"exists in db {db} (use --replace)")
                raise SourceError(f"restore target {ep.label}: RESTORE of {_show(k)} in db {db} "
                                  f"failed: {msg}")
        copied += len(sent)
    return copied


def _show(key: bytes) -> str:
    text = key.decode("utf-8", "backslashreplace")
    return repr(text if len(text) <= 80 else text[:77] + "...")


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
                    raise IntegrityError(f"restore check failed: db {db} key {_show(k)} differs "
                                         f"on {ep.label} (type {b.type}, expected {a.type})")
                if (a.expire_ms < 0) != (b.expire_ms < 0) or \
                        abs(a.expire_ms - b.expire_ms) > tolerance:
                    raise IntegrityError(f"restore check failed: db {db} key {_show(k)} has "
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


def backup(repo: Repository, *, name: str, kind: str = "full", tags: list[str] | None = None,
           host: str = "127.0.0.1", port: int = 6379, password: str | None = None,
           username: str | None = None, tls: bool = False, url: str | None = None,
           password_env: str | None = None, timeout: float = DEFAULT_TIMEOUT,
           **_ignored: Any) -> Snapshot:
    """Entry point for the orchestration layer (settings of a Redis source block)."""
    if url is None:
        user = f"{username}@" if username else ""
        url = f"{'rediss' if tls else 'redis'}://{user}{host}:{port}"
    return backup_redis(repo, url, name, password_env=password_env, password=password,
                        tags=tags or [], kind=kind, timeout=timeout)


def _restore_entry(repo: Repository, snap: Snapshot, target: str, *, replace: bool = False,
                   include: list[str] | None = None, options: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    return restore_redis(repo, snap, target, replace=replace, include=include, options=options)


register_restorer("redis", _restore_entry)

__all__ = ["backup", "backup_redis", "restore_redis", "fetch_rdb", "extract_rdb", "redact"]
