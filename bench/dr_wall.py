"""Disaster recovery wall time against the sum of its sources, on a demo-like site:
a files tree, a Redis server and a PostgreSQL cluster (physical), in a temporary Prefect API.

Prints, for the default priority (database first: Redis and PostgreSQL at once, then files)
and for one group (every source at once): the wall time, each source's own recovery time, their
sum, and the slowest.

    python -m bench.dr_wall
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

FILES = int(os.environ.get("DR_FILES", "300"))
FILE_KB = int(os.environ.get("DR_FILE_KB", "128"))
REDIS_KEYS = int(os.environ.get("DR_REDIS_KEYS", "50000"))
PG_SCALE = int(os.environ.get("DR_PG_SCALE", "10"))


def main() -> int:
    from prefect.testing.utilities import prefect_test_harness

    from tests.support import pg_cluster as pgc
    from tests.support.redis_server import PASSWORD, redis_server

    with prefect_test_harness(server_startup_timeout=180), pgc.workdir() as root:
        import blocks

        blocks.register_all()
        data = root / "files"
        for i in range(FILES):
            sub = data / f"d{i % 10}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{i}.bin").write_bytes(os.urandom(FILE_KB * 1024))
        cluster = pgc.initdb(root / "pg")
        cluster.pgbench("-i", "-s", str(PG_SCALE), "-q", "postgres")
        with redis_server(root / "redis", password=PASSWORD) as live, \
                redis_server(root / "redis2", password=PASSWORD) as spare:
            pipe = live.client(0).pipeline()
            for i in range(REDIS_KEYS):
                pipe.set(f"k:{i}", os.urandom(64).hex())
            pipe.execute()
            try:
                return run(root, data, cluster, live, spare)
            finally:
                pgc.stop(cluster)


def run(root: Path, data: Path, cluster, live, spare) -> int:
    from pydantic import SecretStr

    from blocks import (
        FilesSource,
        PostgresSource,
        RedisSource,
        RepositoryKey,
        RepositoryTarget,
        StrongroomSite,
    )
    from flows.backup import TIER_FLOWS
    from flows.limits import ensure_limits
    from flows.recovery import disaster_recovery
    from tests.support import pg_cluster as pgc
    from tests.support.redis_server import PASSWORD

    FilesSource(source_name="site-files", paths=[str(data)]).save("site-files")
    RedisSource(source_name="site-cache", port=live.port, username="default",
                password=SecretStr(PASSWORD)).save("site-cache")
    PostgresSource(source_name="site-db", port=cluster.port, user="postgres",
                   password=SecretStr(pgc.SUPERUSER_PASSWORD)).save("site-db")
    ensure_limits(["site-files", "site-cache", "site-db"])
    RepositoryTarget(url=str(root / "repo"), role="primary",
                     key=RepositoryKey(password="bench")).save("bench-primary")
    refs = ["files/site-files", "redis/site-cache", "postgres/site-db"]
    StrongroomSite(sources=refs, primary="bench-primary").save("bench-site")
    for ref in refs:
        TIER_FLOWS["full"]("full", [ref], primary="bench-primary")
    for label, priority in (("by priority", None), ("all at once", ["-"])):
        target_root = root / f"dr-{label.replace(' ', '-')}"
        target_root.mkdir()
        from strongroom.sources.postgres.pgbin import chown_tree, server_user_kwargs

        chown_tree(target_root, server_user_kwargs())
        spare.client(0).flushall()
        started = time.monotonic()
        report = disaster_recovery(site="bench-site", from_role="primary",
                                   target_root=str(target_root),
                                   targets={"site-cache": f"redis://127.0.0.1:{spare.port}"},
                                   priority=priority, fresh_backup=False)
        wall = time.monotonic() - started
        own = {r["source"]: r["rto_s"] for r in report["results"]}
        print(f"{label}: wall {wall:.1f} s (groups {report['stages']}); per source "
              f"{own}; sum {sum(own.values()):.1f} s; slowest {max(own.values()):.1f} s",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
