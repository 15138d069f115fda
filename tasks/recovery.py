"""The recovery stages as tasks: assess, prepare, restore, verify-restore, post-mortem."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.variables import Variable

from blocks.loading import load_source, load_target
from strongroom.audit import audited
from strongroom.errors import ConfigError, SnapshotNotFound, StrongroomError
from strongroom.policy.retention import UNDO_TAGS
from strongroom.sources import registry
from tasks import runbook
from tasks.backup import snapshot_report
from tasks.progress import Progress, artifact_key
from tasks.repos import repository
from tasks.retry import RETRYING

RATE_VARIABLE = "strongroom_restore_rate"
# snapshots a recovery takes of the target it overwrites: never a "latest" recovery point
NOT_RECOVERY_POINTS = UNDO_TAGS
POINT_KEYS = ("time", "lsn", "xid", "name")
# what a recovery names the snapshots it takes of a target: <source name>-<this>
UNDO_NAMES = ("safety", "forensic")


def parse_time(value: str | datetime | None) -> datetime | None:
    """An aware UTC datetime from ISO text (naive means UTC); ConfigError if unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"bad recovery time {value!r}: use ISO 8601, "
                              "e.g. 2026-11-26T09:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def pick_snapshot(snaps: list[Any], ref: str, at: datetime | None, source: str) -> Any:
    """``ref`` (id/prefix) or, for 'latest', the newest snapshot at or before ``at``."""
    if ref and ref != "latest":
        matches = [s for s in snaps if s.id.startswith(ref.lower())]
        if len(matches) != 1 or len(ref) < 4:
            raise SnapshotNotFound(f"no single snapshot {ref!r} of source {source!r}")
        return matches[0]
    eligible = [s for s in snaps if (at is None or s.time <= at)
                and not set(s.tags) & NOT_RECOVERY_POINTS]
    if not eligible:
        when = f" at or before {at.isoformat()}" if at else ""
        raise SnapshotNotFound(f"no snapshot of source {source!r}{when}")
    return eligible[-1]


def estimate_seconds(bytes_total: int, snap_stats: dict[str, Any]) -> tuple[float, str]:
    """Recovery time estimate from past recoveries' throughput, else the backup's duration."""
    past = Variable.get(RATE_VARIABLE, default=None)
    if isinstance(past, dict) and past.get("bytes_per_s"):
        rate = float(past["bytes_per_s"])
        runs = past.get("runs", 1)
        return bytes_total / rate + 1.0, (f"past recoveries ({runs}) at "
                                          f"{rate / 1e6:.2f} MB/s")
    return float(snap_stats.get("duration_s") or 1.0), "the backup's duration (no past recovery)"


@task(name="assess", task_run_name="assess-{source}", cache_policy=NO_CACHE, **RETRYING)
def assess(source: str, target: str, snapshot: str = "latest", at: str | None = None,
           point: dict[str, str] | None = None) -> dict[str, Any]:
    """Identify the source and the recovery point; estimate the recovery time.

    ``point`` ({"time"|"lsn"|"xid"|"name": value}) asks for a point-in-time recovery: a kind
    that replays a log to it (PostgreSQL physical) gets its base snapshot and the restore
    options; other kinds take the newest snapshot at or before a time (and the report says
    so), and refuse an LSN, xid or restore point name."""
    src = load_source(source)
    tgt = load_target(target)
    point = {k: str(v) for k, v in (point or {}).items() if k in POINT_KEYS and v}
    if len(point) > 1:
        raise ConfigError("give only one of at, target_lsn, target_xid, target_name")
    moment = parse_time(point.get("time") or at)
    if moment is not None and "time" in point:
        point["time"] = moment.isoformat()
    replay: dict[str, Any] = {}
    with repository(target) as repo:
        snaps = repo.list_snapshots(src.source_name)
        if snapshot != "latest":  # an undo: the source's safety and forensic snapshots too
            snaps += [s for n in UNDO_NAMES for s in repo.list_snapshots(
                f"{src.source_name}-{n}")]
        pit = src.source().point_in_time(repo, [s for s in snaps if not set(s.tags)
                                                & NOT_RECOVERY_POINTS], point) \
            if point and snapshot == "latest" else None
        if pit is not None:
            snap, replay = pit
        elif point and set(point) != {"time"}:
            raise ConfigError(f"{source} is a {src.source_kind} source without a log to "
                              f"replay: recover it to a time (at), not a {next(iter(point))}")
        else:
            snap = pick_snapshot(snaps, snapshot, moment, src.source_name)
        size = snap.stats.bytes_total or sum(
            n.size for _, n in repo.reader(snap).walk() if n.type == "file")
    estimate, basis = estimate_seconds(size, snap.stats.model_dump())
    if replay:
        how = f"replay to {next(iter(point))} {next(iter(point.values()))}"
    elif moment is not None:
        how = f"newest snapshot at or before {moment.isoformat()} (no replay for this kind)"
    else:
        how = "snapshot as taken"
    get_run_logger().info("recovery point for %s: snapshot %s of %s (%s bytes), %s; estimated "
                          "recovery time %.0f s from %s", src.source_name, snap.short_id,
                          snap.time.isoformat(), size, how, estimate, basis)
    return {"source": source, "source_name": src.source_name, "kind": src.source_kind,
            "class": src.objectives_class(), "target": target, "target_desc": tgt.describe(),
            "snapshot": snapshot_report(snap), "bytes": size, "estimate_s": round(estimate, 1),
            "estimate_basis": basis, "point": point, "replay_options": replay,
            "recovery_point": how}


