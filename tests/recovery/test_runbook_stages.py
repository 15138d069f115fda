"""The runbook stages through the flows: disaster recovery by class priority (sources of one
class at once), smoke checks and the stop command, the fresh backup after success, and failed
post-mortems that say which stage failed and never overwrite a success or each other."""

from __future__ import annotations

import shutil

import pytest

from tests.prefect.conftest import backup_one, make_tree, save_local_target, tree_listing

needs_redis = pytest.mark.skipif(not shutil.which("redis-server"),
                                 reason="redis-server not installed")


def _artifacts(prefix: str) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(like_=prefix)))
    return {a.key: a.data for a in found}


def _under(root, data):
    return root  # a one-path source: its contents into the target itself


@needs_redis
def test_disaster_recovery_by_priority_with_smoke_and_fresh_backup(prefect_harness,  # noqa: F811
                                                                   tmp_path, names):
    from pydantic import SecretStr

    from blocks import FilesSource, RedisSource, RepositoryKey, RepositoryTarget, StrongroomSite
    from flows.limits import ensure_limits
    from flows.recovery import disaster_recovery
    from tests.support.redis_server import PASSWORD, redis_server

    docs = make_tree(tmp_path / "docs", files=8)
    etc = make_tree(tmp_path / "etc", files=4)
    FilesSource(source_name=f"docs-{names}", paths=[str(docs)]).save(f"docs-{names}")
    FilesSource(source_name=f"etc-{names}", paths=[str(etc)], objective_class="system"
                ).save(f"etc-{names}")
    with redis_server(tmp_path / "redis", password=PASSWORD) as live, \
            redis_server(tmp_path / "redis2", password=PASSWORD) as spare:
        for i in range(100):
            live.client(0).set(f"order:{i}", f"payload-{i}")
        RedisSource(source_name=f"cache-{names}", port=live.port, username="default",
                    password=SecretStr(PASSWORD)).save(f"cache-{names}")
        refs = [f"files/etc-{names}", f"files/docs-{names}", f"redis/cache-{names}"]
        ensure_limits([r.split("/")[1] for r in refs])
        primary = save_local_target(f"primary-{names}", tmp_path / "primary")
        RepositoryTarget(url=str(tmp_path / "secondary"), role="secondary",
                         key=RepositoryKey(password="other")).save(f"secondary-{names}")
        StrongroomSite(sources=refs, primary=primary, secondary=[f"secondary-{names}"]
                       ).save(f"site-{names}")
        for ref in refs:
            backup_one("full" if ref.startswith("files") else "snapshot", ref, primary=primary,
                       replicas=[f"secondary-{names}"])
        from prefect.variables import Variable

        from tasks.runbook import RUNBOOK_VARIABLE

        Variable.set(RUNBOOK_VARIABLE, {f"redis/cache-{names}": {
            "stop_service": "true",
            "smoke": [{"redis_key": "order:7", "expect": "payload-7"}]}}, overwrite=True)
        report = disaster_recovery(
            site=f"site-{names}", target_root=str(tmp_path / "dr"),
            targets={f"cache-{names}": f"redis://127.0.0.1:{spare.port}"})
        assert spare.client(0).get("order:42") == b"payload-42"
    assert report["order"] == ["database", "files", "system"]
    assert list(report["stages"]) == ["database (1 at once)", "files (1 at once)",
                                      "system (1 at once)"]
    assert tree_listing(_under(tmp_path / "dr" / f"docs-{names}", docs)) == tree_listing(docs)
    assert tree_listing(_under(tmp_path / "dr" / f"etc-{names}", etc)) == tree_listing(etc)
    cache = report["sources"][f"redis/cache-{names}"]["results"][0]
    assert cache["smoke"] == ["redis_key 'order:7': ok"]
    assert cache["fresh_backup"]["snapshot"]  # backup functionality verified
    pm = _artifacts(f"post-mortem-recover-database-cache-{names}%")
    text = pm[f"post-mortem-recover-database-cache-{names}"]
    assert "| RTO | " in text and " of 4 h | met |" in text and " of 1 h | met |" in text
    assert "backup functionality verified" in text and "| smoke check |" in text
    assert max(len(line) for line in text.splitlines() if line.startswith("|")) < 200


def test_failed_recovery_post_mortems_are_kept_apart(prefect_harness, tmp_path,  # noqa: F811
                                                    names):
    from flows.recovery import recover_files
    from tests.prefect.conftest import save_files_source

    data = make_tree(tmp_path / "data", files=4)
    src = save_files_source(f"pm-{names}", [data])
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    backup_one("full", src, primary=tgt)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("live data")
    for _ in range(2):
        state = recover_files(src, str(busy), from_target=tgt, return_state=True)
        assert state.is_failed()
    recover_files(src, str(tmp_path / "ok"), from_target=tgt, fresh_backup=False)
    found = _artifacts(f"post-mortem-recover-files-pm-{names}%")
    failed = [k for k in found if "-failed-" in k]
    assert len(failed) == 2 and f"post-mortem-recover-files-pm-{names}" in found
    text = found[failed[0]]
    assert "(FAILED at prepare)" in text
    assert "No recovery time objective was met" in text
    assert "| RTO | none of 2 h | **not met** (recovery failed) |" in text
    assert "## Left behind" in text
    assert "(completed)" in found[f"post-mortem-recover-files-pm-{names}"]
    assert (busy / "keep.txt").read_text() == "live data"
