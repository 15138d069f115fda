"""The recovery stages as tasks: assess, prepare, restore, verify-restore, post-mortem."""

from __future__ import annotations

import hashlib
import os
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
from strongroom.errors import ConfigError, IntegrityError, NotSupported, SnapshotNotFound
from strongroom.sources.registry import restorer_for
from tasks.backup import snapshot_report
from tasks.progress import Progress, artifact_key
from tasks.retry import RETRYING

RATE_VARIABLE = "strongroom_restore_rate"
# Restorers that report progress in bytes of the snapshot (the progress artifact's unit).
BYTE_PROGRESS = ("files", "s3", "redis")
# Tools a restore of each kind needs on this host (checked in prepare).
TOOLS = {"postgres": ["pg_ctl", "pg_restore"], "redis": ["redis-server"], "neo4j": [],
         "files": [], "s3": []}


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
    eligible = [s for s in snaps if at is None or s.time <= at]
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
def assess(source: str, target: str, snapshot: str = "latest",
           at: str | None = None) -> dict[str, Any]:
    """Identify the source and the recovery point; estimate the recovery time."""
    src = load_source(source)
    tgt = load_target(target)
    repo = tgt.open()
    try:
        snap = pick_snapshot(repo.list_snapshots(src.source_name), snapshot, parse_time(at),
                             src.source_name)
        size = snap.stats.bytes_total or sum(
            n.size for _, n in repo.reader(snap).walk() if n.type == "file")
    finally:
        repo.close()
    estimate, basis = estimate_seconds(size, snap.stats.model_dump())
    get_run_logger().info("recovery point for %s: snapshot %s of %s (%s bytes); estimated "
                          "recovery time %.0f s from %s", src.source_name, snap.short_id,
                          snap.time.isoformat(), size, estimate, basis)
    return {"source": source, "source_name": src.source_name, "kind": src.source_kind,
            "class": src.objectives_class(), "target": target, "target_desc": tgt.describe(),
            "snapshot": snapshot_report(snap), "bytes": size, "estimate_s": round(estimate, 1),
            "estimate_basis": basis}


def _non_empty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


@task(name="prepare", task_run_name="prepare-{source}", cache_policy=NO_CACHE, **RETRYING)
def prepare(source: str, target: str, dest: str, replace: bool = False) -> dict[str, Any]:
    """Check tools and the restore target; snapshot what is there before anything is overwritten."""
    src = load_source(source)
    restorer_for(src.source_kind)  # NotSupported for a kind this build cannot restore
    missing = [t for t in TOOLS.get(src.source_kind, []) if not _have_tool(t)]
    anomalies = [f"tool {t} not found on this host" for t in missing]
    safety = None
    if src.source_kind == "files":
        path = Path(dest).expanduser().absolute()
        if _non_empty(path):
            if not replace:
                from strongroom.errors import TargetNotEmpty

                raise TargetNotEmpty(f"restore target {path} is not empty (set replace to "
                                     "overwrite it after a safety snapshot)")
            safety = _safety_files(target, src.source_name, path)
        else:
            path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise ConfigError(f"restore target {path} is not writable")
    elif replace:
        repo = load_target(target).open()
        try:
            safety = snapshot_report(src.backup(repo, "snapshot", ["safety", "pre-restore"]))
        except NotSupported as exc:
            anomalies.append(f"no safety snapshot taken: {exc}")
        finally:
            repo.close()
    return {"dest": dest, "safety_snapshot": safety["id"] if safety else None,
            "anomalies": anomalies}


def _have_tool(name: str) -> bool:
    if shutil.which(name):
        return True
    if name.startswith("pg_"):
        return any(Path(f"/usr/lib/postgresql/{v}/bin/{name}").exists() for v in (15, 16, 17))
    return False


