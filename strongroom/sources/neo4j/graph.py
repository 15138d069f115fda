"""Talking to a live Neo4j database: connect, stream out, fingerprint, clear, load in batches.

Everything streams: exports consume one server-side result incrementally (the driver pulls
``FETCH_SIZE`` records at a time), loads send ``UNWIND $rows`` batches. No query is built from
user values: labels and types go through dynamic labels ``$(...)`` (Neo4j 5.26+).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import neo4j
from neo4j.exceptions import AuthError, ClientError, DriverError, Neo4jError, ServiceUnavailable

from strongroom.errors import ConfigError, SourceError, SourceUnreachable
from strongroom.sources.neo4j.codec import (
    PROPS,
    UnrestorableValue,
    encode_props,
    node_digest,
    rel_digest,
)

FETCH_SIZE = 2000
IMPORT_LABEL = "__StrongroomImport"
IMPORT_KEY = "__strongroom_id"
IMPORT_INDEX = "__strongroom_import_id"
_MOD = 1 << 128

NODES_Q = ("MATCH (n) RETURN elementId(n) AS id, labels(n) AS labels, "
           + PROPS.format(v="n") + " AS props")
RELS_Q = ("MATCH (a)-[r]->(b) RETURN elementId(a) AS s, elementId(b) AS e, type(r) AS type, "
          + PROPS.format(v="r") + " AS props")
SCHEMA_Q = [
    "SHOW CONSTRAINTS YIELD name, createStatement RETURN name, createStatement",
    "SHOW INDEXES YIELD name, type, owningConstraint, createStatement "
    "WHERE type <> 'LOOKUP' AND owningConstraint IS NULL RETURN name, createStatement",
]


@dataclass
class Target:
    """Where a graph lives: driver URI (no credentials), database and auth."""

    uri: str
    database: str = "neo4j"
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str, user: str | None = None, password: str | None = None,
              database: str | None = None) -> Target:
        """``bolt://host:port[/db]`` (also neo4j://, +s, +ssc); a path names the database."""
        parts = urlsplit(url)
        if parts.scheme not in ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"):
            raise ConfigError(f"not a Neo4j URL: {url!r} (expected bolt://host:port/database)")
        if not parts.hostname:
            raise ConfigError(f"Neo4j URL {url!r} has no host")
        if parts.password:
            raise ConfigError("put the Neo4j password in an environment variable or file, "
                              "not in the URL")
        try:
            port = parts.port or 7687
        except ValueError:
            raise ConfigError(f"Neo4j URL {parts.scheme}://{parts.hostname} has a bad port"
                              ) from None
        db = database or parts.path.strip("/") or "neo4j"
        return cls(f"{parts.scheme}://{parts.hostname}:{port}", db,
                   user or parts.username or ("neo4j" if password else None), password)

    @property
    def display(self) -> str:
        return f"{self.uri}/{self.database}"


@contextlib.contextmanager
def session(target: Target, write: bool = False) -> Iterator[neo4j.Session]:
    """A session on the target database; connection and auth problems become SourceError
    (SourceUnreachable when the server is down, unreachable, starting or drops the link)."""
    auth = (target.user or "neo4j", target.password) if target.password is not None else None
    try:
        driver = neo4j.GraphDatabase.driver(target.uri, auth=auth, connection_timeout=10,
                                            max_transaction_retry_time=15)
    except (ValueError, DriverError) as exc:
        raise ConfigError(f"bad Neo4j URL {target.uri}: {exc}") from None
    try:
        try:
            driver.verify_connectivity()
        except AuthError:
            raise SourceError(f"Neo4j at {target.uri} refused the credentials of user "
                              f"{auth[0] if auth else '(none)'}") from None
        except (ServiceUnavailable, OSError) as exc:
            # the driver's first line ends in ':'; the reason is on the next one
            reason = re.search(r"\(reason (.+)\)\s*$", str(exc))
            raise SourceUnreachable(f"cannot reach Neo4j at {target.uri}: "
                              f"{reason.group(1) if reason else first_line(exc)}") from None
        mode = neo4j.WRITE_ACCESS if write else neo4j.READ_ACCESS
        with driver.session(database=target.database, default_access_mode=mode,
                            fetch_size=FETCH_SIZE) as s:
            try:
                yield s
            except Neo4jError as exc:
                raise _source_error(target, exc) from None
            except (ServiceUnavailable, DriverError, OSError) as exc:
                raise SourceUnreachable(f"lost the connection to Neo4j at {target.uri}: "
                                  f"{first_line(exc)}") from None
    finally:
        driver.close()


