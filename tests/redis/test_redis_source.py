"""Redis source against real redis-server processes: backup, live and rdb-dir restores, errors."""

from __future__ import annotations

import io
import os
import time
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
from strongroom.sources.redis.backup import backup_redis
from strongroom.sources.redis.inventory import db_facts, keyspace_dbs
from strongroom.sources.redis.proc import RedisProcess, free_port
from strongroom.sources.redis.rdb import validate_file
from strongroom.sources.redis.restore import restore_redis
from tests.support.redis_server import PASSWORD, redis_server


def url(proc: RedisProcess) -> str:
    return f"redis://127.0.0.1:{proc.port}"


def facts(proc: RedisProcess) -> dict[int, dict]:
    """Everything comparable, expiries included (restores keep absolute expiry times)."""
    return {db: db_facts(proc.client(db)).as_meta() for db in keyspace_dbs(proc.client())}


def test_backup_records_every_db_type_and_checksum(repo: Repository, source: RedisProcess,
                                                   password_env: str) -> None:
    snap = backup_redis(repo, url(source), "cache", password_env=password_env, tags=["t"])
    assert snap.source_kind == "redis" and snap.tags == ["t"]
    meta = snap.meta
    assert meta["rdb"]["checksum"] == "ok" and meta["rdb"]["version"] == 10
    assert meta["endpoint"] == url(source) and PASSWORD not in str(snap.model_dump())
    assert set(meta["dbs"]) == {"0", "1", "7"}
    assert meta["dbs"] == {str(db): f for db, f in facts(source).items()}
    assert meta["dbs"]["0"]["types"] == {"hash": 2, "list": 2, "set": 2, "stream": 2,
                                         "string": 305, "zset": 2}
    assert meta["dbs"]["0"]["expires"] == 3 and meta["dbs"]["1"]["expires"] == 1
    first, last = meta["dbs"]["0"]["expire_first_ms"], meta["dbs"]["0"]["expire_last_ms"]
    assert 3_500_000 < first - meta["snapshot_time_ms"] <= 3_600_000  # ttl:short, 1 h
    assert abs(last - meta["snapshot_time_ms"] - 30 * 86_400_000) < 100_000  # ttl:long, 30 d
    node = repo.reader(snap).node("dump.rdb")
    assert node.meta["crc64"] == meta["rdb"]["crc64"] and node.size == meta["rdb"]["size"]


def test_live_restore_is_identical_and_keeps_expiry(repo: Repository, source: RedisProcess,
                                                    password_env: str, tmp_path: Path) -> None:
    snap = backup_redis(repo, url(source), "cache", password_env=password_env)
    with redis_server(tmp_path / "target") as target:
        report = restore_redis(repo, snap, url(target), options={})
        assert report["verified"] and report["keys"] == snap.meta["keys"]
        assert report["expired_since_backup"] == 0
        assert facts(target) == facts(source)
        assert 3_500_000 < target.client().pttl("ttl:short") <= 3_600_000
        assert target.client().get("clé-ünïcode-🔑") == b"valeur"
        group = target.client().xinfo_groups("stream:s")[0]
        assert group["pending"] == 5 and group["name"] == b"readers"


def test_live_restore_refuses_non_empty_target_unless_replace(
        repo: Repository, source: RedisProcess, password_env: str, tmp_path: Path) -> None:
    snap = backup_redis(repo, url(source), "cache", password_env=password_env)
    with redis_server(tmp_path / "target", password="tpw") as target:
        c = target.client()
        c.set("str:1", "stale")
        c.set("unrelated", "keep me")
        with pytest.raises(TargetNotEmpty, match="already holds keys in db 0"):
            restore_redis(repo, snap, f"redis://:tpw@127.0.0.1:{target.port}", options={})
        assert c.get("str:1") == b"stale"
        report = restore_redis(repo, snap, f"redis://:tpw@127.0.0.1:{target.port}",
                               replace=True, options={})
        assert report["other_keys_in_target"] == 1 and "tpw" not in str(report)
        assert c.get("str:1") == source.client().get("str:1")
        assert c.get("unrelated") == b"keep me"
        report = restore_redis(repo, snap, f"redis://:tpw@127.0.0.1:{target.port}",
                               replace=True, options={"flush": "yes"})
        assert report["other_keys_in_target"] == 0 and c.get("unrelated") is None
        assert facts(target) == facts(source)


