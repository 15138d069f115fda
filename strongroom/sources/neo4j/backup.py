"""Neo4j logical backup: an online export of one database into a snapshot's ``graph.jsonl``.

The manifest meta records counts per label and type and an order-independent checksum; a
restore recomputes them from the target database and fails on any difference.

Consistency: Neo4j gives a long read no snapshot isolation, so an online export taken while
clients write may mix states. ``consistent=True`` fingerprints the graph before the export and
accepts the export only if what it streamed equals that fingerprint (and the totals did not
move by the end); otherwise it retries, then fails. Pause writers for a guaranteed copy.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from strongroom.errors import ConfigError, SourceError
from strongroom.sources.neo4j import graph
from strongroom.sources.neo4j.auth import password_from
from strongroom.sources.neo4j.graph import Fingerprint, Target
from strongroom.sources.neo4j.graphfile import FORMAT, GRAPH_FILE, VERSION, LineStream

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot

KINDS = ("full", "incremental", "differential", "snapshot")


class GraphMoved(SourceError):
    """The graph changed while a consistent export ran."""


def _export_rows(s: Any, target: Target, fp: Fingerprint, info: dict[str, Any]
                 ) -> Iterator[Any]:
    yield {"format": FORMAT, "version": VERSION, "database": target.database,
           "server": info["server"]}
    for stmt in info["schema"]:
        yield ["s", stmt]
    yield from graph.export_records(s, fp)
    yield ["end", fp.nodes, fp.relationships]


def backup_neo4j(repo: Repository, url: str, *, user: str | None = None,
                 password: str | None = None, database: str | None = None,
                 name: str | None = None, kind: str = "full", tags: list[str] | None = None,
                 consistent: bool = False, attempts: int = 3, retry_wait_s: float = 2.0
                 ) -> Snapshot:
    """Export a live database into a new snapshot; returns it. Never holds the graph in memory.

    ``kind`` only records lineage (the parent): a logical export always reads everything, and
    unchanged chunks deduplicate against earlier snapshots anyway.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown snapshot kind {kind!r} ({', '.join(KINDS)})")
    target = Target.parse(url, user, password, database)
    name = name or f"neo4j-{target.database}"
    parent = None if kind in ("full", "snapshot") else repo.latest_snapshot(
        name, kind="full" if kind == "differential" else None, same_host=True)
    if not consistent:
        return _backup_once(repo, target, name, kind, parent, tags or [], False)
    retrying = Retrying(stop=stop_after_attempt(max(1, attempts)), wait=wait_fixed(retry_wait_s),
                        retry=retry_if_exception_type(GraphMoved), reraise=True)
    try:
        return retrying(_backup_once, repo, target, name, kind, parent, tags or [], True)
    except GraphMoved as exc:
        raise GraphMoved(f"{exc} in each of {attempts} attempt(s); pause writers and retry"
                         ) from None


def _backup_once(repo: Repository, target: Target, name: str, kind: str,
                 parent: Snapshot | None, tags: list[str], consistent: bool) -> Snapshot:
    started = time.monotonic()
    with graph.session(target) as s:
        info = {"server": graph.server_version(s), "schema": graph.schema_statements(s)}
        before = graph.fingerprint(s) if consistent else None
        fp = Fingerprint()
        with repo.writer(source_name=name, source_kind="neo4j", kind=kind, parent=parent,
                         tags=tags, paths=[target.display]) as w:
            stream = io.BufferedReader(LineStream(_export_rows(s, target, fp, info)),
                                       buffer_size=1 << 20)
            w.add_stream(GRAPH_FILE, stream, mode=0o600,
                         meta={"format": FORMAT, "version": VERSION})
            if consistent:
                after = graph.quick_counts(s)
                if before is None or before.as_meta() != fp.as_meta() or fp.dangling or \
                        after != (fp.nodes, fp.relationships):
                    raise GraphMoved(f"Neo4j database {target.display} changed during the "
                                     "export")
                if graph.schema_statements(s) != info["schema"]:
                    raise GraphMoved(f"the schema of {target.display} changed during the export")
            w.set_meta({"format": FORMAT, "version": VERSION, "method": "logical",
                        "database": target.database, "server": info["server"],
                        "schema": info["schema"], "consistent": consistent,
                        "skipped_relationships": fp.dangling,
                        "export_seconds": round(time.monotonic() - started, 3),
                        **fp.as_meta()})
            return w.commit()


def backup_from_settings(repo: Repository, *, name: str, kind: str, tags: list[str],
                         uri: str = "bolt://127.0.0.1:7687", user: str | None = None,
                         password: str | None = None, database: str | None = None,
                         consistent: bool = False, password_env: str | None = None,
                         **_ignored: Any) -> Snapshot:
    """Back up from a Neo4j source block's settings; with no password, the one in the
    ``password_env`` variable (if named). Other keys are ignored."""
    if password is None and password_env:
        password = password_from(password_env)
    return backup_neo4j(repo, uri, name=name, kind=kind, tags=tags, user=user,
                        password=password, database=database, consistent=bool(consistent))
