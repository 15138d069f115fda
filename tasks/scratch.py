"""Drill helpers: the recovery point to rehearse, its scratch target, the RPO the schedules give.

A drill restores into a target it creates and removes (the source kind's
:meth:`~strongroom.sources.contract.Source.scratch_target`), never the source's production
target; a kind that cannot make one fails the drill with the kind's reason.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from blocks.loading import load_source
from strongroom.errors import SnapshotNotFound
from strongroom.sources.contract import ScratchTarget
from tasks.repos import repository
from tasks.retry import RETRYING

RPO_WINDOW = timedelta(days=30)


class ScratchUnavailable(RuntimeError):
    """The drill could not create its scratch target (the message says why)."""


def drill_workdir(workdir: str | None = None) -> Path:
    """Where scratch directories and servers live: ``workdir``, else $STRONGROOM_DRILL_DIR,
    else <tmp>/strongroom-drills (readable by the PostgreSQL server user)."""
    path = Path(workdir or os.environ.get("STRONGROOM_DRILL_DIR")
                or Path(tempfile.gettempdir()) / "strongroom-drills")
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def delivered_rpo(times: list[datetime], now: datetime,
                  window: timedelta = RPO_WINDOW) -> float | None:
    """The worst data loss the schedules actually delivered over ``window``: the largest gap
    between consecutive recovery points (and from the newest one to ``now``), in seconds;
    None when there is no recovery point."""
    if not times:
        return None
    points = sorted(t for t in times if t >= now - window) or [max(times)]
    gaps = [(b - a).total_seconds() for a, b in zip(points, points[1:], strict=False)]
    return round(max([*gaps, (now - points[-1]).total_seconds()]), 1)


@task(name="pick-drill-point", task_run_name="pick-drill-point-{source}", cache_policy=NO_CACHE,
      **RETRYING)
def pick_drill_point(source: str, target: str) -> dict[str, Any]:
    """The newest snapshot of ``source`` in ``target`` and the RPO the schedules delivered."""
    src = load_source(source)
    now = datetime.now(UTC)
    with repository(target) as repo:
        snaps = repo.list_snapshots(src.source_name)
        if not snaps:
            raise SnapshotNotFound(f"no snapshot of source {src.source_name!r} in {target}: "
                                   "nothing to drill")
        newest = snaps[-1]
        return {"snapshot_id": newest.id, "short_id": newest.short_id,
                "time": newest.time.isoformat(), "kind": newest.source_kind,
                "rpo_s": delivered_rpo([s.time for s in snaps], now),
                "points_in_window": sum(1 for s in snaps if s.time >= now - RPO_WINDOW)}


@contextmanager
def scratch_target(source: str, target: str, snapshot_id: str, workdir: str | None = None,
                   overrides: dict[str, Any] | None = None) -> Iterator[ScratchTarget]:
    """Create the scratch target for ``snapshot_id`` of ``source`` (the kind's
    ``scratch_target``), yield it, remove it. ``overrides`` add settings (a Neo4j
    ``scratch_uri``). Raises ScratchUnavailable with the kind's reason."""
    src = load_source(source)
    impl = src.source()
    settings = {**src.settings(), **(overrides or {})}
    with repository(target) as repo:
        snap = repo.find_snapshot(snapshot_id)
    try:
        manager = impl.scratch_target(snap, drill_workdir(workdir), settings=settings)
        scratch = manager.__enter__()
    except Exception as exc:  # NotSupported, SourceError, OSError: one reason, one line
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ScratchUnavailable(f"cannot create a scratch target for {src.source_name}: "
                                 f"{reason}") from None
    get_run_logger().info("drill of %s restores into %s", src.source_name, scratch.description)
    try:
        yield scratch
    except BaseException as exc:
        if not manager.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        manager.__exit__(None, None, None)
