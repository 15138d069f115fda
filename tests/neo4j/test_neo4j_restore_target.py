"""A recovery's restore target for Neo4j: the block's settings pointed at the target's server
and database (never the block's own), where a recovery with no target writes, the checks before
a restore, and on the real server a safety snapshot of the target that restores it as it was."""

from __future__ import annotations

import pytest

from strongroom.errors import ConfigError, SourceUnreachable, TargetNotEmpty
from strongroom.repository import Repository
from strongroom.sources import registry
from tests.neo4j.helpers import run
from tests.support.neo4j_server import Neo4jServer, free_port

neo4j_kind = registry.get("neo4j")
BLOCK = {"uri": "bolt://graph.example:7687", "user": "backup", "password": "pw",
         "database": "orders", "consistent": False, "password_env": None}


@pytest.mark.parametrize(("target", "changed"), [
    ("bolt://10.0.0.9:7688/payments", {"uri": "bolt://10.0.0.9:7688", "database": "payments"}),
    ("neo4j+s://other.example", {"uri": "neo4j+s://other.example:7687", "database": "orders"}),
    ("bolt://restorer@10.0.0.9/x", {"uri": "bolt://10.0.0.9:7687", "database": "x",
                                    "user": "restorer"}),
])
def test_a_target_points_the_blocks_settings_at_its_server_and_database(target, changed):
    assert neo4j_kind.settings_for_target(dict(BLOCK), target) == BLOCK | changed


@pytest.mark.parametrize("target", ["redis://127.0.0.1", "s3://b/p", "/var/lib/neo4j",
                                    "bolt://", "bolt://h:notaport/db"])
def test_a_target_neo4j_cannot_read_is_none(target):
    assert neo4j_kind.settings_for_target(dict(BLOCK), target) is None


def test_in_place_target_is_the_blocks_server_and_database():
    assert neo4j_kind.in_place_target(dict(BLOCK)) == "bolt://graph.example:7687/orders"
    assert neo4j_kind.in_place_target({"uri": "neo4j://h"}) == "neo4j://h:7687/neo4j"
    # the in-place target reads back as the block's own settings
    assert neo4j_kind.settings_for_target(dict(BLOCK), neo4j_kind.in_place_target(BLOCK)
                                          ) == BLOCK


def test_a_wrong_kind_of_target_is_refused_before_anything_is_written(tmp_path) -> None:
    repo = Repository.init(str(tmp_path / "repo"), password="p")
    for wrong in ("redis://127.0.0.1:6379", "/srv/neo4j", "s3://bucket/x"):
        with pytest.raises(ConfigError, match="cannot read .* to keep a safety copy"):
            neo4j_kind.safety_backup(repo, name="graph", target=wrong, replace=True,
                                     settings=dict(BLOCK))
        with pytest.raises(ConfigError, match="a neo4j source cannot restore into"):
            neo4j_kind.check_target(wrong, settings=dict(BLOCK), replace=True, size=1)
    assert repo.list_snapshots() == []


def test_the_safety_snapshot_is_of_the_target_database(neo4j_db: Neo4jServer,
                                                       repo: Repository) -> None:
    """The block names a server that is down and another database: a safety snapshot taken of
    the block instead of the target could not succeed, nor would it hold these nodes."""
    run(neo4j_db, "CREATE (:Live {v: 1})-[:R {w: 2}]->(:Live {v: 3}), (:Live {v: 4})")
    block = {"uri": f"bolt://127.0.0.1:{free_port()}", "user": neo4j_db.user,
             "password": None, "password_env": neo4j_db.password_env, "database": "orders",
             "consistent": False}
    target = f"{neo4j_db.uri}/neo4j"
    with pytest.raises(TargetNotEmpty, match="is not empty"):
        neo4j_kind.check_target(target, settings=block, replace=False, size=1)
    assert neo4j_kind.check_target(target, settings=block, replace=True, size=1)
    with pytest.raises(SourceUnreachable):
        neo4j_kind.check_target(neo4j_kind.in_place_target(block), settings=block,
                                replace=True, size=1)

    safety = neo4j_kind.safety_backup(repo, name="graph", target=target, replace=True,
                                      settings=block)
    assert safety is not None and safety.source_name == "graph-safety"
    assert sorted(safety.tags) == ["pre-restore", "safety"]
    assert safety.meta["database"] == "neo4j"
    assert (safety.meta["nodes"], safety.meta["relationships"]) == (3, 1)

    run(neo4j_db, "MATCH (n) DETACH DELETE n")  # what a restore with replace does first
    run(neo4j_db, "CREATE (:Other)")
    # the block's restore options name its own database: the target's path wins
    report = neo4j_kind.restore(repo, safety, target, replace=True, include=[],
                                options={"user": neo4j_db.user, "database": "orders",
                                         "password_env": neo4j_db.password_env})
    assert report["verified"] and report["nodes"] == 3 and report["target"] == target
    assert neo4j_kind.safety_backup(repo, name="graph", target=target, replace=False,
                                    settings=block) is None


def test_an_empty_target_needs_no_safety_snapshot(neo4j_db: Neo4jServer,
                                                  repo: Repository) -> None:
    block = {"uri": neo4j_db.uri, "user": neo4j_db.user, "password": None,
             "password_env": neo4j_db.password_env, "database": "neo4j"}
    assert neo4j_kind.safety_backup(repo, name="graph", target=f"{neo4j_db.uri}/neo4j",
                                    replace=True, settings=block) is None
    assert repo.list_snapshots() == []


def test_skipped_relationships_make_an_incomplete_copy() -> None:
    from datetime import UTC, datetime

    from strongroom.repository import Snapshot

    snap = Snapshot(time=datetime.now(UTC), host="h", source_name="g", source_kind="neo4j",
                    tree="00", meta={"skipped_relationships": 2})
    assert neo4j_kind.snapshot_gaps(snap)
    assert neo4j_kind.snapshot_gaps(snap.model_copy(update={"meta": {}})) == []
