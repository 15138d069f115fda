"""Database and bucket sources through the flows: a real Neo4j (auth on) and moto's S3 server.

The source blocks carry the credentials; the backup flow and recover_database use them
in-process (no environment variable, no restore option from the caller), and none of them
shows up in what the Prefect API keeps about the runs.
"""

from __future__ import annotations

import json
import secrets

import pytest

from tests.prefect.conftest import backup_one, backup_state, save_local_target, with_subflows
from tests.support.moto_server import s3_client
from tests.support.neo4j_server import launcher_built


def _api_text(flow_run_ids: list) -> str:
    """Everything the UI shows about these runs: parameters, states, logs, task runs and
    artifacts, as one string."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        flow_run_ids = with_subflows(client, flow_run_ids)
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=flow_run_ids)))
        parts = [r.model_dump_json() for r in runs]
        parts += [t.model_dump_json() for t in client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)))]
        parts += [lg.model_dump_json() for lg in client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)))]
        parts += [a.model_dump_json() for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(
                any_=flow_run_ids)))]
        parts += [json.dumps(s.model_dump(mode="json")) for r in runs
                  for s in client.read_flow_run_states(r.id)]
    return "\n".join(parts)


def _graph(srv, password: str) -> list[tuple]:
    import neo4j

    with neo4j.GraphDatabase.driver(srv.uri, auth=("neo4j", password)) as d:
        nodes = d.execute_query("MATCH (n) RETURN labels(n) AS l, properties(n) AS p "
                                "ORDER BY n.key").records
        rels = d.execute_query("MATCH (a)-[r]->(b) RETURN a.key AS a, type(r) AS t, "
                               "properties(r) AS p, b.key AS b ORDER BY a, b").records
    return [(sorted(r["l"]), sorted(r["p"].items())) for r in nodes] + \
        [(r["a"], r["t"], sorted(r["p"].items()), r["b"]) for r in rels]


@pytest.mark.timeout(120)
@pytest.mark.skipif(not launcher_built(), reason="tests/neo4j launcher not built "
                    "(mvn -q -B -f tests/neo4j/pom.xml package)")
def test_neo4j_block_drives_backup_and_recover_database(prefect_harness, tmp_path, names,
                                                        monkeypatch):
    import neo4j
    from pydantic import SecretStr

    from blocks import Neo4jSource
    from flows.limits import ensure_limits
    from flows.recovery import recover_database
    from tests.support.neo4j_server import neo4j_server

    monkeypatch.delenv("STRONGROOM_NEO4J_PASSWORD", raising=False)
    with neo4j_server(auth=True, heap="512m") as srv:
        password = srv.password
        with neo4j.GraphDatabase.driver(srv.uri, auth=("neo4j", password)) as d:
            d.execute_query("CREATE CONSTRAINT person_key IF NOT EXISTS "
                            "FOR (p:Person) REQUIRE p.key IS UNIQUE")
            d.execute_query("UNWIND range(1, 60) AS i CREATE (:Person {key: i, name: "
                            "'p' + toString(i), score: i * 1.5, tags: ['a', toString(i)]})")
            d.execute_query("MATCH (a:Person), (b:Person) WHERE b.key = a.key + 1 "
                            "CREATE (a)-[:KNOWS {since: 2000 + a.key}]->(b)")
        before = _graph(srv, password)

        name = f"graph-{names}"
        Neo4jSource(source_name=name, uri=srv.uri, user="neo4j", password=SecretStr(password),
                    restore_target=f"{srv.uri}/neo4j").save(name)
        ensure_limits([name])
        tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
        backup = backup_state("full", f"neo4j/{name}", primary=tgt, verify_mode="read-data")
        assert backup.is_completed(), backup.message
        snap = backup.result()["sources"][f"neo4j/{name}"]["snapshot"]
        assert (snap["source_kind"], snap["kind"]) == ("neo4j", "full")

        with neo4j.GraphDatabase.driver(srv.uri, auth=("neo4j", password)) as d:  # incident
            d.execute_query("MATCH (n) WHERE n.key > 30 DETACH DELETE n")
            d.execute_query("CREATE (:Stray {key: 999})")
        assert _graph(srv, password) != before

        recovery = recover_database(f"neo4j/{name}", from_target=tgt, replace=True,
                                    return_state=True)
        assert recovery.is_completed(), recovery.message
        report = recovery.result()
        assert _graph(srv, password) == before
        result = report["results"][0]
        assert result["snapshot"] == snap["id"]
        assert list(report["stages"]) == ["assess", "prepare", "restore", "verify"]
        assert (result["rto_objective_s"], result["rpo_objective_s"]) == (4 * 3600, 3600)
        assert result["safety_snapshot"] and result["safety_snapshot"] != snap["id"]
        assert result["verified"] == "restorer's own checks"

        # The same database through a block that names a variable instead (backup side).
        monkeypatch.setenv(f"NEO4J_PW_{names}", password)
        Neo4jSource(source_name=f"{name}-env", uri=srv.uri, user="neo4j",
                    password_env=f"NEO4J_PW_{names}").save(f"{name}-env")
        ensure_limits([f"{name}-env"])
        by_env = backup_state("snapshot", f"neo4j/{name}-env", primary=tgt,
                              verify_mode="structure")
        assert by_env.is_completed(), by_env.message

        text = _api_text([backup.state_details.flow_run_id, recovery.state_details.flow_run_id,
                          by_env.state_details.flow_run_id])
        assert "post-mortem" in text and snap["short_id"] in text  # the API has the runs
        assert password not in text


def test_s3_bucket_block_restores_through_its_own_endpoint(prefect_harness, tmp_path, names,
                                                           moto_endpoint, monkeypatch):
    from pydantic import SecretStr

    from blocks import S3BucketSource, S3Credentials
    from flows.limits import ensure_limits
    from flows.recovery import recover_database

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the block alone names the endpoint
    s3 = s3_client(moto_endpoint)
    bucket = f"media-{names}"
    s3.create_bucket(Bucket=bucket)
    objects = {f"uploads/{i:02}.bin": secrets.token_bytes(2000 + i) for i in range(12)}
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    secret = f"s3-secret-{names}"
    block = S3BucketSource(source_name=f"media-{names}", bucket=bucket, prefix="uploads/",
                           credentials=S3Credentials(
                               endpoint_url=moto_endpoint, region="us-east-1",
                               access_key_id=SecretStr("test"),
                               secret_access_key=SecretStr(secret)),
                           restore_target=f"s3://{bucket}/uploads/")
    assert block.restore_options() == {"endpoint": moto_endpoint, "region": "us-east-1",
                                       "access_key_id": "test", "secret_access_key": secret}
    block.save(f"media-{names}")
    ensure_limits([f"media-{names}"])
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    backup = backup_state("full", f"s3/media-{names}", primary=tgt)
    assert backup.is_completed(), backup.message

    for key in list(objects)[:5]:  # the incident
        s3.delete_object(Bucket=bucket, Key=key)
    s3.put_object(Bucket=bucket, Key="uploads/01.bin", Body=b"overwritten")
    recovery = recover_database(f"s3/media-{names}", from_target=tgt, replace=True,
                                return_state=True)
    assert recovery.is_completed(), recovery.message
    for key, body in objects.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert secret not in _api_text([backup.state_details.flow_run_id,
                                    recovery.state_details.flow_run_id])


@pytest.mark.timeout(120)
def test_postgres_block_drives_logical_backup_and_recover_database(prefect_harness, tmp_path,
                                                                   names, monkeypatch):
    from tests.support import pg_cluster as pgc

    if not pgc.available():
        pytest.skip("PostgreSQL 15 binaries not installed")
    from pydantic import SecretStr

    from blocks import PostgresSource
    from flows.limits import ensure_limits
    from flows.recovery import recover_database

    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pgc.workdir() as root:
        cluster = pgc.initdb(root / "c", wal_level="minimal")
        try:
            cluster.sql("CREATE DATABASE shop")
            cluster.sql("CREATE TABLE orders (id int PRIMARY KEY, item text, qty int)", "shop")
            cluster.sql("INSERT INTO orders SELECT i, 'item-' || i, i % 7 FROM "
                        "generate_series(1, 500) i", "shop")
            before = cluster.sql("SELECT * FROM orders ORDER BY id", "shop")

            name = f"shop-{names}"
            PostgresSource(source_name=name, port=cluster.port, user="postgres",
                           password=SecretStr(pgc.SUPERUSER_PASSWORD), database="shop",
                           method="logical",
                           restore_target=f"host=127.0.0.1 port={cluster.port} user=postgres "
                                          "dbname=shop").save(name)
            ensure_limits([name])
            tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
            backup = backup_state("full", f"postgres/{name}", primary=tgt)
            assert backup.is_completed(), backup.message
            snap = backup.result()["sources"][f"postgres/{name}"]["snapshot"]
            assert (snap["source_kind"], snap["kind"]) == ("postgres", "full")

            cluster.sql("DELETE FROM orders WHERE id > 250", "shop")  # the incident
            # no PGPASSWORD anywhere: the restore logs in with the block's password
            recovery = recover_database(f"postgres/{name}", from_target=tgt, replace=True,
                                        return_state=True)
            assert recovery.is_completed(), recovery.message
            assert cluster.sql("SELECT * FROM orders ORDER BY id", "shop") == before
            report = recovery.result()
            assert report["results"][0]["snapshot"] == snap["id"]
            assert report["results"][0]["safety_snapshot"]
            assert list(report["stages"]) == ["assess", "prepare", "restore", "verify"]
            assert pgc.SUPERUSER_PASSWORD not in _api_text(
                [backup.state_details.flow_run_id, recovery.state_details.flow_run_id])
        finally:
            pgc.stop(cluster)


def test_retention_on_a_deep_archive_tier_never_reads_packs(prefect_harness, tmp_path, names,
                                                            moto_endpoint):
    """A tertiary target in DEEP_ARCHIVE: the retention flow forgets by the policy block and
    its prune skips (names) the archived packs it cannot read instead of failing."""
    from blocks import RepositoryKey, RepositoryTarget, RetentionPolicy
    from flows.storage import retention
    from tests.prefect.conftest import make_tree, save_files_source

    bucket = f"vault-{names}"
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)
    RepositoryTarget(url=f"s3://{bucket}/tertiary", role="tertiary",
                     key=RepositoryKey(password="pw-vault"), endpoint_url=moto_endpoint,
                     region="us-east-1", options={"storage_class": "DEEP_ARCHIVE"}
                     ).save(f"vault-{names}")
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    data = make_tree(tmp_path / "data", files=6, size=20000)
    src = save_files_source(f"arch-{names}", [data])
    for i in range(2):
        (data / "d0" / "changing.bin").write_bytes(secrets.token_bytes(300000))
        (data / "d1" / f"only-{i}.bin").write_bytes(secrets.token_bytes(50000))
        backup_one("monthly_archive", src, primary=tgt, replicas=[f"vault-{names}"],
                   verify_mode="structure")
    RetentionPolicy(keep_last=1).save(f"keep-one-{names}")
    state = retention(targets=[f"vault-{names}"], grace_s=0,
                      policies={"monthly-archive": f"keep-one-{names}"}, return_state=True)
    assert state.is_completed(), state.message
    [report] = state.result()
    assert (report["tier"], report["keep"], report["removed"]) == ("archive", 1, 1)
    assert any("in archive storage" in note for note in report["prune"]["skipped"])