def test_live_restore_failing_midway_says_what_it_left(repo: Repository, tmp_path: Path
                                                      ) -> None:
    """A target that fills up (maxmemory, noeviction) mid-restore: the error counts the keys
    it already wrote, also after flush=yes emptied the target."""
    with redis_server(tmp_path / "src") as src:
        pipe = src.client().pipeline(transaction=False)
        for i in range(3000):
            pipe.set(f"bulk:{i}", os.urandom(1000))
        pipe.execute()
        snap = backup_redis(repo, url(src), "bulk")
    with redis_server(tmp_path / "small", maxmemory="2mb",
                      **{"maxmemory-policy": "noeviction"}) as target:
        for options, replace, after in (({}, False, ""), ({"flush": "yes"}, True,
                                                         " after FLUSHALL")):
            with pytest.raises(SourceError) as exc:
                restore_redis(repo, snap, url(target), replace=replace, options=options)
            left = target.client().dbsize()
            assert 0 < left < 3000
            assert f"is left partially restored ({left} key(s) written{after})" in str(exc.value)
            assert "maxmemory" in str(exc.value) and "\n" not in str(exc.value)


def test_rdb_dir_restore_rebuilds_the_aof(repo: Repository, source: RedisProcess,
                                          password_env: str, tmp_path: Path) -> None:
    snap = backup_redis(repo, url(source), "cache", password_env=password_env)
    data = tmp_path / "stopped"
    with redis_server(data, appendonly="yes") as old:  # a server with AOF and other data
        old.client().set("old", "data")
        old.client().bgrewriteaof()
    assert (data / "appendonlydir").is_dir()
    with pytest.raises(TargetNotEmpty, match="appendonlydir"):
        restore_redis(repo, snap, str(data), options={})
    report = restore_redis(repo, snap, str(data), replace=True, options={})
    assert report["aof"] == "rebuilt in appendonlydir" and report["verified"]
    assert Path(report["moved_aside"], "appendonlydir").is_dir()
    with redis_server(data, appendonly="yes") as restarted:  # the AOF wins at start-up
        assert restarted.client().get("old") is None
        assert facts(restarted) == facts(source)
    plain = tmp_path / "plain"
    plain.mkdir()
    owner = 4321 if os.geteuid() == 0 else os.geteuid()
    if os.geteuid() == 0:
        os.chown(plain, owner, 8765)  # as root, the data dir's owner gets the files
    report = restore_redis(repo, snap, f"file://{plain}", options={"mode": "rdb-dir"})
    assert (plain / "dump.rdb").stat().st_uid == owner
    assert report["aof"] == "not used" and report["moved_aside"] is None
    with redis_server(plain) as restarted:
        assert facts(restarted) == facts(source)
    # no AOF yet, but the server's config says appendonly yes: it would start empty from an RDB
    fresh = tmp_path / "fresh"
    conf = tmp_path / "redis.conf"
    conf.write_text(f"port 6399\ndir {fresh}\nappendonly yes\nappenddirname aof-here\n")
    report = restore_redis(repo, snap, str(fresh), options={"config": str(conf)})
    assert report["aof"] == "rebuilt in aof-here"
    with redis_server(fresh, appendonly="yes", appenddirname="aof-here") as restarted:
        assert facts(restarted) == facts(source)


def test_rdb_dir_refuses_a_running_server(repo: Repository, source: RedisProcess,
                                          password_env: str) -> None:
    snap = backup_redis(repo, url(source), "cache", password_env=password_env)
    with pytest.raises(ConfigError, match="is running in"):
        restore_redis(repo, snap, str(source.workdir), replace=True, options={})