def first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0][:300]


def _source_error(target: Target, exc: Neo4jError) -> SourceError:
    code = exc.code or ""
    if "DatabaseNotFound" in code:
        return SourceError(f"Neo4j database {target.database!r} does not exist at {target.uri}")
    if isinstance(exc, ClientError) and "Security" in code:
        return SourceError(f"Neo4j at {target.uri} denied access: {first_line(exc)}")
    if "DatabaseUnavailable" in code:  # starting, stopping or recovering: worth a retry
        return SourceUnreachable(f"Neo4j at {target.display} failed: {first_line(exc)}")
    return SourceError(f"Neo4j at {target.display} failed: {first_line(exc)}")


def server_version(s: neo4j.Session) -> str:
    rec = s.run("CALL dbms.components() YIELD versions, edition "
                "RETURN versions[0] AS v, edition AS e").single()
    return f"{rec['v']} {rec['e']}" if rec else "unknown"


def schema_statements(s: neo4j.Session) -> list[str]:
    """User constraints and indexes as their create statements (token lookups excluded)."""
    out: list[str] = []
    for q in SCHEMA_Q:
        out += [r["createStatement"] for r in s.run(q) if r["name"] != IMPORT_INDEX]
    return sorted(out)


def schema_names(s: neo4j.Session) -> tuple[list[str], list[str]]:
    cons = [r["name"] for r in s.run(SCHEMA_Q[0])]
    idx = [r["name"] for r in s.run(SCHEMA_Q[1])]
    return cons, idx


def quick_counts(s: neo4j.Session) -> tuple[int, int]:
    """Node and relationship totals from the count store (cheap)."""
    n = s.run("MATCH (n) RETURN count(n) AS c").single()["c"]
    r = s.run("MATCH ()-[r]->() RETURN count(r) AS c").single()["c"]
    return n, r


@dataclass
class Fingerprint:
    """Counts per label and type plus an order-independent content checksum."""

    nodes: int = 0
    relationships: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    types: Counter[str] = field(default_factory=Counter)
    node_sum: int = 0
    rel_sum: int = 0
    dangling: int = 0  # relationships whose end node appeared after the node pass (skipped)

    def add_node(self, labels: list[str], digest: bytes) -> None:
        self.nodes += 1
        self.labels.update(labels)
        self.node_sum = (self.node_sum + int.from_bytes(digest, "big")) % _MOD

    def add_rel(self, rtype: str, digest: bytes) -> None:
        self.relationships += 1
        self.types[rtype] += 1
        self.rel_sum = (self.rel_sum + int.from_bytes(digest, "big")) % _MOD

    @property
    def checksum(self) -> str:
        return f"{self.node_sum:032x}{self.rel_sum:032x}"

    def as_meta(self) -> dict[str, Any]:
        return {"nodes": self.nodes, "relationships": self.relationships,
                "labels": dict(sorted(self.labels.items())),
                "types": dict(sorted(self.types.items())), "checksum": self.checksum}


