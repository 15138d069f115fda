"""A recovery's restore target for Redis, on real servers: the safety snapshot is of the target
(not the block's server), restoring it puts the target back key for key, and the checks made
before anything is stopped refuse a target of the wrong kind, one holding keys without replace,
and one whose maxmemory cannot hold the snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.errors import ConfigError, SourceError, TargetNotEmpty, TargetTooSmall
from strongroom.repository import Repository
from strongroom.sources import registry
from strongroom.sources.redis.proc import RedisProcess
from tests.support.redis_server import PASSWORD, redis_server

redis_kind = registry.get("redis")


def block(proc: RedisProcess) -> dict:
    """A Redis source block's settings for ``proc`` (secrets revealed, as the engine gets them)."""
    return {"host": "127.0.0.1", "port": proc.port, "username": None, "password": PASSWORD,
            "tls": False}


def url(proc: RedisProcess, db: int | None = None) -> str:
    return f"redis://127.0.0.1:{proc.port}" + (f"/{db}" if db is not None else "")


def fill_other(proc: RedisProcess) -> None:
    """What the target holds before the recovery: keys of its own, some with the block's
    names (so a restore overwrites them), in dbs 0 and 3, one with an expiry."""
    c0, c3 = proc.client(0), proc.client(3)
    for i in range(50):
        c0.set(f"str:{i}", f"target value {i}")
    c0.set("only-in-target", b"\x00keep me")
    c0.hset("hash:small", mapping={"t": "target"})
    c0.rpush("target:list", "a", "b", "c")
    c0.set("target:ttl", "soon", ex=86_400)
    c3.sadd("target:set", "x", "y")
    c3.zadd("target:zset", {"m": 2.5})


def contents(proc: RedisProcess) -> dict:
    """Every key of every database with its type, value and whether it expires."""
    out = {}
    for db in range(16):
        c = proc.client(db)
        for key in c.scan_iter(count=1000):
            kind = c.type(key).decode()
            value = {"string": lambda k, c=c: c.get(k),
                     "hash": lambda k, c=c: c.hgetall(k),
                     "list": lambda k, c=c: c.lrange(k, 0, -1),
                     "set": lambda k, c=c: sorted(c.smembers(k)),
                     "zset": lambda k, c=c: c.zrange(k, 0, -1, withscores=True),
                     "stream": lambda k, c=c: c.xrange(k)}[kind](key)
            out[(db, key)] = (kind, value, c.pttl(key) > 0)
    return out


@pytest.fixture
def target(tmp_path: Path):
    with redis_server(tmp_path / "target", password=PASSWORD) as proc:
        yield proc


def test_replacing_another_server_keeps_a_safety_snapshot_of_it(
        repo: Repository, source: RedisProcess, target: RedisProcess) -> None:
    fill_other(target)
    before = contents(target)
    snap = redis_kind.backup(repo, name="cache", kind="full", tags=[], settings=block(source))

    safety = redis_kind.safety_backup(repo, name="cache", target=url(target), replace=True,
                                      settings=block(source))
    assert safety is not None and safety.source_name == "cache-safety"
    assert sorted(safety.tags) == ["pre-restore", "safety"]
    assert safety.meta["endpoint"] == url(target)  # the target, not the block's server
    assert safety.meta["keys"] == len(before)
    assert set(safety.meta["dbs"]) == {"0", "3"}

    redis_kind.restore(repo, snap, url(target), replace=True, include=[],
                       options={"password": PASSWORD, "flush": "yes"})
    assert contents(target) != before

    redis_kind.restore(repo, safety, url(target), replace=True, include=[],
                       options={"password": PASSWORD, "flush": "yes"})
    assert contents(target) == before


def test_a_database_in_the_target_keeps_the_whole_server(
        repo: Repository, source: RedisProcess, target: RedisProcess) -> None:
    fill_other(target)
    safety = redis_kind.safety_backup(repo, name="cache", target=url(target, 3), replace=True,
                                      settings=block(source))
    assert safety is not None and set(safety.meta["dbs"]) == {"0", "3"}
    notes = redis_kind.check_target(url(target, 3), settings=block(source), replace=True,
                                    size=1000)
    assert any("every database" in n for n in notes)


def test_an_empty_target_needs_no_safety_snapshot(
        repo: Repository, source: RedisProcess, target: RedisProcess) -> None:
    assert redis_kind.safety_backup(repo, name="cache", target=url(target), replace=True,
                                    settings=block(source)) is None
    assert redis_kind.safety_backup(repo, name="cache", target=url(source), replace=False,
                                    settings=block(source)) is None
    assert repo.list_snapshots() == []


