"""Real redis-server processes for tests, and a data set with every key type, TTLs, several dbs."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from strongroom.sources.redis.proc import RedisProcess

PASSWORD = "s3cret-for-tests"


@contextmanager
def redis_server(workdir: Path, password: str | None = None, **settings: str
                 ) -> Iterator[RedisProcess]:
    """redis-server on a free 127.0.0.1 port in ``workdir``; stopped (no save) afterwards."""
    # the default 5 s wait for more replicas before a diskless sync would slow every backup
    settings = {"repl-diskless-sync-delay": "0", **settings}
    proc = RedisProcess(workdir, settings=settings, password=password)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def fill(client_for_db, n: int = 300, seed: int = 5) -> None:
    """Every key type in dbs 0, 1 and 7, some keys with TTLs, binary and unicode names."""
    rng = random.Random(seed)
    c0: redis.Redis = client_for_db(0)
    for i in range(n):
        c0.set(f"str:{i}", rng.randbytes(rng.randint(0, 200)))
    c0.set("big-string", rng.randbytes(300_000))
    c0.set("ttl:short", "x", px=3_600_000)
    c0.set("ttl:long", "y", ex=86_400 * 30)
    c0.set("clé-ünïcode-🔑", "valeur")
    c0.set(b"\x00\xffbinary-key", b"\x00\x01")
    c0.hset("hash:small", mapping={"a": "1", "b": "2"})
    c0.hset("hash:big", mapping={f"f{i}": rng.randbytes(20) for i in range(2500)})
    c0.expire("hash:big", 7200)
    c0.rpush("list:small", *[f"item{i}" for i in range(10)])
    c0.rpush("list:big", *[rng.randbytes(10) for _ in range(3000)])
    c0.sadd("set:small", "x", "y", "z")
    c0.sadd("set:big", *[f"m{i}" for i in range(2200)])
    c0.zadd("zset:small", {"a": 1.5, "b": -2, "c": 1e300})
    c0.zadd("zset:big", {f"z{i}": rng.random() for i in range(1500)})
    for i in range(50):
        c0.xadd("stream:s", {"n": str(i), "payload": rng.randbytes(8)})
    c0.xgroup_create("stream:s", "readers", id="0")
    c0.xreadgroup("readers", "alice", {"stream:s": ">"}, count=5)
    c0.xadd("stream:big", {"k": "v"}, id="1-1")
    for i in range(2, 1300):
        c0.xadd("stream:big", {"k": str(i)}, id=f"1-{i}")
    c1 = client_for_db(1)
    for i in range(40):
        c1.hset(f"user:{i}", mapping={"name": f"user {i}", "age": str(20 + i)})
    c1.set("session", "abc", ex=600)
    c7 = client_for_db(7)
    c7.set("lonely", "db7")
    c7.lpush("queue", "a", "b")
