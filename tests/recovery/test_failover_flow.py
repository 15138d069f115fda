"""Failover through recover-database on a real PostgreSQL 15: the restored cluster is promoted
and left running as the new primary (it accepts writes, pg_is_in_recovery() is false), its new
timeline is archived, and the flow prints and returns where clients must connect (host, port)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.support import pg_cluster as pgc

pytestmark = pytest.mark.skipif(not pgc.available(), reason="PostgreSQL 15 not installed")


def _run_log(flow_run_id, deadline_s: float = 60) -> str:
    """The flow run's log as the server has it (log lines arrive in batches)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + deadline_s
    with get_client(sync_client=True) as client:
        while True:
            text = "\n".join(log.message for log in client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))))
            if "repoint clients" in text or time.monotonic() > deadline:
                return text
            time.sleep(0.5)


def _stop(datadir: Path, socket_dir: str) -> None:
    from strongroom.sources.postgres.pgbin import binary, run, server_user_kwargs

    run([binary("pg_ctl", pgc.VERSION), "stop", "-D", str(datadir), "-m", "immediate", "-w"],
        timeout=120, check=False, **server_user_kwargs(datadir))
    shutil.rmtree(Path(socket_dir).parent, ignore_errors=True)  # the restore's work dir


def test_failover_promotes_the_restored_cluster_and_says_where_to_repoint(
        prefect_harness, names):
    import psycopg
    from pydantic import SecretStr

    from blocks import PostgresSource, RepositoryKey, RepositoryTarget
    from flows.limits import ensure_limits
    from flows.recovery import recover_database
    from strongroom.sources.postgres import walstore
    from tests.prefect.conftest import backup_one

    with pgc.workdir() as root:
        cluster = pgc.initdb(root / "primary")
        promoted = root / "promoted"
        where = None
        try:
            cluster.sql("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
            cluster.sql("INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 50) g")
            name = f"ledger-{names}"
            PostgresSource(source_name=name, port=cluster.port, user="postgres",
                           password=SecretStr(pgc.SUPERUSER_PASSWORD)).save(name)
            ensure_limits([name])
            RepositoryTarget(url=pgc.make_repo(root), role="primary",
                             key=RepositoryKey(password=pgc.REPO_PASSWORD)).save(f"p-{names}")
            backup_one("full", f"postgres/{name}", primary=f"p-{names}")
            pgc.stop(cluster)  # the primary is lost

            state = recover_database(
                f"postgres/{name}", target=str(promoted), from_target=f"p-{names}",
                failover=True, fresh_backup=False, return_state=True,
                smoke_checks=[{"sql": "SELECT count(*) FROM accounts", "expect": 50}])
            report = state.result()

            note = next(a for a in report["anomalies"] if "failover: repoint clients" in a)
            assert note in _run_log(state.state_details.flow_run_id)  # printed: log_prints
            found = re.search(r"host=(\S+) port=(\d+)", note)
            assert found, note
            where = found[1]
            assert str(promoted) in note and "timeline 2" in note
            result = report["results"][0]
            assert result["smoke"] == ["sql 'SELECT count(*) FROM accounts': ok"]
            assert result["restored"]["promoted_lsn"]

            # the new primary is up after the flow ended, out of recovery, and takes writes
            with psycopg.connect(host=found[1], port=int(found[2]), user="postgres",
                                 dbname="postgres", autocommit=True) as conn:
                assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
                conn.execute("INSERT INTO accounts VALUES (51, 100)")
                assert conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 51
                slots = [r[0] for r in conn.execute("SELECT slot_name FROM "
                                                    "pg_replication_slots")]
            assert slots  # the receiver's slot: WAL reserved from the promotion on
            archive = walstore.WalCatalog.load(pgc.open_repo(str(root / "repo")), name)
            assert "00000002.history" in archive.files  # later restores follow timeline 2
        finally:
            pgc.stop(cluster)
            if where:
                _stop(promoted, where)


def test_serving_options_are_the_kinds_not_the_flows() -> None:
    """The recovery flow asks the kind (Source.fails_over / serving_options) whether a restore
    leaves a server running, for failover or SQL smoke checks; it names no kind itself."""
    from strongroom.sources import registry

    pg = registry.get("postgres")
    assert pg.fails_over and not registry.get("files").fails_over
    assert pg.serving_options("/srv/pg", failover=True, sql_checks=True) == {
        "failover": True, "keep_running": True}
    assert pg.serving_options("/srv/pg", failover=False, sql_checks=True) == {
        "keep_running": True}
    assert pg.serving_options("/srv/pg", failover=False, sql_checks=False) == {}
    for logical in ("postgresql://db:5432/app", "host=db dbname=app"):
        assert pg.serving_options(logical, failover=True, sql_checks=True) == {}
    for kind in registry.kinds():
        if kind != "postgres":
            assert registry.get(kind).serving_options("x", failover=True, sql_checks=True) \
                == {}, kind
    flow = Path(__file__).resolve().parents[2] / "flows" / "recovery.py"
    assert '"postgres"' not in flow.read_text()  # the flow names no kind
