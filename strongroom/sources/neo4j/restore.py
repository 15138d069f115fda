"""Neo4j restore: load a logical snapshot into an empty (or cleared) database and verify it.

``method=dump`` snapshots go to ``neo4j-admin database load`` (:mod:`.physical`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from neo4j.exceptions import DriverError, Neo4jError, ServiceUnavailable, SessionExpired

from strongroom.errors import (
    ConfigError,
    IntegrityError,
    SourceError,
    SourceUnreachable,
    StrongroomError,
)
from strongroom.sources.neo4j import graph
from strongroom.sources.neo4j.auth import password_from
from strongroom.sources.neo4j.codec import decode_props
from strongroom.sources.neo4j.graph import Target
from strongroom.sources.neo4j.graphfile import check_meta, records
from strongroom.sources.neo4j.physical import restore_dump
from strongroom.sources.neo4j.target import refuse_busy

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot

BATCH = 5000
# "password" is for in-process callers (a Prefect source block); people use password_env/file.
RESTORE_OPTIONS = {"user", "password", "password_env", "password_file", "database",
                   "batch_size", "check_first", "neo4j_admin"}
log = logging.getLogger(__name__)


def restore_neo4j(repo: Repository, snap: Snapshot, url: str, *, replace: bool = False,
                  user: str | None = None, password: str | None = None,
                  database: str | None = None, batch: int = BATCH, check_first: bool = True,
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Load a snapshot into an empty (or, with ``replace``, cleared) database and verify it.

    The whole graph file is read and every value decoded before anything is deleted: first
    (with ``check_first``, the default) before the target is even contacted, otherwise just
    before a non-empty target is cleared. A damaged or undecodable snapshot therefore never
    leaves a wiped or half-written database.
    """
    check_meta(snap)
    meta = snap.meta
    target = Target.parse(url, user, password, database)
    if batch < 1:
        raise ConfigError("batch size must be at least 1")
    started = time.monotonic()
    checked = False
    if check_first:
        check_snapshot(repo, snap)
        checked = True
        log.info("snapshot %s checked in %.1f s", snap.short_id, time.monotonic() - started)
    with graph.session(target, write=True) as s:
        if not graph.is_empty(s):
            refuse_busy(target.display, True, replace)
            if not checked:
                check_snapshot(repo, snap)
            graph.clear(s)
        written = [0, 0]
        try:
            schema = _load(s, repo, snap, batch, written, progress)
            log.info("loaded %d nodes, %d relationships at %.1f s", *written,
                     time.monotonic() - started)
            graph.apply_schema(s, schema)
            graph.finish_import(s)
            log.info("schema applied, import ids removed at %.1f s", time.monotonic() - started)
        except (StrongroomError, Neo4jError, DriverError) as exc:
            cls: type[StrongroomError] = SourceError
            if isinstance(exc, IntegrityError):
                cls = IntegrityError
            elif isinstance(exc, (SourceUnreachable, ServiceUnavailable, SessionExpired)):
                cls = SourceUnreachable  # the server went away mid-restore
            why = str(exc) if isinstance(exc, StrongroomError) else graph.first_line(exc)
            raise cls(f"{why}; Neo4j database {target.display} is left partially restored "
                      f"({written[0]} nodes, {written[1]} relationships written): restore "
                      "again with --replace") from None
        fp = graph.fingerprint(s)
        schema_now = graph.schema_statements(s)
        log.info("fingerprinted %s at %.1f s", target.display, time.monotonic() - started)
    expected = {k: meta.get(k) for k in ("nodes", "relationships", "labels", "types",
                                         "checksum")}
    if fp.as_meta() != expected:
        raise IntegrityError(f"restored Neo4j database {target.display} does not match snapshot "
                             f"{snap.short_id}: {fp.nodes} nodes, {fp.relationships} "
                             f"relationships, checksum {fp.checksum[:16]} (expected "
                             f"{meta.get('nodes')}, {meta.get('relationships')}, "
                             f"{str(meta.get('checksum'))[:16]})")
    if schema_now != sorted(meta.get("schema", [])):
        raise IntegrityError(f"the schema restored into {target.display} differs from "
                             f"snapshot {snap.short_id}")
    return {"snapshot": snap.id, "target": target.display, "nodes": fp.nodes,
            "relationships": fp.relationships, "schema": len(schema_now),
            "checksum": fp.checksum, "verified": True,
            "seconds": round(time.monotonic() - started, 3)}


