"""Neo4j source against a real server (official neo4j-harness)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from strongroom.errors import (
    ConfigError,
    IntegrityError,
    SourceError,
    SourceUnreachable,
    TargetNotEmpty,
)
from strongroom.repository import Repository
from strongroom.sources import registry
from strongroom.sources.neo4j.backup import GraphMoved, backup_neo4j
from strongroom.sources.neo4j.graph import Target
from strongroom.sources.neo4j.restore import restore_neo4j
from tests.neo4j.helpers import describe, run, run_auto
from tests.support.neo4j_server import Neo4jServer, free_port

EVERY_TYPE = """
CREATE (a:Typed:Every {key: 1, i: 9223372036854775807, neg: -9223372036854775808, f: 0.1,
  nan: 0.0/0.0, inf: 1.0/0.0, ninf: -1.0/0.0, nz: -0.0, s: 'ünïcödé \\n "q"', e: '', t: true,
  fl: false, li: [1, 2, 3], lf: [1.5, 0.0/0.0], ls: ['a', 'b'], lb: [true, false], le: [],
  by: $bytes,
  d: date('2024-02-29'), d0: date('0001-01-01'),
  tm: time('12:34:56.123456789+05:45'), tmz: time('00:00Z'), tmn: time('23:00-11:30'),
  lt: localtime('23:59:59.999999999'),
  dt: datetime('2020-03-29T02:30:00.000000001[Europe/Berlin]'),
  dto: datetime('2020-03-04T05:06:07.123456789+01:00'),
  dtz: datetime('2020-01-01T00:00Z'), dtu: datetime('2020-01-01T00:00[UTC]'),
  dtold: datetime('1890-01-01T00:00:00.5[Europe/Amsterdam]'),
  dtneg: datetime('1969-12-31T23:59:59.999999999-02:00'),
  ldt: localdatetime('2020-01-01T00:00:00.999999999'),
  dur: duration({months: -3, days: 4, seconds: 5, nanoseconds: -7}),
  dur2: duration('P1Y2M10DT2H30M15.000000001S'), dur3: duration({seconds: -1, nanoseconds: 5}),
  p2: point({x: 1.5, y: -2.25}), p3: point({x: 1, y: 2, z: 3}),
  w2: point({longitude: 12.5, latitude: 55.7}), w3: point({longitude: 1, latitude: 2, height: 3}),
  ldt2: [datetime('2020-01-01T00:00Z'), datetime('2020-06-01T12:00[America/New_York]')],
  ltm: [time('10:00+01:00')], lp: [point({x: 1, y: 2}), point({x: 3, y: 4})],
  ld: [date('2000-01-01')], ldur: [duration('P1D')]}),
  (b:Typed {key: 2}),
  (c {key: 3, name: 'no label'}),
  (a)-[:LINK {key: 10, when: datetime('2021-05-05T05:05:05.5[Asia/Kolkata]'), w: 1.25,
              tags: ['x', 'y'], at: point({x: 0, y: 0})}]->(b),
  (b)-[:`odd type ``x`` ` {key: 11}]->(a),
  (a)-[:SELF]->(a)