class _DigestMap:
    """elementId -> (export number, node digest) in a temporary SQLite file: bounded memory."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="strongroom-neo4j-")
        self._db = sqlite3.connect(f"{self._dir.name}/digests.db", isolation_level=None)
        self._db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; "
                               "PRAGMA cache_size=-65536; "
                               "CREATE TABLE m (id TEXT PRIMARY KEY, n INTEGER, d BLOB) "
                               "WITHOUT ROWID;")
        self._pending: list[tuple[str, int, bytes]] = []

    def add(self, eid: str, num: int, digest: bytes) -> None:
        self._pending.append((eid, num, digest))
        if len(self._pending) >= 20000:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO m VALUES (?, ?, ?)", self._pending)
            self._db.execute("COMMIT")
            self._pending.clear()

    def get(self, eid: str) -> tuple[int, bytes] | None:
        return self._db.execute("SELECT n, d FROM m WHERE id = ?", (eid,)).fetchone()

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()


def export_records(s: neo4j.Session, fp: Fingerprint) -> Iterator[list[Any]]:
    """Stream ``["n", num, labels, props]`` then ``["r", start, end, type, props]`` rows,
    updating ``fp`` as they go. Nodes are numbered 0, 1, ... in export order (elementIds are
    not stable across databases); relationships refer to those numbers.
    A relationship whose end node was created after the node pass is skipped and counted in
    ``fp.dangling`` (the export stays loadable)."""
    digests = _DigestMap()
    try:
        for eid, labels, pairs in s.run(NODES_Q):  # records are tuples: unpack, don't index
            props = _encoded(pairs, f"node with elementId {eid} (labels {labels!r})")
            digest = node_digest(labels, props)
            num = fp.nodes
            fp.add_node(labels, digest)
            digests.add(eid, num, digest)
            yield ["n", num, labels, props]
        digests.flush()
        for start, end, rtype, pairs in s.run(RELS_Q):
            a, b = digests.get(start), digests.get(end)
            if a is None or b is None:
                fp.dangling += 1
                continue
            props = _encoded(pairs, f"relationship of type {rtype!r} from the node with "
                                   f"elementId {start}")
            fp.add_rel(rtype, rel_digest(rtype, props, a[1], b[1]))
            yield ["r", a[0], b[0], rtype, props]
    finally:
        digests.close()


def _encoded(pairs: list[list[Any]], where: str) -> dict[str, Any]:
    try:
        return encode_props(pairs)
    except UnrestorableValue as exc:
        raise UnrestorableValue(f"cannot back up the {where}: {exc}; change or remove that "
                                "value, then back up again") from None


def fingerprint(s: neo4j.Session) -> Fingerprint:
    fp = Fingerprint()
    for _ in export_records(s, fp):
        pass
    return fp


def is_empty(s: neo4j.Session) -> bool:
    has_node = s.run("MATCH (n) RETURN n LIMIT 1").single() is not None
    cons, idx = schema_names(s)
    return not has_node and not cons and not idx


def clear(s: neo4j.Session, batch: int = 10000) -> None:
    """Delete every node and relationship, then every user constraint and index."""
    s.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF $b ROWS",
          b=batch).consume()
    cons, idx = schema_names(s)
    for name in cons:
        s.run("DROP CONSTRAINT $name IF EXISTS", name=name).consume()
    for name in idx:
        s.run("DROP INDEX $name IF EXISTS", name=name).consume()


def prepare_import(s: neo4j.Session) -> None:
    s.run(f"CREATE RANGE INDEX {IMPORT_INDEX} IF NOT EXISTS "
          f"FOR (n:{IMPORT_LABEL}) ON (n.{IMPORT_KEY})").consume()
    s.run("CALL db.awaitIndexes(300)").consume()


# Rows are lists (cheaper to send than maps): nodes [num, labels, props],
# relationships [start, end, type, props].
_CREATE_NODES = (f"UNWIND $rows AS row CREATE (n:{IMPORT_LABEL} {{{IMPORT_KEY}: row[0]}}) "
                 "SET n += row[2] SET n:$(row[1])")
_CREATE_RELS = (f"UNWIND $rows AS row MATCH (a:{IMPORT_LABEL} {{{IMPORT_KEY}: row[0]}}) "
                f"MATCH (b:{IMPORT_LABEL} {{{IMPORT_KEY}: row[1]}}) "
                "CREATE (a)-[r:$(row[2])]->(b) SET r = row[3] "
                "RETURN count(r) AS c")


def write_nodes(s: neo4j.Session, rows: list[list[Any]]) -> None:
    s.execute_write(lambda tx: tx.run(_CREATE_NODES, rows=rows).consume())


def write_rels(s: neo4j.Session, rows: list[list[Any]]) -> None:
    def work(tx: neo4j.ManagedTransaction) -> int:
        return tx.run(_CREATE_RELS, rows=rows).single()["c"]

    made = s.execute_write(work)
    if made != len(rows):
        raise SourceError(f"{len(rows) - made} relationship(s) of a batch found no end node")


def apply_schema(s: neo4j.Session, statements: Iterable[str]) -> None:
    """Create constraints and indexes (after the data: bulk loads skip index upkeep, and a
    constraint the data breaks fails loudly here), then wait until they are online."""
    for stmt in statements:
        s.run(stmt).consume()
    s.run("CALL db.awaitIndexes(600)").consume()


def finish_import(s: neo4j.Session, batch: int = 10000) -> None:
    """Remove the temporary import label, key and index."""
    s.run(f"MATCH (n:{IMPORT_LABEL}) CALL (n) {{ REMOVE n:{IMPORT_LABEL} "
          f"REMOVE n.{IMPORT_KEY} }} IN TRANSACTIONS OF $b ROWS", b=batch).consume()
    s.run(f"DROP INDEX {IMPORT_INDEX} IF EXISTS").consume()
