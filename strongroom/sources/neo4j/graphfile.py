"""The ``graph.jsonl`` file inside a Neo4j snapshot: writing it as a stream, reading it checked.

A header line, the schema's create statements ``["s", stmt]``, every node
``["n", num, labels, props]`` (numbered 0, 1, ... in export order) then every relationship
``["r", start_num, end_num, type, props]``, and an ``["end", nodes, relationships]`` trailer.
Property values use the exact encoding of :mod:`.codec`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from strongroom.errors import IntegrityError

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot

FORMAT = "strongroom-neo4j-graph"
VERSION = 1
GRAPH_FILE = "graph.jsonl"


class LineStream(io.RawIOBase):
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


def _read_lines(fh: io.BufferedReader, snap: Snapshot) -> Iterator[Any]:
    for lineno, line in enumerate(fh, 1):
        try:
            yield json.loads(line)
        except ValueError:
            raise IntegrityError(f"{GRAPH_FILE} in snapshot {snap.short_id} is malformed at "
                                 f"line {lineno}") from None


def records(repo: Repository, snap: Snapshot) -> Iterator[Any]:
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


def check_meta(snap: Snapshot) -> None:
    meta = snap.meta or {}
    if meta.get("format") != FORMAT or "checksum" not in meta:
        raise IntegrityError(f"snapshot {snap.short_id} has no Neo4j graph metadata")
