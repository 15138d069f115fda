"""Retention and 3-2-1 flows over target blocks, on Prefect's test harness."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tiers.helpers import PASSWORD, backup, new_repo, random_files


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    from tests.support.prefect_api import test_harness

    with test_harness():
        yield


def _target(name: str, url: str, role: str, password: str, endpoint: str | None = None) -> None:
    from blocks.keys import RepositoryKey
    from blocks.targets import RepositoryTarget

    RepositoryTarget(url=url, role=role, key=RepositoryKey(password=password),
                     endpoint_url=endpoint).save(name, overwrite=True)


def test_three_two_one_and_retention_flows(harness, tmp_path: Path, moto_endpoint: str,
                                           s3_bucket: str) -> None:
    from flows.storage import retention, three_two_one
    from strongroom.repository.copy import copy_snapshots

    primary = new_repo(str(tmp_path / "p"))
    snaps = [backup(primary, random_files(i, count=2), source="orders-db", tags=("snapshot",),
                    kind="snapshot") for i in range(3)]
    _target("t-primary", str(tmp_path / "p"), "primary", PASSWORD)
    with pytest.raises(RuntimeError, match="orders-db: 2 copies"):
        three_two_one(["t-primary"])
    url = f"s3://{s3_bucket}/sec"
    secondary = new_repo(url, password="other", options={"endpoint": moto_endpoint})
    copy_snapshots(primary, secondary)
    _target("t-secondary", url, "secondary", "other", moto_endpoint)
    report = three_two_one(["t-primary", "t-secondary"])
    assert report["ok"] and report["sources"][0]["copies"] == 3
    results = retention(["t-primary", "t-secondary"], dry_run=True)
    assert [r["forget"] for r in results] == [0, 0]  # all within the 7-day snapshot window
    assert all(r["tier"] in ("primary", "secondary") for r in results)
    assert len(snaps) == 3
    from prefect import get_client

    with get_client(sync_client=True) as client:
        texts = [str(a.data) for a in client.read_artifacts()]
    assert any("3-2-1 check: ok" in t for t in texts)
    assert any("3-2-1 check: BROKEN" in t and "2 copies (needs 3)" in t for t in texts)
    assert not any(PASSWORD in t or "other" in t.split() for t in texts)  # no secrets