def test_crc_corruption_is_detected(repo: Repository, source: RedisProcess, tmp_path: Path,
                                    password_env: str) -> None:
    snap = backup_redis(repo, url(source), "cache", password_env=password_env)
    good = repo.reader(snap).read_bytes("dump.rdb")
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x40
    (tmp_path / "bad.rdb").write_bytes(bad)
    with pytest.raises(IntegrityError, match="CRC-64"):
        validate_file(tmp_path / "bad.rdb")
    (tmp_path / "short.rdb").write_bytes(good[:-20])
    with pytest.raises(IntegrityError, match="truncated|CRC-64"):
        validate_file(tmp_path / "short.rdb")
    (tmp_path / "nordb").write_bytes(b"hello world, not redis")
    with pytest.raises(IntegrityError, match="bad magic"):
        validate_file(tmp_path / "nordb")
    # a snapshot whose sealed RDB is internally corrupt: refused before anything is written
    with repo.writer(source_name="cache", source_kind="redis") as w:
        w.add_stream("dump.rdb", io.BytesIO(bytes(bad)))
        w.set_meta(snap.meta)
        forged = w.commit()
    with redis_server(tmp_path / "target") as target:
        with pytest.raises(IntegrityError, match="CRC-64"):
            restore_redis(repo, forged, url(target), options={})
        assert target.client().dbsize() == 0
    with pytest.raises(IntegrityError, match="CRC-64"):
        restore_redis(repo, forged, str(tmp_path / "dir"), options={})
    assert not (tmp_path / "dir" / "dump.rdb").exists()


def test_checksum_off_is_noted(repo: Repository, tmp_path: Path) -> None:
    with redis_server(tmp_path / "nocrc", rdbchecksum="no") as proc:
        proc.client().set("k", "v")
        snap = backup_redis(repo, url(proc), "nocrc")
    assert snap.meta["rdb"]["checksum"] == "off" and snap.meta["rdb"]["crc64"] == "0" * 16


def test_unreachable_and_bad_password(repo: Repository, source: RedisProcess,
                                      monkeypatch: pytest.MonkeyPatch,
                                      password_env: str) -> None:
    with pytest.raises(SourceUnreachable, match="cannot reach redis at redis://127.0.0.1:"):
        backup_redis(repo, f"redis://127.0.0.1:{free_port()}", "x")
    monkeypatch.setenv("WRONG", "not-the-password")
    with pytest.raises(SourceError, match="authentication failed") as exc:
        backup_redis(repo, url(source), "x", password_env="WRONG")
    assert "not-the-password" not in str(exc.value)
    assert not isinstance(exc.value, SourceUnreachable)  # waiting cures no wrong password
    with pytest.raises(SourceError, match="authentication failed"):
        backup_redis(repo, url(source), "x")
    with pytest.raises(ConfigError, match="NOPE_UNSET"):
        backup_redis(repo, url(source), "x", password_env="NOPE_UNSET")
    assert repo.list_snapshots() == []
    snap = backup_redis(repo, url(source), "cache", password_env=password_env)
    with pytest.raises(SourceUnreachable, match="cannot reach restore target at redis://"):
        restore_redis(repo, snap, f"redis://127.0.0.1:{free_port()}", options={})
    with pytest.raises(SourceError, match="restore target at .*authentication failed"):
        restore_redis(repo, snap, url(source), options={"password": "nope"})


def test_snapshot_is_point_in_time_under_writes(repo: Repository, tmp_path: Path) -> None:
    """Writers update two counters in one MULTI/EXEC while the backup runs: equal after."""
    import threading

    with redis_server(tmp_path / "busy") as proc:
        stop = threading.Event()

        def writer() -> None:
            c = proc.client()
            i = 0
            while not stop.is_set():
                pipe = c.pipeline(transaction=True)
                pipe.incr("a").incr("b").set(f"seq:{i}", i)
                pipe.execute()
                i += 1

        def progressed(n: int) -> None:
            deadline = time.monotonic() + 30
            while int(proc.client().get("a") or 0) < n and time.monotonic() < deadline:
                time.sleep(0.01)

        t = threading.Thread(target=writer)
        t.start()
        try:
            snaps = []
            for _ in range(2):
                progressed(int(proc.client().get("a") or 0) + 50)  # writes are under way
                snaps.append(backup_redis(repo, url(proc), "busy"))
        finally:
            stop.set()
            t.join(10)
        for snap in snaps:
            with redis_server(tmp_path / f"check-{snap.short_id}") as target:
                restore_redis(repo, snap, url(target), options={})
                c = target.client()
                a, b = int(c.get("a")), int(c.get("b"))
                assert a == b and c.dbsize() == a + 2  # seq:0 .. seq:a-1, a, b
        assert snaps[0].meta["keys"] < snaps[1].meta["keys"]


