"""Which method serves a PostgreSQL backup or restore: physical (pg_basebackup + WAL archive)
or logical (pg_dump -Fd), chosen from the source block's settings or the snapshot's meta."""

from __future__ import annotations

from typing import Any

from strongroom.errors import ConfigError
from strongroom.repository import Repository, Snapshot
from strongroom.sources.postgres.conn import Dsn
from strongroom.sources.postgres.logical import backup_logical, restore_logical
from strongroom.sources.postgres.physical import backup_full, backup_wal_seal
from strongroom.sources.postgres.restore import restore_physical

METHODS = ("physical", "logical")
# --restore-option keys: physical (recovery target, recovery server, verification, failover)
# and logical (source and new database, pg_restore); a block's password serves both.
RESTORE_OPTIONS = frozenset({
    "target", "target_time", "target_lsn", "target_xid", "target_name", "target_timeline",
    "inclusive", "port", "recovery_timeout", "spool", "keep_running", "failover", "slot",
    "source_db", "database", "maintenance_db", "staging", "no_owner", "timeout", "password",
    "jobs", "verify", "gx"})
RECOVERY_TARGETS = ("target", "target_time", "target_lsn", "target_xid", "target_name")


def backup(repo: Repository, *, name: str, kind: str, tags: list[str],
           settings: dict[str, Any]) -> Snapshot:
    """Back up the server the block's ``settings`` describe ({host, port, user, password,
    database, method, snapshot_method}; also wal, jobs, checksums). ``kind`` full |
    incremental | differential | snapshot (the hourly restorable point, taken with
    ``snapshot_method``, by default the same as ``method``)."""
    method = str(settings.get("method") or "physical")
    if kind == "snapshot":
        method = str(settings.get("snapshot_method") or method)
    database = settings.get("database")
    dsn = Dsn({"host": str(settings.get("host") or "127.0.0.1"),
               "port": str(settings.get("port") or 5432),
               "user": str(settings.get("user") or "postgres"),
               "dbname": database or "postgres"}, settings.get("password"))
    jobs = int(settings.get("jobs") or 2)
    checksums = bool(settings.get("checksums", True))
    if method == "logical":
        return backup_logical(repo, dsn, name, dbs=[database] if database else None,
                              jobs=jobs, tags=tags,
                              kind="snapshot" if kind == "snapshot" else "full")
    if method != "physical":
        raise ConfigError(f"postgres method must be physical or logical, not {method!r}")
    if kind in ("full", "snapshot"):
        return backup_full(repo, dsn, name, wal=str(settings.get("wal") or "fetch"),
                           tags=tags, checksums=checksums, kind=kind, jobs=jobs)
    if kind in ("incremental", "differential"):
        return backup_wal_seal(repo, dsn, name, kind, tags=tags, checksums=checksums)
    raise ConfigError(f"unknown backup kind {kind!r}")


def restore(repo: Repository, snap: Snapshot, target: str, *, replace: bool,
            include: list[str], options: dict[str, Any]) -> dict[str, Any]:
    """Restore a ``postgres`` snapshot; the report says ``verified`` when its checks ran.

    physical: ``target`` is a new data directory; by default recovery stops at the snapshot's
    own point (a full: consistent end of the base backup; an incremental: the end of its WAL);
    ``target_time`` / ``target_lsn`` / ``target_xid`` / ``target_name`` / ``target=latest``
    options recover further from the WAL archive. logical: ``target`` is a DSN naming the
    database to create (``--include DB`` picks the dumped database; a ``password`` option
    logs in in-process, never on a command line)."""
    unknown = sorted(set(options) - RESTORE_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown postgres restore option {unknown[0]!r} (known: "
                          f"{', '.join(sorted(RESTORE_OPTIONS))})")
    o = dict(options)
    method = (snap.meta.get("postgres") or {}).get("method")
    if method == "logical":
        report = restore_logical(repo, snap, target, replace=replace, include=include,
                                 options=o)
    elif method == "physical":
        if not any(o.get(k) for k in RECOVERY_TARGETS):
            o["target"] = "immediate" if snap.kind in ("full", "snapshot") else "snapshot"
        report = restore_physical(repo, snap, target, replace=replace, options=o)
    else:
        raise ConfigError(f"snapshot {snap.short_id} is not a PostgreSQL backup")
    report["verified"] = "verification" in report
    return report
