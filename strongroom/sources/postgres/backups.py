"""Which PostgreSQL backups a repository holds: the snapshot kinds and the physical backups of
a cluster (read from snapshot manifests; no server, no driver)."""

from __future__ import annotations

from typing import Any

from strongroom.repository import Repository, Snapshot

KIND = "postgres"  # the source kind of PostgreSQL backup snapshots
BASE_KINDS = ("full", "snapshot")  # kinds that hold a pg_basebackup of their own


def pg_meta(snap: Snapshot) -> dict[str, Any]:
    """The ``postgres`` part of a backup snapshot's meta."""
    return snap.meta["postgres"]


def physical_snapshots(repo: Repository, name: str) -> list[Snapshot]:
    """Physical backups (full, snapshot, incremental, differential) of cluster ``name``,
    oldest first."""
    return [s for s in repo.list_snapshots(name) if s.source_kind == KIND
            and (s.meta.get("postgres") or {}).get("method") == "physical"]