def test_user_without_sync_permission(repo: Repository, source: RedisProcess,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    source.client().acl_setuser("noreplica", enabled=True, passwords=["+pw-n"], keys="*",
                                commands=["+@all", "-sync", "-psync"])
    monkeypatch.setenv("NR_PW", "pw-n")
    with pytest.raises(SourceError, match="cannot take an RDB snapshot of "
                       "redis://noreplica@127.0.0.1") as exc:
        backup_redis(repo, f"redis://noreplica@127.0.0.1:{source.port}", "x",
                     password_env="NR_PW")
    assert "pw-n" not in str(exc.value)
    assert repo.list_snapshots() == []


def test_orchestration_entry_point(repo: Repository, source: RedisProcess,
                                   tmp_path: Path) -> None:
    """What a Prefect Redis source block calls through the registry: host, port and an
    in-process password; the restore reports progress in bytes of the RDB."""
    redis_source = registry.get("redis")
    assert (redis_source.default_class, redis_source.progress_unit, redis_source.tools) == \
        ("database", "bytes", ("redis-server",))
    snap = redis_source.backup(repo, name="cache", kind="snapshot", tags=["hourly"],
                               settings={"host": "127.0.0.1", "port": source.port,
                                         "password": PASSWORD, "username": None,
                                         "tls": False})
    assert snap.kind == "snapshot" and snap.meta["keys"] > 300
    written: list[float] = []
    with redis_server(tmp_path / "target", password="tpw") as target:
        report = redis_source.restore(repo, snap, url(target), replace=False, include=[],
                                      options={"password": "tpw"}, progress=written.append)
        assert report["verified"] and "tpw" not in str(report)
    assert sum(written) == snap.meta["rdb"]["size"]
    with pytest.raises(SourceUnreachable, match="cannot reach redis at"):
        redis_source.backup(repo, name="cache", kind="full", tags=[],
                            settings={"host": "127.0.0.1", "port": free_port()})
    with pytest.raises(ConfigError, match="unknown redis restore option"):
        redis_source.restore(repo, snap, url(source), replace=False, include=[],
                             options={"progress": "x"})


def test_empty_server_round_trip(repo: Repository, tmp_path: Path) -> None:
    with redis_server(tmp_path / "empty") as proc:
        snap = backup_redis(repo, url(proc), "empty")
    assert snap.meta["keys"] == 0 and snap.meta["dbs"] == {}
    with redis_server(tmp_path / "target") as target:
        report = restore_redis(repo, snap, url(target), options={})
        assert report["keys"] == 0 and target.client().dbsize() == 0


def test_target_with_too_few_databases(repo: Repository, source: RedisProcess,
                                       password_env: str, tmp_path: Path) -> None:
    snap = backup_redis(repo, url(source), "cache", password_env=password_env)
    with redis_server(tmp_path / "small", databases="4") as target:
        with pytest.raises(ConfigError, match="has 4 databases; the snapshot uses db 7"):
            restore_redis(repo, snap, url(target), options={})
        assert target.client().dbsize() == 0


@pytest.mark.parametrize("damage, message", [
    (lambda c: c.set("str:1", "tampered"), "key 'str:1' differs"),
    (lambda c: c.persist("ttl:long"), "key 'ttl:long' has expiry -1"),
    (lambda c: c.set("intruder", "x"), "holds 316 keys, the snapshot 315"),
])
def test_verification_catches_a_wrong_target(repo: Repository, source: RedisProcess,
                                             password_env: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, damage,
                                             message: str) -> None:
    """Whatever goes wrong between copy and check is an IntegrityError naming the key."""
    import strongroom.sources.redis.live as mod

    snap = backup_redis(repo, url(source), "cache", password_env=password_env)
    real_copy = mod._copy_db

    def copy_then_damage(proc, ep, db, replace, written):
        n = real_copy(proc, ep, db, replace, written)
        if db == 0:
            damage(ep.client(0))
        return n

    monkeypatch.setattr(mod, "_copy_db", copy_then_damage)
    with redis_server(tmp_path / "target") as target:
        with pytest.raises(IntegrityError, match=message):
            restore_redis(repo, snap, url(target), options={})
