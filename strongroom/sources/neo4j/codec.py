"""Exact, type-tagged JSON encoding of Neo4j property values, and order-free graph digests.

Plain JSON carries booleans, integers, finite floats, strings and lists. Everything else is a
small tagged object ``{"$t": tag, ...}`` (a Neo4j property can never be a map, so a dict is
always a tag). Zoned DATETIME and TIME values are encoded from facts the *server* reports
(epoch seconds, nanoseconds, zone id or offset): the Python driver folds offset ``Z`` and zone
``UTC`` together and rounds offsets to whole minutes, so its objects alone are not exact.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import math
import re
from typing import Any

from neo4j.spatial import CartesianPoint, Point, WGS84Point
from neo4j.time import Date, DateTime, Duration, Time

from strongroom.errors import IntegrityError, SourceError

_EPOCH_ORDINAL = Date(1970, 1, 1).to_ordinal()
_OFFSET = re.compile(r"^(?:Z|([+-])(\d\d):(\d\d)(?::(\d\d))?)$")
_CARTESIAN = {7203, 9157}
_WGS84 = {4326, 4979}

# Cypher fragment: the properties of ``{v}`` as ``[key, value]`` pairs, where zoned temporals
# become ``[key, facts, true]`` with the server's own facts (no lossy, slow driver hydration).
PROPS = """[k IN keys({v}) | CASE WHEN valueType({v}[k]) CONTAINS 'ZONED'
  THEN [k, [z IN (CASE WHEN valueType({v}[k]) STARTS WITH 'LIST' THEN {v}[k] ELSE [{v}[k]] END) |
    CASE WHEN valueType(z) STARTS WITH 'ZONED DATETIME'
         THEN [z.epochSeconds, z.nanosecond, z.timezone, z < datetime({{epochSeconds: 0}})]
         ELSE [z.hour * 3600 + z.minute * 60 + z.second, z.nanosecond, z.offsetSeconds] END],
    valueType({v}[k]) STARTS WITH 'LIST']
  ELSE [k, {v}[k]] END]"""


class _Zone(_dt.tzinfo):
    """A fixed offset, optionally carrying a zone id the driver sends to the server verbatim."""

    def __init__(self, offset_s: int, zone: str | None = None) -> None:
        self._offset = _dt.timedelta(seconds=offset_s)
        self.zone = zone

    def utcoffset(self, dt: Any) -> _dt.timedelta:
        return self._offset

    def dst(self, dt: Any) -> _dt.timedelta:
        return _dt.timedelta(0)

    def tzname(self, dt: Any) -> str:
        return self.zone or str(self._offset)


def _offset_seconds(tz: str) -> int | None:
    m = _OFFSET.match(tz)
    if not m:
        return None
    if tz == "Z":
        return 0
    sign = -1 if m.group(1) == "-" else 1
    return sign * (int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4) or 0))


def _zoned(fact: list[Any]) -> dict[str, Any]:
    if len(fact) == 4:  # datetime: the server's epochSeconds rounds toward zero
        secs, ns, tz, before_epoch = fact
        if before_epoch and ns:
            secs -= 1
        return {"$t": "datetime", "s": secs, "ns": ns, "tz": tz}
    sod, ns, off = fact
    return {"$t": "time", "ns": sod * 1_000_000_000 + ns, "off": off}


def encode_value(v: Any) -> Any:
    """One property value (zoned temporals excepted: see :func:`encode_props`) as JSON data."""
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
    if isinstance(v, DateTime):
        if v.tzinfo is not None:
            raise SourceError("zoned datetime reached the encoder without server facts")
        return {"$t": "localdatetime", "d": v.date().iso_format(), "ns": v.time().ticks}
    if isinstance(v, Date):
        return {"$t": "date", "v": v.iso_format()}
    if isinstance(v, Time):
        if v.tzinfo is not None:
            raise SourceError("zoned time reached the encoder without server facts")
        return {"$t": "localtime", "ns": v.ticks}
    if isinstance(v, Duration):
        return {"$t": "duration", "m": v.months, "d": v.days, "s": v.seconds,
                "ns": v.nanoseconds}
    if isinstance(v, Point):
        return {"$t": "point", "srid": v.srid, "c": [encode_value(float(c)) for c in v]}
    raise SourceError(f"unsupported Neo4j property type {type(v).__name__}")


def encode_props(pairs: list[list[Any]]) -> dict[str, Any]:
    """Encode the rows of :data:`PROPS`: ``[key, value]`` or ``[key, facts, is_list]``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if len(pair) == 2:
            out[pair[0]] = encode_value(pair[1])
        else:
            enc = [_zoned(f) for f in pair[1]]
            out[pair[0]] = enc if pair[2] else enc[0]
    return out


def _wall_clock(epoch_s: int, ns: int, offset_s: int) -> DateTime:
    days, sod = divmod(epoch_s + offset_s, 86400)
    date = Date.from_ordinal(_EPOCH_ORDINAL + days)
    return DateTime.combine(date, Time.from_ticks(sod * 1_000_000_000 + ns))


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
        if tag == "date":
            return Date.from_iso_format(v["v"])
        if tag == "localtime":
            return Time.from_ticks(v["ns"])
        if tag == "localdatetime":
            return DateTime.combine(Date.from_iso_format(v["d"]), Time.from_ticks(v["ns"]))
        if tag == "time":
            return Time.from_ticks(v["ns"], tz=_Zone(v["off"]))
        if tag == "datetime":
            off = _offset_seconds(v["tz"])
            if off is None:  # a zone id: send UTC wall clock plus the id
                return _wall_clock(v["s"], v["ns"], 0).replace(tzinfo=_Zone(0, v["tz"]))
            return _wall_clock(v["s"], v["ns"], off).replace(tzinfo=_Zone(off))
        if tag == "duration":
            return Duration(months=v["m"], days=v["d"], seconds=v["s"], nanoseconds=v["ns"])
        if tag == "point":
            coords = [decode_value(c) for c in v["c"]]
            if v["srid"] in _CARTESIAN:
                return CartesianPoint(coords)
            if v["srid"] in _WGS84:
                return WGS84Point(coords)
    except (KeyError, TypeError, ValueError) as exc:
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