@task(name="check-target", task_run_name="check-target-{source}", cache_policy=NO_CACHE,
      **RETRYING)
def check_target(source: str, dest: str, replace: bool, size: int,
                 options: dict[str, Any] | None = None) -> list[str]:
    """Before any service is stopped: the target is of the source's kind, can be replaced,
    and has room (the kind's ``check_target``, with the block's settings and the restore's
    login options, e.g. a scratch server's password); the tools the restore needs are
    here."""
    src = load_source(source)
    impl = src.source()  # NotSupported for a kind this build cannot restore
    notes = [f"tool {t} not found on this host" for t in impl.tools if not _have_tool(t)]
    settings = {**src.settings(), **src.restore_options(), **(options or {})}
    try:
        notes += impl.check_target(dest, settings=settings, replace=replace, size=size)
    except StrongroomError as exc:
        raise type(exc)(f"{src.source_name}: {exc}") from None
    return notes


@task(name="prepare", task_run_name="prepare-{source}", cache_policy=NO_CACHE, **RETRYING)
def prepare(source: str, target: str, dest: str, replace: bool = False,
            stop_command: str | None = None) -> dict[str, Any]:
    """Stop the service when a stop command is given (``pg_ctl``: the managed cluster in
    ``dest``); then keep what the restore cannot keep aside itself: a safety snapshot of the
    TARGET (``<name>-safety``, complete and read back; path targets need none, their
    previous contents are kept beside them by the restore)."""
    src = load_source(source)
    impl = src.source()
    stopped = runbook.stop_service(stop_command, dest) if stop_command else None
    try:
        with repository(target) as repo:
            snap = impl.safety_backup(repo, name=src.source_name, target=dest,
                                      replace=replace, settings=src.settings())
    except Exception as exc:
        if stopped:
            get_run_logger().error("%s: stopped by %r and not started again: nothing was "
                                   "overwritten; start it by hand", src.source_name,
                                   stop_command)
        raise _with_source(exc, src.source_name) from None
    safety = snapshot_report(snap) if snap is not None else None
    return {"dest": dest, "safety_snapshot": safety["id"] if safety else None,
            "safety_source": safety["source"] if safety else None,
            "stopped": stopped, "anomalies": []}


def _with_source(exc: BaseException, name: str) -> BaseException:
    if isinstance(exc, StrongroomError):
        return type(exc)(f"{name}: safety snapshot of the target failed, nothing was "
                         f"overwritten: {exc}")
    return exc


def _have_tool(name: str) -> bool:
    if shutil.which(name):
        return True
    if name.startswith("pg_"):
        return any(Path(f"/usr/lib/postgresql/{v}/bin/{name}").exists() for v in (15, 16, 17))
    return False


