"""Many hosts: three process workers on one work pool, each a "host" with its own files tree,
back up at the same time into one S3 repository (moto); a disaster recovery then fans the
restores out to the same workers. Every snapshot verifies; every tree comes back byte for byte.
"""

from __future__ import annotations

import pytest

from tests.prefect.conftest import make_tree, tree_listing
from tests.support.moto_server import moto_server, s3_client
from tests.support.prefect_api import prefect_api
from tests.workpool.cluster import BUCKET, Cluster, platform_file, wait_runs

HOSTS = ("host-a", "host-b", "host-c")
RUN_TIMEOUT_S = 240


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_hosts_back_up_and_recover_on_their_own_workers(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    trees = {h: make_tree(tmp_path / h / "data", files=30 + 5 * i)
             for i, h in enumerate(HOSTS)}
    cluster = Cluster(tmp_path / "cluster")
    with moto_server() as endpoint:
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        config = platform_file(tmp_path / "platform.yaml", endpoint, trees)
        try:
            cluster.start_server()
            out = cluster.deploy(config)
            for h in HOSTS:
                assert f"backup-incremental/daily-incremental@{h}" in out
                assert f"prefect worker start --pool hosts --work-queue {h}" in out
            for queue in (*HOSTS, "default"):  # default: disaster recovery's own run
                cluster.start_worker(queue)
            with prefect_api(cluster.api):
                cluster.wait_workers()
                _check_deployments(get_client)
                from blocks.loading import load_target

                load_target("primary").open(create=True)  # set-up, before writers race

                # the three hosts' backups at once
                started = [run_deployment(f"backup-incremental/daily-incremental@{h}",
                                          timeout=0) for h in HOSTS]
                runs = wait_runs([r.id for r in started], RUN_TIMEOUT_S)
                for h, run in zip(HOSTS, runs, strict=True):
                    assert run.state.is_completed(), f"{h}: {run.state.message}"
                    assert run.work_queue_name == h
                    assert str(run.id) in cluster.workers[h].read_text(), \
                        f"{run.name} did not run on worker-{h}"

                verify = run_deployment("verify-backups/verify-backups",
                                        parameters={"mode": "read-data"},
                                        timeout=RUN_TIMEOUT_S)
                assert verify.state.is_completed(), verify.state.message
                repo = load_target("primary").open()
                latest = {s.source_name for s in repo.list_snapshots()}
                assert latest == {f"{h}-files" for h in HOSTS}

                # disaster recovery fans the restores out to each source's host
                dr = run_deployment("disaster-recovery/disaster-recovery",
                                    parameters={"site": "hosts", "from_role": "primary"},
                                    timeout=RUN_TIMEOUT_S)
                assert dr.state.is_completed(), dr.state.message
                _check_restores_ran_on_their_hosts(get_client, cluster)
        finally:
            cluster.stop()
    for h, data in trees.items():
        restored = data.parent / "restored"  # the source path's contents
        assert tree_listing(restored) == tree_listing(data), h


def _check_deployments(get_client) -> None:
    with get_client(sync_client=True) as client:
        for h in HOSTS:
            dep = client.read_deployment_by_name(f"backup-incremental/daily-incremental@{h}")
            assert (dep.work_pool_name, dep.work_queue_name) == ("hosts", h)
            assert dep.parameters["sources"] == [f"files/{h}-files"]
            assert len(dep.schedules) == 1
            rec = client.read_deployment_by_name(f"recover-files/recover-files@{h}")
            assert rec.work_queue_name == h
        dr = client.read_deployment_by_name("disaster-recovery/disaster-recovery")
        assert dr.work_queue_name == "default"


def _check_restores_ran_on_their_hosts(get_client, cluster: Cluster) -> None:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with get_client(sync_client=True) as client:
        for h in HOSTS:
            [dep] = client.read_deployments(deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=[f"recover-files@{h}"])))
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                id={"any_": [dep.id]}))
            assert runs, f"disaster recovery ran no restore on {h}"
            for run in runs:
                assert run.state.is_completed() and run.work_queue_name == h
                assert str(run.id) in cluster.workers[h].read_text()
