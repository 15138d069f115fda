"""Neo4j source: online logical backup of one database into a snapshot, and restore.

The snapshot holds ``graph.jsonl``: a header line, the schema's create statements, every node
``["n", num, labels, props]`` (numbered 0, 1, ... in export order) then every relationship
``["r", start_num, end_num, type, props]``, and an
``["end", nodes, relationships]`` trailer. Property values use the exact encoding of
:mod:`.codec`. The manifest meta records counts per label and type and an order-independent
checksum; a restore recomputes them from the target database and fails on any difference.

Consistency: Neo4j gives a long read no snapshot isolation, so an online export taken while
clients write may mix states. ``consistent=True`` fingerprints the graph before the export and
accepts the export only if what it streamed equals that fingerprint (and the totals did not
move by the end); otherwise it retries, then fails. Pause writers for a guaranteed copy.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from neo4j.exceptions import DriverError, Neo4jError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from strongroom.errors import (
    ConfigError,
    IntegrityError,
    SourceError,
    StrongroomError,
    TargetNotEmpty,
)
from strongroom.repository import Repository, Snapshot
from strongroom.sources.neo4j import graph
from strongroom.sources.neo4j.codec import decode_props
from strongroom.sources.neo4j.graph import Fingerprint, Target
from strongroom.sources.registry import register_restorer

FORMAT = "strongroom-neo4j-graph"
VERSION = 1
GRAPH_FILE = "graph.jsonl"
BATCH = 5000
KINDS = ("full", "incremental", "differential", "snapshot")
# "password" is for in-process callers (a Prefect source block); people use password_env/file.
RESTORE_OPTIONS = {"user", "password", "password_env", "password_file", "database",
                   "batch_size", "check_first", "neo4j_admin", "progress"}
log = logging.getLogger(__name__)


class GraphMoved(SourceError):
    """The graph changed while a consistent export ran."""


class _LineStream(io.RawIOBase):
    """A readable byte stream over an iterator of JSON lines (pulled as the repository reads)."""

    def __init__(self, rows: Iterator[Any]) -> None:
        self._rows = rows
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self._buf:
            parts: list[bytes] = []
            size = 0
            for row in self._rows:
                line = json.dumps(row, ensure_ascii=False, separators=(",", ":"),
                                  allow_nan=False).encode() + b"\n"
                parts.append(line)
                size += len(line)
                if size >= len(b):
                    break
            self._buf = memoryview(b"".join(parts))
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


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
        name, kind="full" if kind == "differential" else None)
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
            stream = io.BufferedReader(_LineStream(_export_rows(s, target, fp, info)),
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


def _read_lines(fh: io.BufferedReader, snap: Snapshot) -> Iterator[Any]:
    for lineno, line in enumerate(fh, 1):
        try:
            yield json.loads(line)
        except ValueError:
            raise IntegrityError(f"{GRAPH_FILE} in snapshot {snap.short_id} is malformed at "
                                 f"line {lineno}") from None


def _records(repo: Repository, snap: Snapshot) -> Iterator[Any]:
    """Validated rows of the snapshot's graph file; raises IntegrityError on any damage."""
    with repo.reader(snap).open(GRAPH_FILE) as fh:
        rows = _read_lines(fh, snap)
        head = next(rows, None)
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            raise IntegrityError(f"{GRAPH_FILE} in snapshot {snap.short_id} has no valid header")
        if head.get("version") != VERSION:
            raise IntegrityError(f"{GRAPH_FILE} version {head.get('version')} is not supported")
        nodes = rels = 0
        for row in rows:
            tag = row[0] if isinstance(row, list) and row else None
            if tag == "n" and len(row) == 4:
                nodes += 1
            elif tag == "r" and len(row) == 5:
                rels += 1
            elif tag == "end" and row[1:] == [nodes, rels]:
                if next(rows, None) is not None:
                    break
                yield row
                return
            elif tag != "s":
                break
            yield row
    raise IntegrityError(f"{GRAPH_FILE} in snapshot {snap.short_id} is truncated or malformed "
                         f"after {nodes} node(s) and {rels} relationship(s)")


