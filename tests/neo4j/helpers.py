"""Test helpers: run Cypher on the test server and describe a graph independently of our codec."""

from __future__ import annotations

import math
from typing import Any

import neo4j

from tests.support.neo4j_server import Neo4jServer

# Server-side description of every property: key, Cypher type, and the server's own rendering.
DESCRIBE = """
MATCH (n) WITH n ORDER BY n.key
RETURN labels(n) AS labels, [k IN keys(n) | [k, valueType(n[k]),
  CASE WHEN valueType(n[k]) STARTS WITH 'LIST' THEN [x IN n[k] | toString(x)]
       ELSE toString(n[k]) END]] AS props, properties(n) AS raw
"""


def run(srv: Neo4jServer, query: str, **params: Any) -> list[neo4j.Record]:
    with neo4j.GraphDatabase.driver(srv.uri, auth=(srv.user, srv.password)) as d:
        return d.execute_query(query, params).records


def run_auto(srv: Neo4jServer, query: str, **params: Any) -> None:
    """An auto-commit query (needed for CALL ... IN TRANSACTIONS)."""
    with neo4j.GraphDatabase.driver(srv.uri, auth=(srv.user, srv.password)) as d:
        with d.session() as s:
            s.run(query, params).consume()


def describe(srv: Neo4jServer) -> list[tuple[Any, ...]]:
    out = []
    for rec in run(srv, DESCRIBE):
        props = sorted((k, t, str(v)) for k, t, v in rec["props"])
        raw = {k: _norm(v) for k, v in rec["raw"].items()}
        out.append((sorted(rec["labels"]), props, sorted(raw.items())))
    return out


def _norm(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, bytes | bytearray):
        return ("bytes", bytes(v))
    return repr(v)
