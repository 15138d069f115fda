"""The replication deployment through a real ``prefect server`` and a process worker: the
supervised WAL receiver runs as a long-running flow (state Running in the UI), streams WAL
into the repository, and cancelling the run stops it cleanly (the flow's own clean-stop path
stores the open segment and logs it; no pg_receivewal is left and the slot is released)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.support import pg_cluster as pgc
from tests.support.prefect_api import prefect_api
from tests.workpool.cluster import Cluster

pytestmark = [pytest.mark.skipif(not pgc.available(), reason="PostgreSQL 15 not installed"),
              pytest.mark.timeout(600)]


def _platform(path: Path, repo: Path, cluster: pgc.Cluster) -> Path:
    doc = {"site": "pg", "timezone": "UTC",
           "keys": {"main": {"password": "${STRONGROOM_PASSWORD}"}},
           "targets": {"primary": {"url": str(repo), "role": "primary", "key": "main"}},
           "sources": {"db": {"kind": "postgres", "host": "127.0.0.1", "port": cluster.port,
                              "user": "postgres", "password": pgc.SUPERUSER_PASSWORD}},
           "wal_copy_bound_s": 5,
           "schedules": {"daily-incremental": {"tier": "incremental", "cron": "0 2 * * *",
                                               "classes": ["database"], "keep": "14d"}}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _receivewal_running(port: int) -> bool:
    out = subprocess.run(["pgrep", "-af", "pg_receivewal"], capture_output=True,
                         text=True).stdout
    return f"port={port}" in out


def _running(client, deployment_id):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
        id=DeploymentFilterId(any_=[deployment_id])))
    return next((r for r in runs if r.state and (r.state.is_running()
                                                  or r.state.is_pending())), None)


def test_replication_deployment_runs_supervised_and_stops_cleanly(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    from blocks.loading import load_target
    from strongroom.sources.postgres import walstore
    from tests.workpool.cluster import wait_runs

    with pgc.workdir() as root:
        pg = pgc.initdb(root / "primary")
        server = Cluster(tmp_path / "cluster", pool="pg")
        try:
            server.start_server()
            out = server.deploy(_platform(tmp_path / "platform.yaml", tmp_path / "repo", pg))
            assert "wal-replication/replication-db" in out
            server.start_worker("default")
            with prefect_api(server.api):
                server.wait_workers()
                run = run_deployment("wal-replication/replication-db", timeout=0,
                                     parameters={"check_every_s": 1.0,
                                                 "spool": str(root / "spool")})
                with get_client(sync_client=True) as client:
                    deadline = time.monotonic() + 180
                    while time.monotonic() < deadline:
                        state = client.read_flow_run(run.id).state
                        if state and state.is_cancelled():
                            # the 5-minute schedule started one first: ours was refused by
                            # the concurrency limit of one, as it should be; follow that one
                            assert "concurrency limit" in (state.message or ""), state
                            run = _running(client, run.deployment_id) or run
                            continue
                        if state and state.is_running() and _receivewal_running(pg.port):
                            break
                        assert not (state and state.is_final()), state
                        time.sleep(1)
                    else:
                        raise AssertionError(f"replication never streamed: {state}")
                    pg.pgbench("-i", "-s", "1", "-q", "postgres")
                    pg.sql("SELECT pg_switch_wal()")
                    repo = load_target("primary").open()
                    deadline = time.monotonic() + 120
                    while not walstore.WalCatalog.load(repo, "db").segments():
                        assert time.monotonic() < deadline, "no WAL archived by the flow"
                        time.sleep(1)
                    client.set_flow_run_state(run.id, Cancelling(), force=True)
                final = wait_runs([run.id], 120)[0]
                assert final.state.is_cancelled(), final.state
                deadline = time.monotonic() + 30
                while _receivewal_running(pg.port) and time.monotonic() < deadline:
                    time.sleep(0.5)
                assert not _receivewal_running(pg.port), "pg_receivewal left running"
                active = pg.sql("SELECT active FROM pg_replication_slots "
                                "WHERE slot_name = 'strongroom_db'")
                assert active == [(False,)]
                # the flow's clean-stop path ran: open segment stored, final status logged
                from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

                deadline = time.monotonic() + 30
                with get_client(sync_client=True) as client:
                    while True:
                        logs = [entry.message for entry in client.read_logs(
                            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
                                any_=[run.id])))]
                        if any("stopped cleanly" in m for m in logs):
                            break
                        assert time.monotonic() < deadline, logs[-5:]
                        time.sleep(1)
        finally:
            server.stop()
            pgc.stop(pg)