def test_a_target_redis_cannot_read_is_refused_before_anything_is_written(
        repo: Repository, source: RedisProcess, tmp_path: Path) -> None:
    for wrong in ("s3://bucket/prefix", "bolt://127.0.0.1:7687/neo4j",
                  "postgresql://127.0.0.1/db"):
        with pytest.raises(ConfigError, match="cannot read .* to keep a safety copy"):
            redis_kind.safety_backup(repo, name="cache", target=wrong, replace=True,
                                     settings=block(source))
        with pytest.raises(ConfigError, match="a redis source cannot restore into"):
            redis_kind.check_target(wrong, settings=block(source), replace=True, size=1)
    file = tmp_path / "not-a-directory"
    file.write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        redis_kind.check_target(str(file), settings=block(source), replace=True, size=1)
    assert repo.list_snapshots() == []


def test_a_target_refusing_the_blocks_password_stops_the_safety_snapshot(
        repo: Repository, source: RedisProcess, tmp_path: Path) -> None:
    with redis_server(tmp_path / "other", password="another-password") as other:
        other.client().set("k", "v")
        with pytest.raises(SourceError, match="authentication failed"):
            redis_kind.safety_backup(repo, name="cache", target=url(other), replace=True,
                                     settings=block(source))
        with pytest.raises(SourceError, match="authentication failed"):
            redis_kind.check_target(url(other), settings=block(source), replace=True, size=1)
        assert other.client().get("k") == b"v"
    assert repo.list_snapshots() == []


def test_a_directory_target_moves_old_files_aside_itself(
        repo: Repository, source: RedisProcess, tmp_path: Path) -> None:
    directory = tmp_path / "stopped"
    directory.mkdir()
    (directory / "dump.rdb").write_bytes(b"REDIS0010 old")
    assert redis_kind.safety_backup(repo, name="cache", target=str(directory), replace=True,
                                    settings=block(source)) is None
    with pytest.raises(TargetNotEmpty, match="dump.rdb"):
        redis_kind.check_target(str(directory), settings=block(source), replace=False, size=1)
    notes = redis_kind.check_target(str(directory), settings=block(source), replace=True,
                                    size=1)
    assert any("moved aside" in n for n in notes)
    with pytest.raises(TargetTooSmall, match="free"):
        redis_kind.check_target(str(directory), settings=block(source), replace=True,
                                size=1 << 62)


def test_keys_in_the_target_without_replace_are_refused(
        repo: Repository, source: RedisProcess, target: RedisProcess) -> None:
    fill_other(target)
    with pytest.raises(TargetNotEmpty, match=r"already holds keys in db 0, 3"):
        redis_kind.check_target(url(target), settings=block(source), replace=False, size=1)


def test_maxmemory_too_small_is_refused_before_any_key_is_touched(
        repo: Repository, source: RedisProcess, target: RedisProcess) -> None:
    fill_other(target)
    before = contents(target)
    snap = redis_kind.backup(repo, name="cache", kind="full", tags=[], settings=block(source))
    size = repo.reader(snap).node("dump.rdb").size
    startup = int(target.client().info("memory")["used_memory_startup"])
    target.client().config_set("maxmemory", str(startup + size // 2))
    with pytest.raises(TargetTooSmall, match="maxmemory") as refused:
        redis_kind.check_target(url(target), settings=block(source), replace=True, size=size)
    assert refused.value.exit_code == 20
    assert f"({size} bytes)" in str(refused.value)
    assert contents(target) == before

    target.client().config_set("maxmemory", str(64 << 20))
    notes = redis_kind.check_target(url(target), settings=block(source), replace=True,
                                    size=size)
    assert any("maxmemory 64.0 MiB" in n for n in notes)
    target.client().config_set("maxmemory", "0")
    notes = redis_kind.check_target(url(target), settings=block(source), replace=True,
                                    size=size)
    assert any("no maxmemory limit" in n for n in notes)


def test_an_evicting_policy_over_its_limit_is_refused_unless_flushed(
        repo: Repository, source: RedisProcess, target: RedisProcess) -> None:
    """Writing over live keys past maxmemory would evict live keys silently."""
    fill_other(target)
    snap = redis_kind.backup(repo, name="cache", kind="full", tags=[], settings=block(source))
    size = repo.reader(snap).node("dump.rdb").size
    memory = target.client().info("memory")
    used, startup = int(memory["used_memory"]), int(memory["used_memory_startup"])
    target.client().config_set("maxmemory", str(max(used, startup + size) + size // 2))
    target.client().config_set("maxmemory-policy", "allkeys-lru")
    try:
        with pytest.raises(TargetTooSmall, match="evict live keys"):
            redis_kind.check_target(url(target), settings=block(source), replace=True,
                                    size=size)
        redis_kind.check_target(url(target), settings={**block(source), "flush": "yes"},
                                replace=True, size=size)
    finally:
        target.client().config_set("maxmemory", "0")
        target.client().config_set("maxmemory-policy", "noeviction")


def test_in_place_target_is_the_blocks_server_without_its_password() -> None:
    settings = {"host": "cache.example", "port": 6380, "username": "backup",
                "password": "pw", "tls": True}
    assert redis_kind.in_place_target(settings) == "rediss://backup@cache.example:6380"
    assert redis_kind.in_place_target({"url": "redis://u:pw@h:1"}) == "redis://u@h:1"
