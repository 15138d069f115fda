"""Exact, type-tagged JSON encoding of Neo4j property values, and order-free graph digests.

Plain JSON carries booleans, integers, finite floats, strings and lists. Everything else is a
small tagged object ``{"$t": tag, ...}`` (a Neo4j property can never be a map, so a dict is
always a tag). Temporal values (dates, times, datetimes, durations) are encoded from facts the
*server* reports (:mod:`.temporal`), never from driver objects, which are not exact. A value
that could not be written back is refused at backup time with :class:`UnrestorableValue`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import Any

from neo4j.spatial import CartesianPoint, Point, WGS84Point

from strongroom.errors import IntegrityError
from strongroom.sources.neo4j.temporal import (
    TAGS,
    TEMPORAL_FACTS,
    UnrestorableValue,
    decode_temporal,
    encode_fact,
)

_CARTESIAN = {7203, 9157}
_WGS84 = {4326, 4979}

# Cypher fragment: the properties of ``{v}`` as ``[key, value]`` pairs, where temporal values
# become ``[key, facts, is_list]`` with the server's own facts (no lossy driver hydration).
PROPS = ("[k IN keys({v}) | CASE WHEN any(t IN ['DATE', 'TIME', 'DURATION'] "
         "WHERE valueType({v}[k]) CONTAINS t) "
         "THEN [k, [z IN (CASE WHEN valueType({v}[k]) STARTS WITH 'LIST' THEN {v}[k] "
         "ELSE [{v}[k]] END) | " + TEMPORAL_FACTS.replace("{z}", "z") + "], "
         "valueType({v}[k]) STARTS WITH 'LIST'] ELSE [k, {v}[k]] END]")

__all__ = ["PROPS", "UnrestorableValue", "canonical", "decode_props", "decode_value",
           "encode_props", "encode_value", "node_digest", "rel_digest"]


def encode_value(v: Any) -> Any:
    """One non-temporal property value as JSON data (temporals: :func:`encode_props`)."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        return {"$t": "float", "v": "NaN" if math.isnan(v) else ("Inf" if v > 0 else "-Inf")}
    if isinstance(v, bytes | bytearray):
        return {"$t": "bytes", "v": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, list):
        return [encode_value(x) for x in v]
    if isinstance(v, Point):
        if v.srid not in _CARTESIAN | _WGS84:
            raise UnrestorableValue(f"point with unknown SRID {v.srid}")
        return {"$t": "point", "srid": v.srid, "c": [encode_value(float(c)) for c in v]}
    raise UnrestorableValue(f"the Neo4j property type {type(v).__name__} is not supported")


def encode_props(pairs: list[list[Any]]) -> dict[str, Any]:
    """Encode the rows of :data:`PROPS`: ``[key, value]`` or ``[key, facts, is_list]``.
    A value that could not be restored raises :class:`UnrestorableValue` naming its key."""
    out: dict[str, Any] = {}
    for pair in pairs:
        try:
            if len(pair) == 2:
                out[pair[0]] = encode_value(pair[1])
            else:
                enc = [encode_fact(f) for f in pair[1]]
                out[pair[0]] = enc if pair[2] else enc[0]
        except UnrestorableValue as exc:
            raise UnrestorableValue(f"property {pair[0]!r}: {exc}") from None
    return out


def decode_value(v: Any) -> Any:
    """Inverse of the encoders: driver objects the Bolt layer sends back exactly."""
    if isinstance(v, list):
        return [decode_value(x) for x in v]
    if not isinstance(v, dict):
        return v
    try:
        tag = v["$t"]
        if tag == "float":
            return {"NaN": math.nan, "Inf": math.inf, "-Inf": -math.inf}[v["v"]]
        if tag == "bytes":
            return base64.b64decode(v["v"], validate=True)
        if tag in TAGS:
            return decode_temporal(tag, v)
        if tag == "point":
            coords = [decode_value(c) for c in v["c"]]
            if v["srid"] in _CARTESIAN:
                return CartesianPoint(coords)
            if v["srid"] in _WGS84:
                return WGS84Point(coords)
            raise ValueError(f"unknown SRID {v['srid']!r}")
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise IntegrityError(f"malformed encoded property value {str(v)[:80]!r}") from exc
    raise IntegrityError(f"unknown encoded property value {str(v)[:80]!r}")


def decode_props(props: dict[str, Any]) -> dict[str, Any]:
    return {k: decode_value(v) for k, v in props.items()}


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def node_digest(labels: list[str], props: dict[str, Any]) -> bytes:
    """16-byte digest of a node's labels and encoded properties (no ids: they change)."""
    return hashlib.blake2b(canonical(["N", sorted(labels), props]), digest_size=16).digest()


def rel_digest(rtype: str, props: dict[str, Any], start: bytes, end: bytes) -> bytes:
    """Digest of a relationship: type, properties and the digests of its two end nodes."""
    return hashlib.blake2b(canonical(["R", rtype, props, start.hex(), end.hex()]),
                           digest_size=16).digest()
