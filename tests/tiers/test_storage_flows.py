"""Retention and 3-2-1 flows over target blocks, on the session's Prefect test harness."""

from __future__ import annotations

from pathlib import Path

from tests.tiers.helpers import PASSWORD, backup, new_repo, random_files

SECONDARY_PASSWORD = "secondary-tier-pw-4e1"


def _target(name: str, url: str, role: str, password: str, endpoint: str | None = None) -> None:
    from blocks.keys import RepositoryKey
    from blocks.targets import RepositoryTarget

    RepositoryTarget(url=url, role=role, key=RepositoryKey(password=password),
                     endpoint_url=endpoint).save(name, overwrite=True)


def test_three_two_one_and_retention_flows(prefect_harness, names: str, tmp_path: Path,
                                           moto_endpoint: str, s3_bucket: str) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.storage import retention, three_two_one
    from strongroom.repository.copy import copy_snapshots

    primary = new_repo(str(tmp_path / "p"))
    snaps = [backup(primary, random_files(i, count=2), source="orders-db", tags=("snapshot",),
                    kind="snapshot") for i in range(3)]
    _target(f"t-primary-{names}", str(tmp_path / "p"), "primary", PASSWORD)
    broken = three_two_one([f"t-primary-{names}"], return_state=True)
    assert broken.is_failed() and "orders-db: 2 copies" in broken.message
    url = f"s3://{s3_bucket}/sec"
    secondary = new_repo(url, password=SECONDARY_PASSWORD, options={"endpoint": moto_endpoint})
    copy_snapshots(primary, secondary)
    _target(f"t-secondary-{names}", url, "secondary", SECONDARY_PASSWORD, moto_endpoint)
    ok = three_two_one([f"t-primary-{names}", f"t-secondary-{names}"], return_state=True)
    report = ok.result()
    assert report["ok"] and report["sources"][0]["copies"] == 3
    results = retention([f"t-primary-{names}", f"t-secondary-{names}"], dry_run=True)
    assert [r["forget"] for r in results] == [0, 0]  # all within the 7-day snapshot window
    assert all(r["tier"] in ("primary", "secondary") for r in results)
    assert len(snaps) == 3

    def texts(state) -> list[str]:  # the artifacts of that flow run
        with get_client(sync_client=True) as client:
            return [str(a.data) for a in client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))]

    assert any("3-2-1 check: ok" in t for t in texts(ok))
    assert any("3-2-1 check: BROKEN" in t and "2 copies (needs 3)" in t for t in texts(broken))
    with get_client(sync_client=True) as client:
        every = " ".join(str(a.data) for a in client.read_artifacts())
    assert PASSWORD not in every and SECONDARY_PASSWORD not in every  # no secrets, anywhere
