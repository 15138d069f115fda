"""A PostgreSQL recovery in place through the flows, on a real cluster: the service stopped,
the data directory restored beside itself and swapped in, the old one kept; ``undo-recovery``
puts the pre-recovery cluster back row for row."""

from __future__ import annotations

import pytest

from tests.support import pg_cluster as pgc

pytestmark = pytest.mark.skipif(not pgc.available(), reason="PostgreSQL 15 not installed")


def test_in_place_recovery_then_undo_brings_back_every_row(prefect_harness, names):
    from pydantic import SecretStr

    from blocks import PostgresSource, RepositoryKey, RepositoryTarget
    from flows.limits import ensure_limits
    from flows.recovery import recover_database
    from flows.undo import undo_recovery
    from tests.prefect.conftest import backup_one

    with pgc.workdir() as root:
        cluster = pgc.initdb(root / "primary")
        try:
            cluster.sql("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
            cluster.sql("INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 50) g")
            name = f"ledger-{names}"
            PostgresSource(source_name=name, port=cluster.port, user="postgres",
                           password=SecretStr(pgc.SUPERUSER_PASSWORD),
                           data_directory=str(cluster.datadir)).save(name)
            ensure_limits([name])
            RepositoryTarget(url=pgc.make_repo(root), role="primary",
                             key=RepositoryKey(password=pgc.REPO_PASSWORD)).save(f"p-{names}")
            backup_one("full", f"postgres/{name}", primary=f"p-{names}")
            cluster.sql("INSERT INTO accounts SELECT g, 7 FROM generate_series(51, 60) g")

            report = recover_database(f"postgres/{name}", from_target=f"p-{names}",
                                      replace=True, stop_service="pg_ctl", fresh_backup=False)
            result = report["results"][0]
            assert result["dest"] == str(cluster.datadir) and result["kept"]
            assert not cluster.server.running()  # stopped by the runbook, restored, not started
            cluster.server.start(timeout=60)
            assert cluster.sql("SELECT count(*) FROM accounts")[0][0] == 50

            undone = undo_recovery(report["artifact_key"])
            assert undone["put_back"]
            assert not cluster.server.running()  # the undo stops it before the swap back
            cluster.server.start(timeout=60)
            assert cluster.sql("SELECT count(*), sum(balance) FROM accounts")[0] == (60, 5070)
        finally:
            pgc.stop(cluster)
