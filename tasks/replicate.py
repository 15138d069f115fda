"""Replicate task: copy a snapshot to a secondary/tertiary target, then verify it there."""

from __future__ import annotations

import time
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from blocks.loading import load_target
from tasks.repos import repository
from tasks.retry import RETRYING
from tasks.verify import Mode, verify_snapshot


@task(name="replicate", task_run_name="replicate-to-{dest_target}", cache_policy=NO_CACHE,
      **RETRYING)
def replicate(source_target: str, dest_target: str, snapshot_id: str,
              verify_mode: Mode = "subset") -> dict[str, Any]:
    """Copy ``snapshot_id`` from one target to another and verify the copy on arrival."""
    from strongroom.repository.copy import copy_snapshots

    started = time.monotonic()
    dest = load_target(dest_target)
    with repository(source_target) as src_repo, \
            repository(dest_target, create=True) as dst_repo:
        result = copy_snapshots(src_repo, dst_repo, [snapshot_id])
        copied = _copied_id(result, snapshot_id)
        # Archive (tertiary) packs cannot be read before staging: check structure there.
        mode: Mode = "structure" if dest.role == "tertiary" else verify_mode
        check = verify_snapshot(dst_repo, copied, mode)
    get_run_logger().info("snapshot %s copied to %s and verified (%s)", snapshot_id[:8],
                          dest.describe(), mode)
    stats = {k: v for k, v in (result if isinstance(result, dict) else {}).items()
             if isinstance(v, (int, float, bool))}
    return {"target": dest.describe(), "snapshot": copied, "verify": check, "copy": stats,
            "duration_s": round(time.monotonic() - started, 3)}


def _copied_id(result: Any, original: str) -> str:
    """The snapshot's id in the destination (re-encryption under another key changes it)."""
    if isinstance(result, dict):
        mapping = result.get("snapshots") or result.get("copied") or {}
        if isinstance(mapping, dict) and original in mapping:
            return str(mapping[original])
    return original
