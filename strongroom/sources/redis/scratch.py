"""A private scratch redis-server that loads an RDB, and the facts read back from it."""

from __future__ import annotations

from pathlib import Path

from strongroom.sources.redis.inventory import DbFacts, db_facts, keyspace_dbs
from strongroom.sources.redis.proc import RedisProcess


def scratch(workdir: Path, databases: int, **settings: str) -> RedisProcess:
    """A private redis-server that loads ``workdir/dump.rdb``; not started yet."""
    size = (workdir / "dump.rdb").stat().st_size if (workdir / "dump.rdb").exists() else 0
    return RedisProcess(workdir, settings={"databases": str(max(databases, 16)),
                                           "activerehashing": "no", **settings},
                        start_timeout=60 + size / 20e6)


def load_facts(proc: RedisProcess) -> dict[int, DbFacts]:
    """Facts of every non-empty database of a running scratch server."""
    return {db: db_facts(proc.client(db)) for db in keyspace_dbs(proc.client())}
