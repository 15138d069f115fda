"""Hypothesis strategies for Neo4j property values as the server reports them, and an oracle
(independent of strongroom's code) for the Bolt structure that must carry each one back."""

from __future__ import annotations

import math
import struct
from typing import Any

from hypothesis import strategies as st

NS = 1_000_000_000
DAY_NS = 86_400 * NS
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
AVG_MONTH_S = 2_629_746  # the driver's and the server's average month
# Zone ids the server (Java tzdb) and every tzdata know; Monrovia had -00:44:30 until 1972,
# Kathmandu +05:45, Chatham +12:45, Lord Howe a 30-minute DST.
ZONES = ["UTC", "Europe/Berlin", "Europe/Amsterdam", "America/New_York", "Asia/Kolkata",
         "Asia/Kathmandu", "Pacific/Chatham", "Australia/Lord_Howe", "Africa/Monrovia",
         "America/St_Johns", "Asia/Tokyo", "Pacific/Kiritimati", "Etc/GMT+12"]

i64 = st.one_of(st.sampled_from([I64_MIN, I64_MIN + 1, -1, 0, 1, I64_MAX - 1, I64_MAX]),
                st.integers(I64_MIN, I64_MAX))
years = st.one_of(st.integers(-2, 2), st.integers(9998, 10_001), st.integers(1965, 1971),
                  st.integers(1, 9999), st.integers(-999_999_999, 999_999_999))
nanos_of_day = st.one_of(st.sampled_from([0, 1, 999, 999_999, 1_000_000, NS - 1, NS,
                                          DAY_NS - NS, DAY_NS - 1]),
                         st.integers(0, DAY_NS - 1))
offsets = st.integers(-18 * 3600, 18 * 3600)  # every offset the server allows, seconds too


def is_leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


@st.composite
def ymd(draw: Any, year: Any = years) -> tuple[int, int, int]:
    y, m = draw(year), draw(st.integers(1, 12))
    last = 29 if m == 2 and is_leap(y) else (28 if m == 2 else (30 if m in (4, 6, 9, 11) else 31))
    return y, m, draw(st.one_of(st.sampled_from([1, last]), st.integers(1, last)))


def offset_text(off: int) -> str:
    """The server's rendering of an offset: Z, +05:45, -00:44:30."""
    if off == 0:
        return "Z"
    sign, a = ("-" if off < 0 else "+"), abs(off)
    text = f"{sign}{a // 3600:02d}:{a // 60 % 60:02d}"
    return text + (f":{a % 60:02d}" if a % 60 else "")


@st.composite
def datetime_fact(draw: Any, year: Any = years, zones: list[str] = ZONES) -> list[Any]:
    y, m, d = draw(ymd(year))
    off = draw(offsets)
    tz = draw(st.one_of(st.just(offset_text(off)), st.sampled_from(zones)))
    return ["datetime", y, m, d, draw(nanos_of_day), off, tz]


def temporal_facts(year: Any = years, zones: list[str] = ZONES) -> Any:
    return st.one_of(
        ymd(year).map(lambda t: ["date", *t]),
        nanos_of_day.map(lambda n: ["localtime", n]),
        st.tuples(nanos_of_day, offsets).map(lambda t: ["time", *t]),
        st.tuples(ymd(year), nanos_of_day).map(lambda t: ["localdatetime", *t[0], t[1]]),
        datetime_fact(year, zones),
        st.tuples(i64, i64, i64, st.integers(0, NS - 1)).map(lambda t: ["duration", *t]),
    )


def expected_structure(fact: list[Any]) -> tuple[Any, ...] | None:
    """The Bolt structure (tag, fields) that writes ``fact`` back exactly, or None when the
    Python driver cannot carry it (the backup must refuse it)."""
    tag = fact[0]
    if tag == "date":
        _, y, m, d = fact
        return ("D", days_from_civil(y, m, d)) if 1 <= y <= 9999 else None
    if tag == "localtime":
        return ("t", fact[1])
    if tag == "time":
        return ("T", fact[1], fact[2])
    if tag == "localdatetime":
        _, y, m, d, nod = fact
        if not 1 <= y <= 9999:
            return None
        return ("d", days_from_civil(y, m, d) * 86_400 + nod // NS, nod % NS)
    if tag == "datetime":
        _, y, m, d, nod, off, tz = fact
        utc = days_from_civil(y, m, d) * 86_400 + nod // NS - off
        lo, hi = days_from_civil(1, 1, 1) * 86_400, days_from_civil(10_000, 1, 1) * 86_400 - 1
        return ("i", utc, nod % NS, tz) if lo <= utc <= hi else None
    _, mo, d, s, ns = fact
    if not I64_MIN <= mo * AVG_MONTH_S + d * 86_400 + s <= I64_MAX:
        return None
    return ("E", mo, d, s * NS + ns)  # seconds and nanoseconds compared as a total


def structure_of(dehydrated: Any) -> tuple[Any, ...]:
    tag = dehydrated.tag.decode()
    fields = list(dehydrated.fields)
    if tag == "E":
        return ("E", fields[0], fields[1], fields[2] * NS + fields[3])
    return (tag, *fields)


# Non-temporal values, as the driver hands them over.
floats = st.one_of(st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324,
                                    1.7976931348623157e308]), st.floats())
finite = st.floats(allow_nan=False, allow_infinity=False)
texts = st.text()  # any code point but surrogates (UTF-8 cannot carry those)
scalars = st.one_of(st.booleans(), i64, floats, texts, st.binary())


@st.composite
def points(draw: Any) -> Any:
    from neo4j.spatial import CartesianPoint, WGS84Point

    if draw(st.booleans()):
        return CartesianPoint(draw(st.lists(finite, min_size=2, max_size=3)))
    lon = draw(st.floats(-180, 180))
    lat = draw(st.floats(-90, 90))
    coords = [lon, lat] + draw(st.lists(finite, max_size=1))
    return WGS84Point(coords)


def homogeneous_lists(elements: Any) -> Any:
    return st.lists(elements, max_size=5)


plain_values = st.one_of(scalars, points(), homogeneous_lists(st.booleans()),
                         homogeneous_lists(i64), homogeneous_lists(floats),
                         homogeneous_lists(texts), homogeneous_lists(points()))


def same(a: Any, b: Any) -> bool:
    """Exact equality: floats bit for bit (NaN equals NaN, -0.0 differs from 0.0)."""
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack(">d", a) == struct.pack(">d", b) or (math.isnan(a) and math.isnan(b))
    if hasattr(a, "srid") or hasattr(b, "srid"):
        return getattr(a, "srid", None) == getattr(b, "srid", None) and same(list(a), list(b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b
