"""Neo4j value fidelity against the real server: generated values (hypothesis) made by the
server's own constructors come back identical after backup and restore; values the driver
cannot write back are refused by the backup, naming node and property; a snapshot that cannot
be decoded is refused before anything is cleared."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.errors import IntegrityError
from strongroom.repository import Repository
from strongroom.sources.neo4j import graph
from strongroom.sources.neo4j.backup import backup_neo4j
from strongroom.sources.neo4j.codec import UnrestorableValue
from strongroom.sources.neo4j.graphfile import FORMAT, GRAPH_FILE, VERSION
from strongroom.sources.neo4j.restore import restore_neo4j
from tests.codecs.neo4j_values import (
    NS,
    datetime_fact,
    nanos_of_day,
    offset_text,
    offsets,
    points,
    texts,
    ymd,
)
from tests.neo4j.helpers import run
from tests.support.neo4j_server import Neo4jServer

# Every property as the server renders it (toString is exact: floats print their shortest
# unique form, temporals every nanosecond, offset and zone).
SHOW = """MATCH (n) RETURN labels(n) AS labels, [k IN keys(n) | [k, valueType(n[k]),
  CASE WHEN valueType(n[k]) STARTS WITH 'LIST' THEN [x IN n[k] | toString(x)]
       ELSE toString(n[k]) END]] AS props"""
HMS = "hour: {p}[0], minute: {p}[1], second: {p}[2], nanosecond: {p}[3]"
YMD = "year: {p}[4], month: {p}[5], day: {p}[6]"
MAKE = {  # Cypher constructors: the server, not our codec, makes each value
    "date": "date({{" + YMD + "}})",
    "localtime": "localtime({{" + HMS + "}})",
    "time": "time({{" + HMS + ", timezone: {p}[7]}})",
    "localdatetime": "localdatetime({{" + YMD + ", " + HMS + "}})",
    "datetime": "datetime({{" + YMD + ", " + HMS + ", timezone: {p}[7]}})",
    "duration": "duration({{months: {p}[0], days: {p}[1], seconds: {p}[2], "
                "nanoseconds: {p}[3]}})",
}


def _creds(srv: Neo4jServer) -> dict[str, Any]:
    return {"user": srv.user, "password": srv.password}


def _args(fact: list[Any]) -> tuple[str, list[Any]]:
    """A fact (see tests/codecs/neo4j_values.py) as constructor arguments."""
    tag = fact[0]
    if tag == "duration":
        return tag, fact[1:]
    nod = 0 if tag == "date" else (fact[1] if tag in ("localtime", "time") else fact[4])
    s, ns = divmod(nod, NS)
    hms = [s // 3600, s // 60 % 60, s % 60, ns]
    ymd_ = list(fact[1:4]) if tag in ("date", "localdatetime", "datetime") else [1, 1, 1]
    zone = fact[6] if tag == "datetime" else (offset_text(fact[2]) if tag == "time" else None)
    return tag, hms + ymd_ + [zone]


# Years the driver carries, away from the first and last day (where a zone can push the UTC
# instant out of range: the unit tests cover that refusal).
inner_years = st.one_of(st.integers(1, 3), st.integers(1965, 1971), st.integers(9997, 9999),
                        st.integers(1, 9999))
inner_ymd = ymd(inner_years).filter(lambda t: t[:2] not in ((1, 1), (9999, 12)))
temporal = st.one_of(
    inner_ymd.map(lambda t: ["date", *t]),
    nanos_of_day.map(lambda n: ["localtime", n]),
    st.tuples(nanos_of_day, offsets).map(lambda t: ["time", *t]),
    st.tuples(inner_ymd, nanos_of_day).map(lambda t: ["localdatetime", *t[0], t[1]]),
    datetime_fact(inner_years).filter(lambda f: (f[1], f[2]) not in ((1, 1), (9999, 12))),
    st.tuples(*[st.integers(-10**9, 10**9)] * 2, st.integers(-10**15, 10**15),
              st.integers(-NS, 2 * NS)).map(lambda t: ["duration", *t]),
)
plain = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), texts,
                  st.binary(max_size=20), points(),
                  st.lists(st.floats(), max_size=3), st.lists(texts, max_size=3))


@st.composite
def node(draw: Any) -> tuple[str, dict[str, Any]]:
    """One CREATE clause with its parameters: some temporals (alone and in lists) and some
    plain values."""
    parts, params = [], {}
    for i, fact in enumerate(draw(st.lists(temporal, min_size=1, max_size=10))):
        tag, args = _args(fact)
        params[f"t{i}"] = args
        parts.append(f"t{i}: " + MAKE[tag].format(p=f"$t{i}"))
    same_kind = draw(st.lists(temporal, min_size=1, max_size=3)
                     .filter(lambda fs: len({f[0] for f in fs}) == 1))
    items = []
    for j, fact in enumerate(same_kind):
        tag, args = _args(fact)
        params[f"l{j}"] = args
        items.append(MAKE[tag].format(p=f"$l{j}"))
    parts.append(f"lst: [{', '.join(items)}]")
    for i, value in enumerate(draw(st.lists(plain, max_size=5))):
        params[f"v{i}"] = value
        parts.append(f"v{i}: $v{i}")
    return "CREATE (:Gen {" + ", ".join(parts) + "})", params


def _show(srv: Neo4jServer) -> list[Any]:
    return sorted((repr(r["labels"]), repr(sorted(map(tuple, r["props"]))))
                  for r in run(srv, SHOW))


EXAMPLES = 12  # each is a backup and a restore: about a second on a quiet machine
_REPOS: list[Repository] = []


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(nodes=st.lists(node(), min_size=1, max_size=3))
def test_generated_values_round_trip_through_the_server(
        neo4j_db: Neo4jServer, tmp_path_factory: pytest.TempPathFactory,
        nodes: list[tuple[str, dict[str, Any]]]) -> None:
    target = graph.Target.parse(neo4j_db.uri, neo4j_db.user, neo4j_db.password)
    with graph.session(target, write=True) as s:
        graph.clear(s)
    for query, params in nodes:
        run(neo4j_db, query, **params)
    before = _show(neo4j_db)
    if not _REPOS:  # one repository for every example (init derives keys: not free)
        _REPOS.append(Repository.init(str(tmp_path_factory.mktemp("gen") / "repo"),
                                      password="pw"))
    repo = _REPOS[0]
    snap = backup_neo4j(repo, neo4j_db.uri, **_creds(neo4j_db))
    report = restore_neo4j(repo, snap, neo4j_db.uri, replace=True, **_creds(neo4j_db))
    assert report["verified"] and report["checksum"] == snap.meta["checksum"]
    assert _show(neo4j_db) == before


def test_issue_12_values_round_trip_exactly(neo4j_db: Neo4jServer, repo: Repository) -> None:
    """A zoned datetime before 1970 with sub-millisecond nanoseconds (was one second early),
    offsets with seconds (were unrestorable), a zoned time with both."""
    run(neo4j_db, """CREATE (:Edge {key: 1,
      a: datetime('1960-01-01T00:00:00.0000005Z'),
      b: datetime('1969-12-31T23:59:59.000000001[Europe/Berlin]'),
      c: datetime({year: 2000, month: 1, day: 1, hour: 0, minute: 0, second: 0, nanosecond: 7,
                  timezone: '+05:45:30'}),
      d: datetime({year: 1950, month: 6, day: 1, hour: 0, minute: 0, second: 0, nanosecond: 1,
                  timezone: '-00:44:30'}),
      e: time({hour: 1, minute: 0, second: 0, nanosecond: 1, timezone: '+05:45:30'}),
      f: [datetime('1900-01-01T00:00:00.000000999Z'), datetime('1901-01-01T00:00Z')],
      g: datetime('1950-01-01T00:00:00.0000001[Africa/Monrovia]'),
      h: date('0001-01-01'), i: localdatetime('9999-12-31T23:59:59.999999999')})""")
    before = _show(neo4j_db)
    snap = backup_neo4j(repo, neo4j_db.uri, **_creds(neo4j_db))
    restore_neo4j(repo, snap, neo4j_db.uri, replace=True, **_creds(neo4j_db))
    assert _show(neo4j_db) == before
    got = run(neo4j_db, "MATCH (n:Edge) RETURN toString(n.a) AS a, n.c.offsetSeconds AS c")[0]
    assert (got["a"], got["c"]) == ("1960-01-01T00:00:00.0000005Z", 20_730)


@pytest.mark.parametrize(("create", "says"), [
    ("date({year: 0, month: 1, day: 1})", "date 0000-01-01 is outside the years 0001-9999"),
    ("localdatetime({year: -5, month: 1, day: 1})", "local datetime -0005-01-01T00:00:00"),
    ("[date('2000-01-01'), date({year: 10000, month: 1, day: 1})]", "date +10000-01-01"),
    ("datetime({year: 1, month: 1, day: 1, timezone: '+05:00'})", "outside the UTC years"),
])
def test_values_the_driver_cannot_write_back_are_refused_at_backup(
        neo4j_db: Neo4jServer, repo: Repository, create: str, says: str) -> None:
    run(neo4j_db, f"CREATE (:Fine {{v: 1}}), (:Old:Odd {{`we\nird`: {create}}})")  # newline
    with pytest.raises(UnrestorableValue) as exc:
        backup_neo4j(repo, neo4j_db.uri, **_creds(neo4j_db))
    msg = str(exc.value)
    assert says in msg and "property 'we\\nird'" in msg and "['Old', 'Odd']" in msg
    assert "\n" not in msg and "back up again" in msg
    assert repo.list_snapshots() == []  # nothing half-written committed


def test_undecodable_snapshot_is_refused_before_clearing(neo4j_db: Neo4jServer,
                                                         repo: Repository) -> None:
    """Decode pass first, then wipe, then load: with or without check_first."""
    body = (b'{"format": "strongroom-neo4j-graph", "version": 1}\n'
            b'["n", 0, ["A"], {"ok": 1}]\n'
            b'["n", 1, ["A"], {"d": {"$t": "date", "v": "0000-01-01"}}]\n["end", 2, 0]\n')
    with repo.writer(source_name="bad", source_kind="neo4j") as w:
        w.add_bytes(GRAPH_FILE, body)
        w.set_meta({"format": FORMAT, "version": VERSION, "checksum": "0" * 64, "nodes": 2})
        snap = w.commit()
    run(neo4j_db, "CREATE (:Keep {k: 1})")
    for check_first in (True, False):
        started = time.monotonic()
        with pytest.raises(IntegrityError, match="node 1 in snapshot .*malformed"):
            restore_neo4j(repo, snap, neo4j_db.uri, replace=True, check_first=check_first,
                          **_creds(neo4j_db))
        assert time.monotonic() - started < 60
        assert run(neo4j_db, "MATCH (n) RETURN collect(labels(n)) AS l")[0]["l"] == [["Keep"]]