"""


def _creds(srv: Neo4jServer) -> dict[str, str | None]:
    return {"user": srv.user, "password": srv.password}


def test_every_property_type_round_trips_exactly(neo4j_db: Neo4jServer, repo: Repository
                                                 ) -> None:
    run(neo4j_db, EVERY_TYPE, bytes=bytes(range(256)))
    run(neo4j_db, "CREATE CONSTRAINT typed_key FOR (t:Typed) REQUIRE t.key IS UNIQUE")
    run(neo4j_db, "CREATE TEXT INDEX typed_s FOR (t:Typed) ON (t.s)")
    run(neo4j_db, "CREATE FULLTEXT INDEX link_tags FOR ()-[r:LINK]-() ON EACH [r.tags]")
    before = describe(neo4j_db)
    rels_before = run(neo4j_db, "MATCH (a)-[r]->(b) RETURN a.key AS a, type(r) AS t, "
                                "toString(r.when) AS w, r.at AS at, b.key AS b ORDER BY a, t")

    snap = backup_neo4j(repo, neo4j_db.uri, **_creds(neo4j_db), name="typed")
    assert snap.meta["nodes"] == 3 and snap.meta["relationships"] == 3
    assert snap.meta["labels"] == {"Every": 1, "Typed": 2}
    assert snap.meta["types"] == {"LINK": 1, "SELF": 1, "odd type `x` ": 1}
    assert len(snap.meta["schema"]) == 3

    report = restore_neo4j(repo, snap, neo4j_db.uri, replace=True, **_creds(neo4j_db))
    assert report["verified"] and report["nodes"] == 3 and report["relationships"] == 3
    assert report["checksum"] == snap.meta["checksum"]
    assert describe(neo4j_db) == before
    assert run(neo4j_db, "MATCH (a)-[r]->(b) RETURN a.key AS a, type(r) AS t, "
                         "toString(r.when) AS w, r.at AS at, b.key AS b ORDER BY a, t"
               ) == rels_before
    # temporary import ids and their index are gone
    assert run(neo4j_db, "MATCH (n) WHERE n.__strongroom_id IS NOT NULL OR "
                         "n:__StrongroomImport RETURN count(n) AS c")[0]["c"] == 0
    names = {r["name"] for r in run(neo4j_db, "SHOW INDEXES YIELD name")}
    assert "__strongroom_import_id" not in names and {"typed_s", "link_tags"} <= names


@pytest.mark.slow
def test_large_graph_round_trips(neo4j_db: Neo4jServer, repo: Repository) -> None:
    n = 12_000  # past every batch size (restore 4,000 here; clear and finish 10,000)
    run(neo4j_db, "CREATE CONSTRAINT person_id FOR (p:Person) REQUIRE p.id IS UNIQUE")
    run_auto(neo4j_db, "UNWIND range(0, $n - 1) AS i CALL (i) { CREATE (:Person {id: i, "
                  "name: 'p' + i, score: i * 0.5}) } IN TRANSACTIONS OF 20000 ROWS", n=n)
    run_auto(neo4j_db, "UNWIND range(0, $n - 1) AS i CALL (i) { MATCH (a:Person {id: i}) "
                  "MATCH (b:Person {id: (i + 1) % $n}) MATCH (c:Person {id: (i * 7 + 3) % $n}) "
                  "CREATE (a)-[:KNOWS {since: i}]->(b), (a)-[:LIKES]->(c) } "
                  "IN TRANSACTIONS OF 20000 ROWS", n=n)
    snap = backup_neo4j(repo, neo4j_db.uri, **_creds(neo4j_db), name="big")
    assert snap.meta["nodes"] == n and snap.meta["relationships"] == 2 * n
    report = restore_neo4j(repo, snap, neo4j_db.uri, replace=True, **_creds(neo4j_db),
                           batch=4_000)
    assert (report["nodes"], report["relationships"]) == (n, 2 * n)
    assert report["checksum"] == snap.meta["checksum"]
    assert run(neo4j_db, "MATCH (a:Person {id: 41})-[:LIKES]->(c) RETURN c.id AS c"
               )[0]["c"] == (41 * 7 + 3) % n


def test_non_empty_target_refused_without_replace(neo4j_db: Neo4jServer, repo: Repository
                                                  ) -> None:
    run(neo4j_db, "CREATE (:A {k: 1})-[:R]->(:B {k: 2})")
    snap = backup_neo4j(repo, neo4j_db.uri, **_creds(neo4j_db))
    with pytest.raises(TargetNotEmpty, match="is not empty"):
        restore_neo4j(repo, snap, neo4j_db.uri, **_creds(neo4j_db))
    assert run(neo4j_db, "MATCH (n) RETURN count(n) AS c")[0]["c"] == 2  # untouched
    run(neo4j_db, "MATCH (n) DETACH DELETE n")
    run(neo4j_db, "CREATE INDEX only_schema FOR (n:X) ON (n.y)")  # schema alone counts too
    with pytest.raises(TargetNotEmpty):
        restore_neo4j(repo, snap, neo4j_db.uri, **_creds(neo4j_db))
    report = restore_neo4j(repo, snap, neo4j_db.uri, replace=True, **_creds(neo4j_db))
    assert (report["nodes"], report["relationships"], report["schema"]) == (2, 1, 0)


def test_unreachable_server_and_bad_urls(repo: Repository) -> None:
    url = f"bolt://127.0.0.1:{free_port()}"
    with pytest.raises(SourceUnreachable, match="cannot reach Neo4j"):
        backup_neo4j(repo, url)
    with pytest.raises(ConfigError, match="not a Neo4j URL"):
        backup_neo4j(repo, "http://127.0.0.1:7474")
    with pytest.raises(ConfigError, match="not in the URL"):
        backup_neo4j(repo, "bolt://neo4j:secret@127.0.0.1:7687")
    assert repo.list_snapshots() == []


def test_bad_password_and_missing_database(neo4j_srv: Neo4jServer, repo: Repository) -> None:
    with pytest.raises(SourceError, match="refused the credentials") as exc:
        backup_neo4j(repo, neo4j_srv.uri, user="neo4j", password="wrong-password-123")
    assert "wrong-password-123" not in str(exc.value)
    assert not isinstance(exc.value, SourceUnreachable)  # waiting cures no wrong password
    with pytest.raises(SourceError, match="does not exist") as exc:
        backup_neo4j(repo, neo4j_srv.uri + "/nosuchdb", **_creds(neo4j_srv))
    assert not isinstance(exc.value, SourceUnreachable)
    assert repo.list_snapshots() == []


def test_corrupted_snapshot_is_refused_before_touching_target(
        neo4j_db: Neo4jServer, repo: Repository, tmp_path: Path) -> None:
    run(neo4j_db, "UNWIND range(1, 2000) AS i CREATE (:N {i: i, s: 'x' + i})")
    snap = backup_neo4j(repo, neo4j_db.uri, **_creds(neo4j_db))
    run(neo4j_db, "MATCH (n) DETACH DELETE n")
    packs = sorted((p for p in (tmp_path / "repo").rglob("*") if p.is_file()
                    and "data" in p.parts), key=lambda p: p.stat().st_size)
    assert packs, "no pack files found"
    big = packs[-1]
    data = bytearray(big.read_bytes())
    data[len(data) // 2] ^= 0xFF
    big.write_bytes(bytes(data))
    reopened = Repository.open(str(tmp_path / "repo"), password="test-pass")
    with pytest.raises(IntegrityError):
        restore_neo4j(reopened, reopened.find_snapshot(snap.id), neo4j_db.uri,
                      **_creds(neo4j_db))
    assert run(neo4j_db, "MATCH (n) RETURN count(n) AS c")[0]["c"] == 0  # nothing written


def test_verification_mismatch_raises(neo4j_db: Neo4jServer, repo: Repository) -> None:
    run(neo4j_db, "CREATE (:A {k: 1})")
    snap = backup_neo4j(repo, neo4j_db.uri, **_creds(neo4j_db))
    forged = snap.model_copy(update={"meta": {**snap.meta, "checksum": "0" * 64}})
    with pytest.raises(IntegrityError, match="does not match snapshot"):
        restore_neo4j(repo, forged, neo4j_db.uri, replace=True, **_creds(neo4j_db))


def test_consistent_mode(neo4j_db: Neo4jServer, repo: Repository, monkeypatch) -> None:
    run(neo4j_db, "UNWIND range(1, 50) AS i CREATE (:C {i: i})")
    snap = backup_neo4j(repo, neo4j_db.uri, **_creds(neo4j_db), consistent=True)
    assert snap.meta["consistent"] is True and snap.meta["nodes"] == 50

    from strongroom.sources.neo4j import graph

    real = graph.export_records
    calls = []

    def writer_during_export(s, fp):  # a client writes while every export streams
        calls.append(1)
        run(neo4j_db, "CREATE (:C {i: -1})")
        yield from real(s, fp)

    monkeypatch.setattr(graph, "export_records", writer_during_export)
    with pytest.raises(GraphMoved, match="changed during the export"):
        backup_neo4j(repo, neo4j_db.uri, **_creds(neo4j_db), consistent=True, attempts=2,
                     retry_wait_s=0)
    assert len(calls) == 4  # 2 attempts x (fingerprint before + export)
    assert len(repo.list_snapshots()) == 1  # no half snapshot committed


def test_registry_and_cli_round_trip(neo4j_db: Neo4jServer, repo: Repository,
                                     tmp_path: Path) -> None:
    assert registry.get("neo4j").default_class == "database"
    run(neo4j_db, "CREATE (:Cli {v: datetime('2024-01-01T00:00[Europe/Oslo]')})-[:R]->(:Cli)")
    env = {**os.environ, "STRONGROOM_REPOSITORY": str(tmp_path / "repo"),
           "STRONGROOM_PASSWORD": "test-pass"}
    cli = [sys.executable, "-c", "from strongroom.cli import main; main()"]
    out = subprocess.run(cli + ["backup", "neo4j", "--uri", neo4j_db.uri, "--user", "neo4j",
                                "--password-env", neo4j_db.password_env, "--name", "clidb",
                                "--consistent", "--tag", "t1"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "2 nodes, 1 relationships" in out.stdout
    assert neo4j_db.password not in out.stdout + out.stderr
    target = neo4j_db.uri + "/neo4j"
    opts = ["--restore-option", f"password_env={neo4j_db.password_env}"]
    out = subprocess.run(cli + ["restore", "latest", "--name", "clidb", "--target", target]
                         + opts, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 15 and out.stderr.startswith("error: ") and "not empty" in \
        out.stderr and "Traceback" not in out.stderr
    out = subprocess.run(cli + ["restore", "latest", "--name", "clidb", "--target", target,
                                "--replace", "--json"] + opts,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"verified": true' in out.stdout
    out = subprocess.run(cli + ["backup", "neo4j", "--uri", f"bolt://127.0.0.1:{free_port()}"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 14 and out.stderr.startswith("error: cannot reach Neo4j")


def test_registry_backup_reads_password_env(neo4j_db: Neo4jServer, repo: Repository) -> None:
    """What a Prefect Neo4j source block hands over: no password, the variable that holds it;
    a restore through the registry logs in the same way. A closed port is SourceUnreachable."""
    run(neo4j_db, "CREATE (:Blk {v: 1})-[:R]->(:Blk {v: 2})")
    source = registry.get("neo4j")
    settings = {"uri": neo4j_db.uri, "user": neo4j_db.user, "password": None,
                "database": "neo4j", "consistent": True, "password_env": neo4j_db.password_env}
    snap = source.backup(repo, name="blk", kind="full", tags=["daily"], settings=settings)
    assert snap.meta["nodes"] == 2 and snap.meta["consistent"] is True and snap.tags == ["daily"]
    report = source.restore(repo, snap, neo4j_db.uri, replace=True, include=[],
                            options={"user": neo4j_db.user,
                                     "password_env": neo4j_db.password_env})
    assert report["verified"] and report["nodes"] == 2
    down = {**settings, "uri": f"bolt://127.0.0.1:{free_port()}"}
    with pytest.raises(SourceUnreachable, match="cannot reach Neo4j"):
        source.backup(repo, name="blk", kind="full", tags=[], settings=down)


def test_restore_options_are_checked(repo: Repository) -> None:
    with pytest.raises(ConfigError, match="unknown Neo4j restore option"):
        registry.get("neo4j").restore(repo, None, "bolt://127.0.0.1:1", replace=False,
                                      include=[], options={"pasword_env": "X"})


def test_target_parsing() -> None:
    t = Target.parse("neo4j://db.example:7688/graph", "u", "s3cr3t-pw")
    assert (t.uri, t.database, t.user) == ("neo4j://db.example:7688", "graph", "u")
    assert "s3cr3t-pw" not in repr(t)
    assert Target.parse("bolt://h").uri == "bolt://h:7687"


def test_dump_method_needs_neo4j_admin(repo: Repository) -> None:
    import shutil

    from strongroom.errors import NotSupported
    from strongroom.sources.neo4j.physical import backup_dump

    if shutil.which("neo4j-admin"):
        pytest.skip("neo4j-admin present: the physical method needs a stopped local server")
    with pytest.raises(NotSupported, match="neo4j-admin is not installed"):
        backup_dump(repo, "neo4j")


@pytest.mark.parametrize("body", [
    b'{"format": "strongroom-neo4j-graph", "version": 1}\n["n", 0, [], {}]\n',  # no trailer
    b'{"format": "strongroom-neo4j-graph", "version": 1}\n["n", 0, [], {}]\n["end", 2, 0]\n',
    b'{"format": "strongroom-neo4j-graph", "version": 1}\n["n", 0, [], {\n',  # cut mid-line
    b'not json at all\n',
])
def test_truncated_or_malformed_graph_file_is_refused(repo: Repository, body: bytes) -> None:
    from strongroom.sources.neo4j.graphfile import FORMAT, GRAPH_FILE

    with repo.writer(source_name="bad", source_kind="neo4j") as w:
        w.add_bytes(GRAPH_FILE, body)
        w.set_meta({"format": FORMAT, "version": 1, "checksum": "0" * 64, "nodes": 1})
        snap = w.commit()
    # the target is never contacted: the unreachable port proves it
    with pytest.raises(IntegrityError, match="truncated or malformed|malformed at line|header"):
        restore_neo4j(repo, snap, f"bolt://127.0.0.1:{free_port()}")
