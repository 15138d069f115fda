"""A PostgreSQL drill on a real PostgreSQL 15 through the Prefect harness: the newest physical
backup recovered into a scratch data directory on a private server, verified, removed; the
production cluster untouched."""

from __future__ import annotations

import pytest

from tests.support import pg_cluster as pgc

pytestmark = pytest.mark.skipif(not pgc.available(), reason="PostgreSQL 15 not installed")


def test_postgres_drill_recovers_into_a_scratch_cluster(prefect_harness, names):
    from pydantic import SecretStr

    from blocks import PostgresSource, RepositoryKey, RepositoryTarget
    from flows.drills import drill
    from flows.limits import ensure_limits
    from tests.prefect.conftest import backup_one

    with pgc.workdir() as root:
        url = pgc.make_repo(root)
        cluster = pgc.initdb(root / "primary")
        try:
            name = f"orders-{names}"
            PostgresSource(source_name=name, port=cluster.port, user="postgres",
                           password=SecretStr(pgc.SUPERUSER_PASSWORD)).save(name)
            ensure_limits([name])
            RepositoryTarget(url=url, role="primary",
                             key=RepositoryKey(password=pgc.REPO_PASSWORD)).save(f"p-{names}")
            cluster.sql("CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL)")
            cluster.sql("INSERT INTO orders (item) SELECT 'item-' || g "
                        "FROM generate_series(1, 500) g")
            backup_one("full", f"postgres/{name}", primary=f"p-{names}")
            work = root / "drills"

            record = drill(f"postgres/{name}", from_target=f"p-{names}", objectives=None,
                           workdir=str(work))

            assert record["ok"] and record["verified"] and record["kind"] == "postgres"
            assert record["rto_met"] and record["rpo_s"] is not None
            assert list(work.iterdir()) == []  # scratch data directory removed
            assert cluster.sql("SELECT count(*) FROM orders")[0][0] == 500
        finally:
            pgc.stop(cluster)
