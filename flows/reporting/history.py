"""Plain records for a report: backup runs from the Prefect API, snapshots and storage from the
repositories of a site, drills from the drill history."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# the unit of a backup: one source backed up by one schedule (a subflow of a tier run)
BACKUP_RUN_FLOWS = ("backup-source",)
NOT_STARTED = {"SCHEDULED", "PENDING", "PAUSED"}
PAGE = 200


def _utc(t: Any) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t.timestamp(), UTC)


def run_record(run: Any) -> dict[str, Any]:
    """The fields a report uses of one FlowRun."""
    state = run.state_type.value if run.state_type else "UNKNOWN"
    start, end = _utc(run.start_time), _utc(run.end_time)
    message = ((run.state.message if run.state else None) or "").strip().splitlines()
    return {"name": run.name, "state": state, "start": start, "end": end,
            "duration_s": (end - start).total_seconds() if start and end else None,
            "message": message[0][:300] if message else ""}


def fetch_runs(since: datetime, sources: list[str] | None = None,
               flows: tuple[str, ...] = BACKUP_RUN_FLOWS) -> list[dict[str, Any]]:
    """Backup runs expected to start after ``since``, read page by page through the public
    client API (``read_flow_runs`` with flow and start-time filters); with ``sources`` (source
    block references), only the runs of those sources: one API may serve several sites."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    records: list[dict[str, Any]] = []
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=list(flows))),
                flow_run_filter=FlowRunFilter(
                    expected_start_time=FlowRunFilterExpectedStartTime(after_=since)),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=PAGE, offset=offset)
            records += [run_record(r) for r in page
                        if (r.state_type.value if r.state_type else "") not in NOT_STARTED
                        and (sources is None or (r.parameters or {}).get("source") in sources)]
            if len(page) < PAGE:
                return records
            offset += PAGE


def capacity(url: str) -> tuple[int | None, int | None]:
    """(capacity, used) of the file system under a local repository; (None, None) for S3."""
    if "://" in url and not url.startswith("file://"):
        return None, None
    path = Path(url.removeprefix("file://"))
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    return usage.total, usage.used


def operations_settings() -> dict[str, Any]:
    """The platform's operations settings saved at deploy time (Variable
    ``strongroom_operations``: capacity_threshold, targets' capacity_bytes); {} when none."""
    from prefect.variables import Variable

    value = Variable.get("strongroom_operations", default=None)
    return value if isinstance(value, dict) else {}


def repository_records(targets: dict[str, str], capacities: dict[str, int | None] | None = None,
                       audit: dict[str, dict[str, Any]] | None = None,
                       audit_since: datetime | None = None
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Snapshots and storage of each target block (name -> tier); unreadable ones are noted.
    A target's capacity is its ``capacity_bytes`` from the platform file, else (local) the file
    system's size, counting the file system's whole use against it. ``audit``: filled with each
    target's audit activity since ``audit_since`` (``strongroom.audit.report_summary``)."""
    from blocks.loading import load_target
    from tasks.repos import repository

    snaps: list[dict[str, Any]] = []
    storage: list[dict[str, Any]] = []
    notes: list[str] = []
    for name, tier in targets.items():
        try:
            url = load_target(name).url
            with repository(name) as repo:
                for s in repo.list_snapshots():
                    snaps.append({"source": s.source_name, "tier": tier, "target": name,
                                  "time": s.time.astimezone(UTC),
                                  "bytes_total": s.stats.bytes_total,
                                  "bytes_stored": s.stats.bytes_stored})
                stored = sum(size for prefix in ("data/", "index/", "snapshots/", "keys/")
                             for _, size in repo.backend.list(prefix))
                if audit is not None:
                    audit[name] = _audit_summary(repo, audit_since, notes, name)
        except Exception as exc:  # noqa: BLE001 - a report notes it and goes on
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            notes.append(f"target {name} ({tier}) not read: {text}")
            continue
        total, used = capacity(url)
        if (capacities or {}).get(name):
            total, used = (capacities or {})[name], stored
        storage.append({"target": name, "tier": tier, "bytes": stored,
                        "used_bytes": used, "capacity_bytes": total})
    return snaps, storage, notes


def _audit_summary(repo: Any, since: datetime | None, notes: list[str], name: str
                   ) -> dict[str, Any]:
    from strongroom.audit import report_summary

    try:
        return report_summary(repo, since)
    except Exception as exc:  # noqa: BLE001 - a report notes it and goes on
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        notes.append(f"audit log of target {name} not read: {text}")
        return {}


def site_targets(site: str) -> tuple[dict[str, str], list[str], list[str] | None, str]:
    """Target block -> tier of the site, its source names, its source block references, and
    its objectives block; a missing site block gives the primary target block named
    ``primary`` only, and no references (every source's runs count)."""
    from blocks.loading import load_source
    from blocks.site import StrongroomSite

    try:
        spec = StrongroomSite.load(site)
    except ValueError:
        return {"primary": "primary"}, [], None, "default"
    targets = {spec.primary: "primary"}
    targets |= {t: "secondary" for t in spec.secondary}
    targets |= {t: "tertiary" for t in spec.tertiary}
    names = []
    for ref in spec.sources:
        try:
            names.append(load_source(ref).source_name)
        except Exception:  # noqa: BLE001
            names.append(ref.rpartition("/")[2])
    return targets, names, list(spec.sources), spec.objectives