def _check_meta(snap: Snapshot) -> None:
    meta = snap.meta or {}
    if meta.get("format") != FORMAT or "checksum" not in meta:
        raise IntegrityError(f"snapshot {snap.short_id} has no Neo4j graph metadata")


def restore_neo4j(repo: Repository, snap: Snapshot, url: str, *, replace: bool = False,
                  user: str | None = None, password: str | None = None,
                  database: str | None = None, batch: int = BATCH, check_first: bool = True,
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Load a snapshot into an empty (or, with ``replace``, cleared) database and verify it.

    With ``check_first`` the whole graph file is read and verified once before the target is
    touched, so a damaged snapshot never leaves a half-written database.
    """
    _check_meta(snap)
    meta = snap.meta
    target = Target.parse(url, user, password, database)
    if batch < 1:
        raise ConfigError("batch size must be at least 1")
    started = time.monotonic()
    if check_first:
        for _ in _records(repo, snap):
            pass
        log.info("snapshot %s checked in %.1f s", snap.short_id, time.monotonic() - started)
    with graph.session(target, write=True) as s:
        if not graph.is_empty(s):
            if not replace:
                raise TargetNotEmpty(f"Neo4j database {target.display} is not empty "
                                     "(use --replace to clear it first)")
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
            cls = IntegrityError if isinstance(exc, IntegrityError) else SourceError
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

    for row in _records(repo, snap):
        tag = row[0]
        if tag == "s":
            schema.append(row[1])
            continue
        if tag != kind:
            flush()
            kind = tag
        if tag == "n":
            rows.append([row[1], row[2], decode_props(row[3])])
        elif tag == "r":
            rows.append([row[1], row[2], row[3], decode_props(row[4])])
        if len(rows) >= batch:
            flush()
    flush()
    return schema


def password_from(env: str | None = None, file: str | Path | None = None) -> str | None:
    """A Neo4j password from a named environment variable or a file (first line)."""
    if env and file:
        raise ConfigError("give the Neo4j password by environment variable or file, not both")
    if env:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"environment variable {env} (Neo4j password) is not set")
        return value
    if file:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read Neo4j password file {file}: {exc.strerror}"
                              ) from None
        return text.splitlines()[0] if text else ""
    return os.environ.get("STRONGROOM_NEO4J_PASSWORD") or None


def _restore_entry(repo: Repository, snap: Snapshot, target: str, *, replace: bool = False,
                   include: list[str] | None = None, options: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Registry entry: options user, password (in-process), password_env, password_file,
    database, batch_size, check_first (yes/no); ``method=dump`` snapshots go to neo4j-admin."""
    opts = dict(options or {})
    unknown = sorted(set(opts) - RESTORE_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown Neo4j restore option(s) {', '.join(unknown)} (known: "
                          f"{', '.join(sorted(RESTORE_OPTIONS - {'progress'}))})")
    if include:
        raise ConfigError("--include is not supported for Neo4j snapshots")
    if (snap.meta or {}).get("method") == "dump":
        from strongroom.sources.neo4j.physical import restore_dump

        return restore_dump(repo, snap, target, replace=replace,
                            neo4j_admin=opts.get("neo4j_admin"))
    try:
        batch = int(opts.get("batch_size", BATCH))
    except ValueError:
        raise ConfigError("batch_size must be an integer") from None
    return restore_neo4j(
        repo, snap, target, replace=replace, user=opts.get("user"),
        password=opts.get("password") or password_from(opts.get("password_env"),
                                                       opts.get("password_file")),
        database=opts.get("database"), batch=batch,
        check_first=str(opts.get("check_first", "yes")).lower() not in ("no", "false", "0"))


register_restorer("neo4j", _restore_entry)

__all__ = ["backup_neo4j", "restore_neo4j", "password_from", "GraphMoved", "GRAPH_FILE",
           "FORMAT"]
