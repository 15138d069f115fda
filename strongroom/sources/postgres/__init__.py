"""PostgreSQL source: physical (pg_basebackup + WAL archive, point-in-time recovery) and
logical (pg_dump -Fd) backups, restores and their verification. See docs/POSTGRES.md.

Modules, lowest first: ``faults`` (which failures are transient), ``walnames``, ``pgbin``,
``conn``, ``backups`` (what the repository holds), ``walstore`` (the WAL archive), ``plan``
(choosing base, timeline and WAL for a restore), ``physical`` / ``logical`` (backups),
``restore`` (physical restore), ``receiver`` (WAL streaming), ``dispatch`` (method choice).
This file stays light: psycopg loads only when a backup or restore runs."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from strongroom.sources.contract import Progress, ScratchTarget, Source
from strongroom.sources.registry import register

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot


class PostgresSource(Source):
    """A PostgreSQL cluster (physical) or its databases (logical)."""

    kind = "postgres"
    default_class = "database"
    progress_unit = "none"
    tools = ("pg_ctl", "pg_restore")
    fails_over = True

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

    def check_target(self, target: str, *, settings: dict[str, Any], replace: bool,
                     size: int) -> list[str]:
        """A data directory (absolute path) for physical snapshots: room for ``size`` bytes
        + 10% beside it, no running server unless ``replace``; a DSN naming the database
        for logical ones. See :mod:`strongroom.sources.postgres.target`."""
        from strongroom.sources.postgres import target as target_mod

        return target_mod.check_target(target, settings=settings, replace=replace, size=size)

    def safety_backup(self, repo: Repository, *, name: str, target: str, replace: bool,
                      settings: dict[str, Any]) -> Snapshot | None:
        """A data directory: None (the restore keeps the previous one beside it). A DSN: a
        logical snapshot of that database, read back in full, as ``<name>-safety``."""
        from strongroom.sources.postgres import target as target_mod

        return target_mod.safety_backup(repo, name=name, target=target, replace=replace,
                                        settings=settings)

    def in_place_target(self, settings: dict[str, Any]) -> str | None:
        """physical: the block's ``data_directory``; logical: the block's DSN (database)."""
        from strongroom.sources.postgres import target as target_mod

        return target_mod.in_place_target(settings)

    def point_in_time(self, repo: Repository, snaps: list[Snapshot],
                      point: dict[str, str]) -> tuple[Snapshot, dict[str, Any]] | None:
        """Physical backups replay the WAL archive to ``point``: the base is the newest backup
        consistent before it; logical dumps (no WAL) fall back to whole snapshots."""
        from strongroom.sources.postgres.plan import Target, choose_base

        if not snaps or len(point) != 1:
            return None
        name = snaps[-1].source_name
        physical = [s for s in snaps if s.source_kind == self.kind
                    and (s.meta.get("postgres") or {}).get("method") == "physical"]
        if not physical:
            return None
        options = {f"target_{k}": str(v) for k, v in point.items()}
        base = choose_base(physical, Target.from_options(options), name)
        return base, options

    def serving_options(self, target: str, *, failover: bool,
                        sql_checks: bool) -> dict[str, Any]:
        """A physical restore into a data directory runs its own server: kept running as the
        new primary on failover, or for SQL smoke checks; a logical restore (a URL or DSN
        target) goes into a server that runs anyway."""
        if "://" in target or "=" in target:
            return {}
        if failover:
            return {"failover": True, "keep_running": True}
        return {"keep_running": True} if sql_checks else {}

    def settings_for_target(self, settings: dict[str, Any],
                            target: str) -> dict[str, Any] | None:
        """A ``postgres[ql]://`` URL's or a ``key=value`` DSN's host, port, database (and user
        and password, when it names them) over the block's settings; a data directory is not
        a server this can read: None."""
        out = dict(settings)
        if "://" in target:
            url = urlsplit(target)
            if url.scheme not in ("postgres", "postgresql"):
                return None
            out.update(host=url.hostname or "127.0.0.1", port=url.port or 5432)
            if url.username:
                out["user"] = url.username
            if url.password is not None:
                out["password"] = url.password
            if url.path.strip("/"):
                out["database"] = url.path.strip("/")
            return out
        if "=" not in target:
            return None
        from strongroom.sources.postgres.conn import Dsn

        dsn = Dsn.parse(target)
        params = dsn.params
        out.update({k: params[k] for k in ("host", "port", "user") if k in params})
        if params.get("dbname"):
            out["database"] = params["dbname"]
        if dsn.password is not None:
            out["password"] = dsn.password
        return out

    def scratch_target(self, snap: Snapshot, workdir: Path, *,
                       settings: dict[str, Any]) -> AbstractContextManager[ScratchTarget]:
        """A new data directory recovered on a private server (physical snapshots)."""
        from strongroom.sources.postgres.drill_target import scratch_cluster

        return scratch_cluster(snap, workdir)


SOURCE = register(PostgresSource())

