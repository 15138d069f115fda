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

    def undo_options(self) -> dict[str, Any]:
        """Flush before writing: an undo leaves no key the recovery had added."""
        return {"flush": "yes"}

    def settings_for_target(self, settings: dict[str, Any],
                            target: str) -> dict[str, Any] | None:
        """A ``redis://`` or ``rediss://`` target's server (host, port, TLS) over the block's
        settings, logging in as a live restore into it does (the target's user, else the
        block's; the block's password, else the target's). A ``/db`` narrows nothing: the
        snapshot, like the restore, covers every database. None for anything else."""
        from strongroom.sources.redis.target import settings_for

        return settings_for(settings, target)

    def in_place_target(self, settings: dict[str, Any]) -> str | None:
        """The block's server, ``redis[s]://[user@]host:port`` (no password in it)."""
        from strongroom.sources.redis.target import in_place

        return in_place(settings)

    def check_target(self, target: str, *, settings: dict[str, Any], replace: bool,
                     size: int) -> list[str]:
        """A live server: reachable with the block's credentials, no keys unless ``replace``,
        ``maxmemory`` room for the snapshot's ``size`` bytes of RDB (TargetTooSmall). A
        stopped server's directory: no server running in it, no RDB/AOF unless ``replace``,
        free disk. Any other URL: ConfigError."""
        from strongroom.sources.redis.target import (
            check_directory,
            check_live,
            is_directory_target,
        )

        if is_directory_target(target):
            return check_directory(target, replace=replace, size=size)
        return check_live(settings, target, replace=replace, size=size)

    def holds_data(self, settings: dict[str, Any]) -> bool:
        """Whether any database of the server ``settings`` name holds a key."""
        from strongroom.sources.redis.target import holds_keys

        return bool(holds_keys(settings))

    def safety_backup(self, repo: Repository, *, name: str, target: str, replace: bool,
                      settings: dict[str, Any]) -> Snapshot | None:
        """A live target: the contract's safety snapshot of that server (every database). A
        stopped server's directory: None, the rdb-dir restore moves the RDB and AOF it replaces
        aside itself (``.strongroom-replaced-<time>``) and refuses them without ``replace``."""
        from strongroom.sources.redis.target import is_directory_target

        if is_directory_target(target):
            return None
        return super().safety_backup(repo, name=name, target=target, replace=replace,
                                     settings=settings)

    def scratch_target(self, snap: Snapshot, workdir: Path, *,
                       settings: dict[str, Any]) -> AbstractContextManager[ScratchTarget]:
        """A private redis-server on a free loopback port (a recovery drill's target)."""
        from strongroom.sources.redis.drill_target import scratch_server

        return scratch_server(snap, workdir)


register(RedisSource())
