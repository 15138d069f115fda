"""Neo4j source: online logical backup of one database into a snapshot, and restore.

Backup (:mod:`.backup`) streams the schema, every node and relationship into ``graph.jsonl``
(:mod:`.graphfile`, values encoded exactly by :mod:`.codec`) over Bolt (:mod:`.graph`);
restore (:mod:`.restore`) loads it into an empty or cleared database and verifies counts,
checksum and schema. ``neo4j-admin`` dumps of a stopped local database: :mod:`.physical`.
Passwords come from a variable or a file (:mod:`.auth`), never from argv.

This module stays light (no neo4j driver): the registry imports it to list the kinds.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from strongroom.sources.contract import ObjectiveClass, Progress, ScratchTarget, Source
from strongroom.sources.registry import register

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot

class Neo4jSource(Source):
    """One Neo4j database, exported online over Bolt."""

    kind: ClassVar[str] = "neo4j"
    default_class: ClassVar[ObjectiveClass] = "database"
    tools: ClassVar[tuple[str, ...]] = ()

    def backup(self, repo: Repository, *, name: str, kind: str, tags: list[str],
               settings: dict[str, Any]) -> Snapshot:
        """``settings``: a Neo4j source block's uri, user, password, database, consistent and
        password_env (read when no password is given)."""
        from strongroom.sources.neo4j.backup import backup_from_settings

        return backup_from_settings(repo, name=name, kind=kind, tags=tags, **settings)

    def restore(self, repo: Repository, snap: Snapshot, target: str, *, replace: bool,
                include: list[str], options: dict[str, Any],
                progress: Progress | None = None) -> dict[str, Any]:
        """``target`` ``bolt://host:port[/database]``; progress is not reported."""
        from strongroom.sources.neo4j.restore import restore_snapshot

        return restore_snapshot(repo, snap, target, replace=replace, include=include,
                                options=options)

    def settings_for_target(self, settings: dict[str, Any],
                            target: str) -> dict[str, Any] | None:
        """A Bolt or neo4j URL's server (scheme, host, port) and database (its path, else the
        block's) over the block's settings; None for anything else."""
        from strongroom.sources.neo4j.target import settings_for

        return settings_for(settings, target)

    def in_place_target(self, settings: dict[str, Any]) -> str | None:
        """The block's ``uri`` with its ``database``: ``bolt://host:port/database``."""
        from strongroom.sources.neo4j.target import in_place

        return in_place(settings)

    def check_target(self, target: str, *, settings: dict[str, Any], replace: bool,
                     size: int) -> list[str]:
        """A Bolt or neo4j URL whose database answers the block's credentials and holds no
        graph or schema unless ``replace``; anything else: ConfigError."""
        from strongroom.sources.neo4j.target import check

        return check(settings, target, replace=replace)

    def holds_data(self, settings: dict[str, Any]) -> bool:
        """Whether the database holds a node, constraint or index."""
        from strongroom.sources.neo4j.target import holds_graph

        return holds_graph(settings)

    def snapshot_gaps(self, snap: Snapshot) -> list[str]:
        """Relationships skipped because their end node appeared during the export."""
        from strongroom.sources.neo4j.target import gaps

        return gaps(snap.meta)

    def scratch_target(self, snap: Snapshot, workdir: Path, *,
                       settings: dict[str, Any]) -> AbstractContextManager[ScratchTarget]:
        """The platform file's scratch server (``scratch_uri``); NotSupported if none."""
        from strongroom.sources.neo4j.drill_target import scratch_server

        return scratch_server(settings)


register(Neo4jSource())
