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
        o["target"] = "immediate" if snapshot.kind == "full" else "snapshot"
    return restore_physical(repo, snapshot, target, replace=replace, options=o)


register_restorer("postgres", restore)
