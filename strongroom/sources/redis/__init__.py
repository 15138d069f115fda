"""Redis: point-in-time RDB snapshots through replication; restores into stopped or live servers.

Backup (:mod:`.backup`): ``redis-cli --rdb`` pulls a consistent RDB, which is validated
(:mod:`.rdb`), loaded into a scratch redis-server (:mod:`.scratch`) whose per-database facts
(:mod:`.inventory`) go into the snapshot's meta, then sealed as ``dump.rdb``.
Restore (:mod:`.restore`): ``mode=live`` copies every key into a running server (:mod:`.live`),
``mode=rdb-dir`` places the RDB (and a rebuilt AOF) into a stopped server's directory
(:mod:`.place`); both are verified key by key (:mod:`.verify`).

This module stays light (no redis driver): the registry imports it to list the kinds.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from strongroom.sources.contract import (
    ObjectiveClass,
    Progress,
    ProgressUnit,
    ScratchTarget,
    Source,
)
from strongroom.sources.registry import register

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot


class RedisSource(Source):
    """Every database of one Redis server, as one RDB per snapshot."""

    kind: ClassVar[str] = "redis"
    default_class: ClassVar[ObjectiveClass] = "database"
    progress_unit: ClassVar[ProgressUnit] = "bytes"
    tools: ClassVar[tuple[str, ...]] = ("redis-server",)

    def backup(self, repo: Repository, *, name: str, kind: str, tags: list[str],
               settings: dict[str, Any]) -> Snapshot:
        """``settings``: a Redis source block's host, port, username, password, tls (or ``url``
        and ``password_env``); every snapshot is a complete RDB ("snapshot" kept, else "full")."""
        from strongroom.sources.redis.backup import backup_from_settings

        return backup_from_settings(repo, name=name, kind=kind, tags=tags, **settings)

    def restore(self, repo: Repository, snap: Snapshot, target: str, *, replace: bool,
                include: list[str], options: dict[str, Any],
                progress: Progress | None = None) -> dict[str, Any]:
        """``target`` ``redis://host:port`` (live) or a stopped server's data directory."""
        from strongroom.sources.redis.restore import restore_redis

        return restore_redis(repo, snap, target, replace=replace, include=include,
                             options=options, progress=progress)

    def settings_for_target(self, settings: dict[str, Any],
                            target: str) -> dict[str, Any] | None:
        """A ``redis://`` or ``rediss://`` target's host and port over the block's settings."""
        url = urlsplit(target)
        if url.scheme not in ("redis", "rediss"):
            return None
        return {**settings, "host": url.hostname or "127.0.0.1", "port": url.port or 6379}

    def scratch_target(self, snap: Snapshot, workdir: Path, *,
                       settings: dict[str, Any]) -> AbstractContextManager[ScratchTarget]:
        """A private redis-server on a free loopback port (a recovery drill's target)."""
        from strongroom.sources.redis.drill_target import scratch_server

        return scratch_server(snap, workdir)


register(RedisSource())
