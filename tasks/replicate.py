"""Replicate task: copy a snapshot to a secondary/tertiary target, then verify it there."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from blocks.loading import load_target
from tasks.retry import RETRYING
from tasks.verify import verify_snapshot


def engine_copy() -> Callable[..., Any] | None:
    """The engine's snapshot copy (``strongroom.repository.copy``), or None until it lands."""
    try:
        module = importlib.import_module("strongroom.repository.copy")
    except ModuleNotFoundError:
        return None
    return getattr(module, "copy_snapshots", None)


@task(name="replicate", cache_policy=NO_CACHE, **RETRYING)
def replicate(source_target: str, dest_target: str, snapshot_id: str,
              verify_mode: str = "subset") -> dict[str, Any]:
    """Copy ``snapshot_id`` from one target to another and verify the copy on arrival."""
    started = time.monotonic()
    copy = engine_copy()
    dest = load_target(dest_target)
    if copy is None:
        reason = "snapshot copy is not available in this build yet (strongroom.repository.copy)"
        get_run_logger().warning("replication to %s skipped: %s", dest.describe(), reason)
        return {"target": dest.describe(), "skipped": reason}
    src_repo = load_target(source_target).open()
    dst_repo = dest.open(create=True)
    try:
        result = copy(src_repo, dst_repo, [snapshot_id])
        copied = _copied_id(result, snapshot_id)
        # Archive (tertiary) packs cannot be read before staging: check structure there.
        mode = "structure" if dest.role == "tertiary" else verify_mode
        check = verify_snapshot(dst_repo, copied, mode)  # type: ignore[arg-type]
    finally:
        src_repo.close()
        dst_repo.close()
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
