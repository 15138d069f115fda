"""Verify task: repository structure, a sampled or full read of the data, or a restore test."""

from __future__ import annotations

import tempfile
import time
from typing import Any, Literal

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.loading import load_target
from strongroom.errors import ConfigError, IntegrityError
from strongroom.sources import registry
from tasks.progress import Progress, artifact_key
from tasks.repos import repository
from tasks.retry import RETRYING

# structure: indexes, packs and trees are consistent (reads no data); subset: also read and
# decrypt a sample of packs; read-data: every pack; restore-test: also restore to a temp dir
Mode = Literal["structure", "subset", "read-data", "restore-test"]


def verify_snapshot(repo: Any, snapshot_id: str | None, mode: Mode = "subset",
                    subset_pct: float = 10.0) -> dict[str, Any]:
    """Check one snapshot (``None``: every snapshot); IntegrityError names the first problem."""
    from strongroom.repository.verify import verify as engine_verify

    if mode not in ("structure", "subset", "read-data", "restore-test"):
        raise ConfigError(f"unknown verify mode {mode!r} (structure, subset, read-data, "
                          "restore-test)")
    snap = repo.find_snapshot(snapshot_id) if snapshot_id else None
    label = snap.source_name if snap else "repository"
    progress = Progress(artifact_key("verify", label), 1.0, f"Verifying {repo.url}")

    def step(done: int, total: int) -> None:
        progress.total = max(float(total), 1.0)
        progress.advance(1)

    result = engine_verify(repo, read_data=mode == "read-data",
                           subset_pct=subset_pct if mode == "subset" else None,
                           snapshot_ids=[snap.id] if snap else None, progress=step)
    progress.finish()
    if result.errors:
        more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        raise IntegrityError(f"verify of {repo.url} failed: {result.errors[0]}{more}")
    report: dict[str, Any] = {"snapshot": snap.id if snap else None, "mode": mode,
                              "snapshots": result.snapshots, "packs": result.packs,
                              "packs_read": result.packs_read,
                              "blobs_checked": result.blobs_checked,
                              "garbage": len(result.garbage)}
    if mode == "restore-test" and snap is not None:
        with tempfile.TemporaryDirectory(prefix="strongroom-verify-") as tmp:
            restored = registry.get(snap.source_kind).restore(repo, snap, tmp, replace=False,
                                                              include=[], options={})
        report["restore"] = {k: v for k, v in restored.items() if k != "target"}
    return report


@task(name="verify", cache_policy=NO_CACHE, **RETRYING)
def verify(target: str, snapshot_id: str | None, mode: Mode = "subset",
           subset_pct: float = 10.0) -> dict[str, Any]:
    """Verify a snapshot in the ``target`` repository."""
    started = time.monotonic()
    tgt = load_target(target)
    with repository(target) as repo:
        report = verify_snapshot(repo, snapshot_id, mode, subset_pct)
    return report | {"target": tgt.describe(), "duration_s": round(time.monotonic() - started, 3)}