def _safety_files(target: str, source_name: str, path: Path) -> dict[str, Any]:
    from strongroom.sources.files import backup_files

    repo = load_target(target).open()
    try:
        result = backup_files(repo, [path], name=f"{source_name}-safety", kind="full",
                              tags=["safety", "pre-restore"])
    finally:
        repo.close()
    return snapshot_report(result.snapshot)


@task(name="restore", task_run_name="restore-{source}", cache_policy=NO_CACHE, **RETRYING)
def restore(source: str, target: str, snapshot_id: str, dest: str, replace: bool = False,
            include: list[str] | None = None, options: dict[str, Any] | None = None,
            total_bytes: int = 0) -> dict[str, Any]:
    """Fetch, decrypt, verify and write the snapshot (a progress artifact follows the bytes)."""
    src = load_source(source)
    started = time.monotonic()
    repo = load_target(target).open()
    try:
        snap = repo.find_snapshot(snapshot_id)
        progress = Progress(artifact_key("restore", src.source_name), float(total_bytes),
                            f"Restoring {src.source_name} from snapshot {snap.short_id}")
        opts: dict[str, Any] = {**src.restore_options(), **(options or {})}
        if snap.source_kind in BYTE_PROGRESS:
            opts["progress"] = progress.advance
        if snap.source_kind == "files":
            if replace and Path(dest).exists():
                _clear(Path(dest))
        result = restorer_for(snap.source_kind)(repo, snap, dest, replace=replace,
                                                include=list(include or []), options=opts)
        progress.finish()
    finally:
        repo.close()
    report = {k: v for k, v in (result or {}).items() if isinstance(v, (str, int, float, bool))}
    return report | {"duration_s": round(time.monotonic() - started, 3)}


def _clear(path: Path) -> None:
    """Empty a directory whose contents are already in a safety snapshot."""
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


@task(name="verify-restore", task_run_name="verify-{source}", cache_policy=NO_CACHE,
      **RETRYING)
def verify_restore(source: str, target: str, snapshot_id: str, dest: str,
                   include: list[str] | None = None,
                   restore_report: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compare what was restored with the snapshot (files: every byte, type, mode, link)."""
    repo = load_target(target).open()
    try:
        snap = repo.find_snapshot(snapshot_id)
        if snap.source_kind != "files":
            report = dict(restore_report or {})
            if report.get("verified") is False or report.get("errors"):
                raise IntegrityError(f"restored {snap.source_name} failed its checks: "
                                     f"{report.get('errors') or 'not verified'}")
            return {"checked": "restorer's own checks", **{k: v for k, v in report.items()
                                                            if k != "duration_s"}}
        return compare_tree(repo, snap, Path(dest), include or [])
    finally:
        repo.close()


def compare_tree(repo: Any, snap: Any, root: Path, include: list[str]) -> dict[str, Any]:
    """Byte-for-byte comparison of a restored directory with a files snapshot."""
    from strongroom.sources.files import _included

    files = checked = 0
    problems: list[str] = []
    for rel, node in repo.reader(snap).walk():
        if not _included(rel, include):
            continue
        path = root / rel
        if node.type == "symlink":
            if not path.is_symlink() or os.readlink(path) != node.target:
                problems.append(f"{rel}: symlink missing or pointing elsewhere")
        elif node.type == "dir":
            if not path.is_dir() or path.is_symlink():
                problems.append(f"{rel}: directory missing")
        else:
            files += 1
            if not path.is_file() or path.stat().st_size != node.size:
                problems.append(f"{rel}: missing or wrong size")
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
            if digest.hexdigest() != node.sha256:
                problems.append(f"{rel}: contents differ from the snapshot")
            elif (path.stat().st_mode & 0o7777) != (node.mode & 0o7777):
                problems.append(f"{rel}: mode {oct(path.stat().st_mode & 0o7777)} differs")
            else:
                checked += 1
    if problems:
        raise IntegrityError(f"restored tree under {root} differs from snapshot {snap.short_id}: "
                             f"{problems[0]} ({len(problems)} problem(s))")
    return {"checked": "byte for byte", "files": files, "files_identical": checked}


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
