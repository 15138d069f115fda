"""recover_database dispatches on the source kind: a real Redis server, snapshot then recover."""

from __future__ import annotations

import shutil

import pytest

from tests.prefect.conftest import backup_one, save_local_target

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"),
                                reason="redis-server not installed")


def _contents(client_for_db) -> dict:
    out = {}
    for db in (0, 3):
        c = client_for_db(db)
        for key in c.scan_iter():
            out[(db, key)] = (c.type(key), c.dump(key), c.pttl(key) > 0)
    return out


def test_snapshot_then_recover_database_redis(prefect_harness, tmp_path, names):
    from pydantic import SecretStr

    from blocks import RedisSource
    from flows.limits import ensure_limits
    from flows.recovery import recover_database
    from tests.support.redis_server import PASSWORD, redis_server

    with redis_server(tmp_path / "redis", password=PASSWORD) as proc:
        c0, c3 = proc.client(0), proc.client(3)
        for i in range(200):
            c0.set(f"order:{i}", f"payload-{i}" * (i % 7 + 1))
        c0.hset("customer:1", mapping={"name": "Ada", "tier": "gold"})
        c0.set("session:x", "short-lived", ex=3600)
        c3.rpush("queue", *[f"job{i}" for i in range(50)])
        before = _contents(proc.client)

        name = f"cache-{names}"
        block = RedisSource(source_name=name, port=proc.port, username="default",
                            password=SecretStr(PASSWORD),
                            restore_target=f"redis://127.0.0.1:{proc.port}")
        # the restore logs in like the backup: user and password from the block, in-process
        assert block.restore_options() == {"username": "default", "password": PASSWORD}
        block.save(name)
        ensure_limits([name])
        tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
        result = backup_one("snapshot", f"redis/{name}", primary=tgt, verify_mode="read-data")
        assert result["snapshot"]["kind"] == "snapshot"
        assert result["snapshot"]["source_kind"] == "redis"

        c0.flushall()  # the incident
        c0.set("written-after-the-incident", "1")
        report = recover_database(f"redis/{name}", from_target=tgt, replace=True,
                                  options={"flush": "yes"})
        assert _contents(proc.client) == before
        assert report["results"][0]["snapshot"] == result["snapshot"]["id"]
        assert list(report["stages"]) == ["assess", "prepare", "restore", "verify"]
        assert report["results"][0]["rpo_objective_s"] == 3600  # database: RPO 1 h
        assert report["results"][0]["rto_objective_s"] == 4 * 3600
        safety = report["results"][0]["safety_snapshot"]  # taken before the flush
        assert safety and safety != result["snapshot"]["id"]
