"""Neo4j restore targets: the block's settings pointed at ``bolt://host:port[/database]``,
and the checks made before a recovery clears anything there.

A target's path names its database; without one, the block's database. A restore writes where
the target says (its path wins over the block's ``database`` restore option), so a safety
snapshot of the target reads that very database.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from strongroom.errors import ConfigError, TargetNotEmpty

BOLT_SCHEMES = ("bolt", "neo4j", "bolt+s", "neo4j+s", "bolt+ssc", "neo4j+ssc")


def settings_for(settings: dict[str, Any], target: str) -> dict[str, Any] | None:
    """The block's ``settings`` with the target's server (scheme, host, port) and database
    (the target's path, else the block's); the target's user when it names one. None for
    anything but a Bolt or neo4j URL with a host."""
    try:
        parts = urlsplit(target)
        port = parts.port or 7687
    except ValueError:
        return None
    if parts.scheme not in BOLT_SCHEMES or not parts.hostname:
        return None
    out = {**settings, "uri": f"{parts.scheme}://{parts.hostname}:{port}",
           "database": parts.path.strip("/") or settings.get("database") or "neo4j"}
    if parts.username:
        out["user"] = unquote(parts.username)
    return out


def in_place(settings: dict[str, Any]) -> str:
    """The block's server and database, ``scheme://host:port/database``."""
    from strongroom.sources.neo4j.graph import Target

    return Target.parse(str(settings.get("uri") or "bolt://127.0.0.1:7687"),
                        database=settings.get("database") or None).display


def _target(settings: dict[str, Any]) -> Any:
    from strongroom.sources.neo4j.auth import password_from
    from strongroom.sources.neo4j.graph import Target

    password = settings.get("password")
    if password is None and settings.get("password_env"):
        password = password_from(settings["password_env"])
    return Target.parse(str(settings["uri"]), settings.get("user"), password,
                        settings.get("database") or None)


def holds_graph(settings: dict[str, Any]) -> bool:
    """Whether the database ``settings`` name holds a node or user schema (the restore's own
    test of an empty database)."""
    from strongroom.sources.neo4j import graph

    with graph.session(_target(settings)) as s:
        return not graph.is_empty(s)


def check(settings: dict[str, Any], target: str, *, replace: bool) -> list[str]:
    """ConfigError for a target that is not a Bolt or neo4j URL; SourceError when the server
    cannot be reached, refuses the block's credentials or has no such database;
    TargetNotEmpty for a database with nodes or schema without ``replace``."""
    pointed = settings_for(settings, target)
    if pointed is None:
        raise ConfigError(f"a neo4j source cannot restore into {target!r} (expected "
                          "bolt://host:port/database)")
    where = _target(pointed).display
    busy = holds_graph(pointed)
    refuse_busy(where, busy, replace)
    return [f"Neo4j database {where} {'holds a graph: it is cleared' if busy else 'is empty'}"
            "; Neo4j has no size limit to check"]


def refuse_busy(where: str, busy: bool, replace: bool) -> None:
    """TargetNotEmpty for a database with nodes or schema without ``replace``: the one rule
    of a restore and of the check before it."""
    if busy and not replace:
        raise TargetNotEmpty(f"Neo4j database {where} is not empty (use --replace to clear it "
                             "first)")


def gaps(meta: dict[str, Any]) -> list[str]:
    """What an export left out, from its snapshot's meta."""
    skipped = int(meta.get("skipped_relationships") or 0)
    return [f"{skipped} relationship(s) to nodes created during the export were skipped"
            ] if skipped else []
