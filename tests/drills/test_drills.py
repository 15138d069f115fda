"""Recovery drills on real components through the Prefect harness: files and Redis restored into
scratch targets the drill makes and removes, verified, measured and recorded; production never
touched; a scratch target that cannot be made fails the drill with the reason; the simulated
disaster restores classes in priority order from the secondary tier."""

from __future__ import annotations

import shutil

import pytest
import redis as redis_lib

from tests.prefect.conftest import (
    backup_one,
    make_tree,
    save_files_source,
    save_local_target,
    tree_listing,
)
from tests.support.redis_server import PASSWORD, fill, redis_server

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")


def _artifact(key: str) -> str | None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key])))
    return found[-1].data if found else None


def _records(name: str) -> list[dict]:
    from tasks.drill_history import read_history

    return [d for d in read_history()["drills"] if d["name"] == name]


def test_files_drill_restores_into_a_scratch_directory(prefect_harness, tmp_path, names):
    from flows.drills import drill

    tree = make_tree(tmp_path / "prod")
    before = tree_listing(tree)
    target = save_local_target(f"t-{names}", tmp_path / "repo")
    ref = save_files_source(f"docs-{names}", [tree])
    backup_one("full", ref, primary=target)
    work = tmp_path / "drills"

    record = drill(ref, from_target=target, objectives=None, workdir=str(work))

    assert record["ok"] and record["verified"] and record["error"] is None
    assert record["scope"] == "source" and record["kind"] == "files"
    assert 0 < record["rto_s"] < record["rto_objective_s"] and record["rto_met"]
    assert record["rpo_s"] is not None and record["rpo_met"]
    assert record["next_due"] > record["started"][:10]
    assert list(work.iterdir()) == []  # the scratch directory is gone
    assert tree_listing(tree) == before  # production untouched
    assert _records(f"docs-{names}")[-1]["id"] == record["id"]
    summary = _artifact(f"drill-docs-{names}")
    assert "passed" in summary and "scratch directory" in summary
    assert "Post-mortem" in _artifact(f"post-mortem-drill-docs-{names}")


def test_drill_without_a_scratch_target_fails_with_the_reason(prefect_harness, tmp_path,
                                                              names):
    from flows.drills import drill

    tree = make_tree(tmp_path / "prod", files=3)
    target = save_local_target(f"t-{names}", tmp_path / "repo")
    ref = save_files_source(f"bad-{names}", [tree])
    backup_one("full", ref, primary=target)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the scratch area should be")

    state = drill(ref, from_target=target, objectives=None, workdir=str(blocker / "x"),
                  return_state=True)

    assert state.is_failed()
    assert "cannot create a scratch target" in state.message
    last = _records(f"bad-{names}")[-1]
    assert last["ok"] is False and "cannot create a scratch target" in last["error"]
    assert "FAILED" in _artifact(f"drill-bad-{names}")


def test_redis_drill_uses_a_private_scratch_server(prefect_harness, tmp_path, names):
    from blocks import RedisSource
    from flows.drills import drill
    from flows.limits import ensure_limits

    with redis_server(tmp_path / "prod", password=PASSWORD) as prod:
        fill(lambda db: prod.client(db), n=50)
        keys_before = {db: prod.client(db).dbsize() for db in (0, 1, 7)}
        RedisSource(source_name=f"cache-{names}", port=prod.port,
                    password=PASSWORD).save(f"cache-{names}", overwrite=True)
        ensure_limits([f"cache-{names}"])
        ref = f"redis/cache-{names}"
        target = save_local_target(f"t-{names}", tmp_path / "repo")
        backup_one("full", ref, primary=target)

        record = drill(ref, from_target=target, objectives=None,
                       workdir=str(tmp_path / "drills"))

        assert record["ok"] and record["verified"] and record["class"] == "database"
        assert {db: prod.client(db).dbsize() for db in (0, 1, 7)} == keys_before
    summary = _artifact(f"drill-cache-{names}")
    assert "scratch redis-server on 127.0.0.1:" in summary
    port = int(summary.split("127.0.0.1:")[1].split()[0].strip("|"))
    with pytest.raises(redis_lib.exceptions.ConnectionError):  # stopped after the drill
        redis_lib.Redis(port=port, socket_connect_timeout=1).ping()
    assert PASSWORD not in summary


def test_disaster_drill_restores_classes_in_priority_order(prefect_harness, tmp_path, names):
    from blocks import RedisSource, StrongroomSite
    from flows.drills import disaster_drill
    from flows.limits import ensure_limits

    primary = save_local_target(f"p-{names}", tmp_path / "primary")
    secondary = save_local_target(f"s-{names}", tmp_path / "secondary")
    files_ref = save_files_source(f"site-docs-{names}", [make_tree(tmp_path / "docs", 5)])
    with redis_server(tmp_path / "prod", password=PASSWORD) as prod:
        fill(lambda db: prod.client(db), n=20)
        RedisSource(source_name=f"site-cache-{names}", port=prod.port,
                    password=PASSWORD).save(f"site-cache-{names}", overwrite=True)
        ensure_limits([f"site-cache-{names}"])
        redis_ref = f"redis/site-cache-{names}"
        for ref in (files_ref, redis_ref):
            backup_one("full", ref, primary=primary, replicas=[secondary])
        StrongroomSite(sources=[files_ref, redis_ref], primary=primary,
                       secondary=[secondary]).save(f"site-{names}", overwrite=True)

        record = disaster_drill(f"site-{names}", workdir=str(tmp_path / "drills"))

    assert record["ok"] and record["scope"] == "site" and record["from"] == secondary
    assert [s.split(":")[0] for s in record["order"]] == ["database", "files"]
    assert {r["from"] for r in record["sources"].values()} == {secondary}
    assert all(r["verified"] for r in record["sources"].values())
    assert _records(f"site-{names}")[-1]["ok"]
