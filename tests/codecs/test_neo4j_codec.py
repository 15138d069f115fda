"""The Neo4j property codec in-process, property-based: whatever the server can hold either
comes back exactly (encode, JSON text, decode, and the very Bolt structure the driver sends)
or is refused by the backup with UnrestorableValue; nothing in between."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from strongroom.errors import IntegrityError
from strongroom.sources.neo4j.codec import (
    UnrestorableValue,
    decode_props,
    decode_value,
    encode_props,
    encode_value,
)
from strongroom.sources.neo4j.graphfile import LineStream
from tests.codecs.neo4j_values import (
    expected_structure,
    plain_values,
    same,
    structure_of,
    temporal_facts,
    texts,
)


def _settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _dehydrate(value: Any) -> Any:
    """What the driver puts on the wire for a parameter (Bolt 5 hydration handler)."""
    from neo4j._codec.hydration.bolt.v3 import HydrationHandler

    hooks = HydrationHandler().new_hydration_scope().dehydration_hooks
    transform = hooks.get_transformer(value)
    return transform(value) if transform else value


def _through_json(encoded: Any) -> Any:
    """As the snapshot stores it: one graph.jsonl line, read back."""
    return json.loads(LineStream(iter([encoded])).readall())


@_settings(3000)
@given(fact=temporal_facts())
# three values that once failed to round-trip: a pre-1970 datetime with sub-millisecond
# nanoseconds, an offset with seconds, a date in year 0
@example(fact=["datetime", 1960, 1, 1, 500, 0, "Z"])
@example(fact=["datetime", 2000, 1, 1, 0, 20_730, "+05:45:30"])
@example(fact=["date", 0, 1, 1])
@example(fact=["datetime", 1, 1, 1, 0, 18_000, "+05:00"])  # UTC year 0: refused
@example(fact=["datetime", 9999, 12, 31, 86_399 * 10**9, -3600, "-01:00"])
@example(fact=["duration", 0, 0, -1, 5])
@example(fact=["duration", 2**63 - 1, 0, 0, 0])
def test_temporal_round_trips_exactly_or_is_refused(fact: list[Any]) -> None:
    want = expected_structure(fact)
    for is_list in (False, True):
        pair = ["p", [fact, fact] if is_list else [fact], is_list]
        if want is None:
            with pytest.raises(UnrestorableValue, match="property 'p': "):
                encode_props([pair])
            continue
        encoded = encode_props([pair])
        back = decode_props(_through_json(encoded))["p"]
        sent = [structure_of(_dehydrate(x)) for x in back] if is_list else \
            structure_of(_dehydrate(back))
        assert sent == ([want, want] if is_list else want)
        # the encoding is deterministic: the restore's fingerprint equals the backup's
        assert encode_props([pair]) == encoded


@_settings(2000)
@given(value=plain_values)
def test_plain_values_round_trip_exactly(value: Any) -> None:
    encoded = encode_props([["k", value]])
    back = decode_props(_through_json(encoded))["k"]
    assert same(back, value)
    if hasattr(value, "srid"):  # points travel as X/Y structures with their SRID
        assert structure_of(_dehydrate(back))[:2] == (("X" if len(value) == 2 else "Y"),
                                                       value.srid)


@_settings(500)
@given(key=texts, labels=st.lists(texts, max_size=3))
def test_any_key_round_trips_and_refusals_name_it(key: str, labels: list[str]) -> None:
    assert list(decode_props(_through_json(encode_props([[key, 1]])))) == [key]
    with pytest.raises(UnrestorableValue) as exc:
        encode_props([[key, [["date", 10_000, 1, 1]], False]])
    assert repr(key) in str(exc.value) and "\n" not in str(exc.value)


@_settings(1000)
@given(junk=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                         lambda c: st.lists(c, max_size=3)
                         | st.dictionaries(st.sampled_from(["$t", "v", "s", "ns", "tz", "m",
                                                            "d", "off", "srid", "c"]),
                                           c, max_size=4),
                         max_leaves=8))
def test_damaged_encodings_raise_integrity_error_only(junk: Any) -> None:
    """A snapshot damaged or forged anywhere never crashes the restore's decode pass with
    anything but IntegrityError (which it reports before touching the target)."""
    try:
        decode_value(junk)
    except IntegrityError:
        pass


@pytest.mark.parametrize("bad", [
    {"$t": "date", "v": "0000-01-01"},
    {"$t": "date", "v": "+10000-01-01"},
    {"$t": "datetime", "s": -62_135_596_801, "ns": 0, "tz": "Z"},
    {"$t": "datetime", "s": 0, "ns": 10**9, "tz": "Z"},
    {"$t": "datetime", "s": 0, "ns": 0, "tz": 5},
    {"$t": "localtime", "ns": 86_400 * 10**9},
    {"$t": "time", "ns": 0, "off": 18 * 3600 + 1},
    {"$t": "duration", "m": 2**63, "d": 0, "s": 0, "ns": 0},
    {"$t": "point", "srid": 1234, "c": [1.0, 2.0]},
    {"$t": "float", "v": "nan"},
    {"$t": "nope"},
])
def test_undecodable_values_are_integrity_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError):
        decode_value(bad)


def test_unknown_driver_types_are_refused() -> None:
    with pytest.raises(UnrestorableValue, match="not supported"):
        encode_value(object())
