"""PostgreSQL source: physical (pg_basebackup + WAL archive, point-in-time recovery) and
logical (pg_dump -Fd) backups, restores and their verification. See docs/POSTGRES.md.

Modules, lowest first: ``faults`` (which failures are transient), ``walnames``, ``pgbin``,
``conn``, ``backups`` (what the repository holds), ``walstore`` (the WAL archive), ``plan``
(choosing base, timeline and WAL for a restore), ``physical`` / ``logical`` (backups),
``restore`` (physical restore), ``receiver`` (WAL streaming), ``dispatch`` (method choice).
This file stays light: psycopg loads only when a backup or restore runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.sources.contract import Progress, Source
from strongroom.sources.registry import register

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot


class PostgresSource(Source):
    """A PostgreSQL cluster (physical) or its databases (logical)."""

    kind = "postgres"
    default_class = "database"
    progress_unit = "none"
    tools = ("pg_ctl", "pg_restore")

    def backup(self, repo: Repository, *, name: str, kind: str, tags: list[str],
               settings: dict[str, Any]) -> Snapshot:
        """``settings``: host, port, user, password, database, method (physical | logical),
        snapshot_method (what a ``snapshot`` kind takes; default: ``method``)."""
        from strongroom.sources.postgres import dispatch

        return dispatch.backup(repo, name=name, kind=kind, tags=list(tags), settings=settings)

    def restore(self, repo: Repository, snap: Snapshot, target: str, *, replace: bool,
                include: list[str], options: dict[str, Any],
                progress: Progress | None = None) -> dict[str, Any]:
        """physical: ``target`` is a new data directory; logical: a DSN naming the database
        to create. See :func:`strongroom.sources.postgres.dispatch.restore` for options."""
        from strongroom.sources.postgres import dispatch

        return dispatch.restore(repo, snap, target, replace=replace, include=list(include),
                                options=dict(options))


SOURCE = register(PostgresSource())

