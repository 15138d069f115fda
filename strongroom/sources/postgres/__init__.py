"""PostgreSQL source: physical (pg_basebackup + WAL archive, point-in-time recovery) and
logical (pg_dump -Fd) backups, restores and their verification. See docs/POSTGRES.md."""

from __future__ import annotations

from typing import Any

from strongroom.errors import ConfigError
from strongroom.repository import Repository, Snapshot
from strongroom.sources.registry import register_restorer


def restore(repo: Repository, snapshot: Snapshot, target: str, *, replace: bool = False,
            include: list[str] | None = None, options: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """Restorer for ``postgres`` snapshots.

    physical: ``target`` is a new data directory; by default recovery stops at the snapshot's
    own point (a full: consistent end of the base backup; an incremental: the end of its WAL);
    ``target_time`` / ``target_lsn`` / ``target_xid`` / ``target_name`` / ``target=latest``
    options recover further from the WAL archive. logical: ``target`` is a DSN naming the
    database to create (``--include DB`` picks the dumped database)."""
    o = dict(options or {})
    method = (snapshot.meta.get("postgres") or {}).get("method")
    if method == "logical":
        from strongroom.sources.postgres.logical import restore_logical

        return restore_logical(repo, snapshot, target, replace=replace, include=include,
                               options=o)
    if method != "physical":
        raise ConfigError(f"snapshot {snapshot.short_id} is not a PostgreSQL backup")
    from strongroom.sources.postgres.restore import restore_physical

    if not any(o.get(k) for k in ("target", "target_time", "target_lsn", "target_xid",
                                  "target_name")):
        o["target"] = "immediate" if snapshot.kind in ("full", "snapshot") else "snapshot"
    return restore_physical(repo, snapshot, target, replace=replace, options=o)


def backup(repo: Repository, *, name: str, kind: str = "full", tags: list[str] | None = None,
           host: str = "127.0.0.1", port: int = 5432, user: str = "postgres",
           password: str | None = None, database: str | None = None,
           method: str = "physical", snapshot_method: str = "physical", wal: str = "fetch",
           jobs: int = 2, checksums: bool = True, **_ignored: Any) -> Snapshot:
    """Entry point for the Prefect source block: ``kind`` full | incremental | differential |
    snapshot (the hourly restorable point: ``snapshot_method`` physical or logical)."""
    from strongroom.sources.postgres.conn import Dsn

    dsn = Dsn({"host": host, "port": str(port), "user": user,
               "dbname": database or "postgres"}, password)
    if kind == "snapshot":
        method = snapshot_method
    if method == "logical":
        from strongroom.sources.postgres.logical import backup_logical

        return backup_logical(repo, dsn, name, dbs=[database] if database else None,
                              jobs=jobs, tags=tags or [],
                              kind="snapshot" if kind == "snapshot" else "full")
    if method != "physical":
        raise ConfigError(f"postgres method must be physical or logical, not {method!r}")
    from strongroom.sources.postgres.physical import backup_full, backup_wal_seal

    if kind in ("full", "snapshot"):
        return backup_full(repo, dsn, name, wal=wal, tags=tags or [], checksums=checksums,
                           kind=kind, jobs=jobs)
    if kind in ("incremental", "differential"):
        return backup_wal_seal(repo, dsn, name, kind, tags=tags or [], checksums=checksums)
    raise ConfigError(f"unknown backup kind {kind!r}")


register_restorer("postgres", restore)