def check_snapshot(repo: Repository, snap: Snapshot) -> None:
    """Read the whole graph file and decode every property value into the driver objects a
    load would send; raises IntegrityError on the first damaged or undecodable row."""
    for row in records(repo, snap):
        if row[0] == "n":
            _decoded(row[3], snap, f"node {row[1]}")
        elif row[0] == "r":
            _decoded(row[4], snap, f"relationship {row[1]}->{row[2]}")


def _decoded(props: Any, snap: Snapshot, where: str) -> dict[str, Any]:
    if not isinstance(props, dict):
        raise IntegrityError(f"{where} in snapshot {snap.short_id} has malformed properties")
    try:
        return decode_props(props)
    except IntegrityError as exc:
        raise IntegrityError(f"{where} in snapshot {snap.short_id}: {exc}") from None


def _load(s: Any, repo: Repository, snap: Snapshot, batch: int, written: list[int],
          progress: Callable[[int], None] | None) -> list[str]:
    schema: list[str] = []
    rows: list[list[Any]] = []
    kind = "n"
    graph.prepare_import(s)

    def flush() -> None:
        if not rows:
            return
        (graph.write_nodes if kind == "n" else graph.write_rels)(s, rows)
        written[0 if kind == "n" else 1] += len(rows)
        if progress:
            progress(len(rows))
        rows.clear()

    for row in records(repo, snap):
        tag = row[0]
        if tag == "s":
            schema.append(row[1])
            continue
        if tag != kind:
            flush()
            kind = tag
        if tag == "n":
            rows.append([row[1], row[2], _decoded(row[3], snap, f"node {row[1]}")])
        elif tag == "r":
            rows.append([row[1], row[2], row[3],
                         _decoded(row[4], snap, f"relationship {row[1]}->{row[2]}")])
        if len(rows) >= batch:
            flush()
    flush()
    return schema


def restore_snapshot(repo: Repository, snap: Snapshot, target: str, *, replace: bool = False,
                     include: list[str] | None = None, options: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    """Restore with ``--restore-option`` keys: user, password (in-process), password_env,
    password_file, database, batch_size, check_first (yes/no); ``method=dump`` snapshots go
    to neo4j-admin (option neo4j_admin: its path)."""
    opts = dict(options or {})
    unknown = sorted(set(opts) - RESTORE_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown Neo4j restore option(s) {', '.join(unknown)} (known: "
                          f"{', '.join(sorted(RESTORE_OPTIONS))})")
    if include:
        raise ConfigError("--include is not supported for Neo4j snapshots")
    if (snap.meta or {}).get("method") == "dump":
        return restore_dump(repo, snap, target, replace=replace,
                            neo4j_admin=opts.get("neo4j_admin"))
    try:
        batch = int(opts.get("batch_size", BATCH))
    except ValueError:
        raise ConfigError("batch_size must be an integer") from None
    # the target's own database (its path) wins over the option, which is the block's default
    named = urlsplit(target).path.strip("/")
    return restore_neo4j(
        repo, snap, target, replace=replace, user=opts.get("user"),
        password=opts.get("password") or password_from(opts.get("password_env"),
                                                       opts.get("password_file")),
        database=None if named else opts.get("database"), batch=batch,
        check_first=str(opts.get("check_first", "yes")).lower() not in ("no", "false", "0"))
