"""The key-rotation flow through the Prefect harness: a new epoch on each target, and
strongroom.key.rotation-due for a target whose newest epoch is older than 100 days."""

from __future__ import annotations

import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from strongroom.repository import Repository
from tests.prefect.conftest import save_local_target

PW = "pw-prefect-tests"


def _age_epoch(root: Path, epoch: int, days: float) -> None:
    """Pretend the epoch was created ``days`` ago (creation time is listing metadata)."""
    path = root / "keyring" / f"epoch-{epoch:08d}"
    doc = json.loads(path.read_text())
    doc["created"] = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
    path.write_text(json.dumps(doc))


def test_key_rotation_flow(prefect_harness, names, tmp_path: Path, monkeypatch) -> None:
    import flows.keys as keys_flow

    events: list[tuple[str, str, str]] = []
    monkeypatch.setattr(keys_flow, "emit", lambda event, rid, summary, *a, **k:
                        events.append((event, rid, summary)))
    fresh, old = tmp_path / "fresh", tmp_path / "old"
    Repository.init(str(fresh), PW)
    Repository.init(str(old), PW)
    _age_epoch(old, 1, 150)
    with tarfile.open(Path(__file__).parents[1] / "keys" / "fixtures" / "format1-repo.tar.gz"
                      ) as tar:
        tar.extractall(tmp_path / "v1", filter="data")
    from tests.keys.fixtures.make_format1 import PASSWORD as PW1

    targets = [save_local_target(f"fresh-{names}", fresh),
               save_local_target(f"old-{names}", old),
               save_local_target(f"v1-{names}", tmp_path / "v1" / "repo", PW1)]

    check = keys_flow.key_rotation(targets, rotate=False)
    assert [r["rotated"] for r in check] == [None, None, None]
    due = {rid.rpartition(".")[2] for event, rid, _ in events}
    assert due == {f"old-{names}", f"v1-{names}"}  # 150 days old; format 1 has no epochs
    assert all(e == "strongroom.key.rotation-due" for e, _, _ in events)
    assert "migrate" in next(s for _, rid, s in events if rid.endswith(f"v1-{names}"))

    events.clear()
    rows = keys_flow.key_rotation(targets)
    assert [r["rotated"] for r in rows] == [2, 2, None]
    assert [rid.rpartition(".")[2] for _, rid, _ in events] == [f"v1-{names}"]
    assert Repository.open(str(old), PW).keyring.current == 2


@pytest.mark.parametrize("cron_month", ["1,4,7,10"])
def test_key_rotation_deployment_is_quarterly(cron_month: str) -> None:
    from deployments.key_specs import KEY_ROTATION_CRON

    minute, hour, day, months, weekday = KEY_ROTATION_CRON.split()
    assert (day, months, weekday) == ("1", cron_month, "*")