@task(name="restore", task_run_name="restore-{source}", cache_policy=NO_CACHE, **RETRYING)
def restore(source: str, target: str, snapshot_id: str, dest: str, replace: bool = False,
            include: list[str] | None = None, options: dict[str, Any] | None = None,
            total_bytes: int = 0) -> dict[str, Any]:
    """Fetch, decrypt, verify and write the snapshot (a progress artifact follows the bytes
    when the kind counts them)."""
    src = load_source(source)
    started = time.monotonic()
    result: dict[str, Any] | None = None
    try:
        with repository(target) as repo, \
                audited(repo, "restore", source=source, snapshot=snapshot_id, dest=dest,
                        replace=replace) as op:
            snap = repo.find_snapshot(snapshot_id)
            op.add_snapshot(snap.id, snap.stats.bytes_total)
            impl = registry.get(snap.source_kind)
            progress = Progress(artifact_key("restore", src.source_name), float(total_bytes),
                                f"Restoring {src.source_name} from snapshot {snap.short_id}")
            result = impl.restore(repo, snap, dest, replace=replace,
                                  include=list(include or []),
                                  options={**src.restore_options(), **(options or {})},
                                  progress=progress.advance if impl.progress_unit == "bytes"
                                  else None) or {}
            progress.finish()
    except Exception as exc:
        if result is None:
            raise
        # the target was restored: a retry would restore it again over the restored data
        # and lose the undo's kept contents from sight; the audit record's failure is told
        get_run_logger().error("%s restored, but the audit record of the restore failed: %s",
                               src.source_name, exc)
        result = {**result, "audit_error": (str(exc).splitlines() or ["failed"])[0][:200]}
    report = {k: v for k, v in result.items()
              if isinstance(v, (str, int, float, bool)) or k in ("server", "failover", "target")}
    return report | {"duration_s": round(time.monotonic() - started, 3)}


@task(name="verify-restore", task_run_name="verify-{source}", cache_policy=NO_CACHE, **RETRYING)
def verify_restore(source: str, target: str, snapshot_id: str, dest: str,
                   include: list[str] | None = None,
                   restore_report: dict[str, Any] | None = None,
                   smoke: list[dict[str, Any]] | None = None,
                   stop_server: bool = False) -> dict[str, Any]:
    """Check what was restored independently of the restorer (files: every byte, type, mode,
    link; other kinds: their own checks), then the source's smoke checks (SQL, Cypher, Redis
    keys, HTTP). ``stop_server``: stop a restored PostgreSQL kept running for the checks."""
    report = dict(restore_report or {})
    try:
        with repository(target) as repo:
            snap = repo.find_snapshot(snapshot_id)
            checked = registry.get(snap.source_kind).verify_restored(
                repo, snap, dest, include=list(include or []), report=report)
        if smoke:
            src = load_source(source)
            checked = {**checked, "smoke": runbook.smoke_checks(
                smoke, dest, report, src.restore_options() | _login(src))}
    finally:
        if stop_server and runbook.kept_server(report):
            runbook.stop_kept_server(report)
    return checked


def _login(src: Any) -> dict[str, Any]:
    settings = src.settings()
    return {k: settings[k] for k in ("user", "username") if settings.get(k)}


@task(name="fresh-backup", task_run_name="fresh-backup-{source}", cache_policy=NO_CACHE,
      **RETRYING)
def fresh_backup(source: str, target: str, create: bool = False) -> dict[str, Any]:
    """After a successful recovery: a new snapshot of the source as configured (the restored
    system when it was restored in place), read back in full: backup functionality
    verified. ``create``: make the repository when it is gone (a site's lost primary)."""
    from tasks.verify import verify_snapshot

    src = load_source(source)
    started = time.monotonic()
    with repository(target, create=create) as repo:
        snap = src.backup(repo, "snapshot", ["post-restore"])
        check = verify_snapshot(repo, snap.id, "read-data")
    return {"snapshot": snap.id, "verify": check,
            "duration_s": round(time.monotonic() - started, 3)}


def record_rate(bytes_restored: int, seconds: float) -> None:
    """Fold one recovery's throughput into the estimate used by later assessments."""
    if bytes_restored <= 0 or seconds <= 0:
        return
    past = Variable.get(RATE_VARIABLE, default=None)
    runs = int(past.get("runs", 0)) if isinstance(past, dict) else 0
    old = float(past.get("bytes_per_s", 0)) if isinstance(past, dict) else 0.0
    rate = bytes_restored / seconds
    new = rate if runs == 0 else (old * min(runs, 9) + rate) / (min(runs, 9) + 1)
    Variable.set(RATE_VARIABLE, {"runs": runs + 1, "bytes_per_s": round(new, 1)},
                 overwrite=True)
