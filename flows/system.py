"""System recovery: a host's configuration and system files (the system class) restored over
the live tree with their owners, modes and extended attributes, after a dry-run diff.

``recover-system`` with ``dry_run`` (the default) only lists what would change (a markdown
artifact ``system-diff-<source>``). Applied, it runs assess (the diff) -> prepare (a safety
snapshot of the live entries it will change, ``<name>-safety``: complete, every entry in it,
read back) -> restore (into a private staging directory under ``root``, checked there against
the snapshot) -> apply (each changed entry moved into place: the old one aside first and back
on failure, so each place holds the old or the new entry, never neither) -> verify (a second
diff finds nothing left to change) -> post-mortem. Only then is it a success. A failure after
the diff writes a failed post-mortem of its own that names the entries already applied and
the safety snapshot and command that undo them."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from blocks.loading import load_source
from blocks.policies import RecoveryObjectives
from flows.recovery import RECOVERY_TIMEOUT_S, _iso
from flows.report import _table, human_span, post_mortem_markdown
from flows.stopped import RecoveryStopped, failed_post_mortem, one_line, stopped
from strongroom.audit import audited
from strongroom.errors import ConfigError, IntegrityError, SourceError
from strongroom.sources import registry
from tasks import sysdiff
from tasks.notify import notify
from tasks.progress import artifact_key
from tasks.recovery import NOT_RECOVERY_POINTS, parse_time, pick_snapshot
from tasks.repos import flow_repositories, repository
from tasks.verify import verify_snapshot

MAX_ROWS = 500
SAFETY_TAGS = sorted(NOT_RECOVERY_POINTS - {"forensic"})  # safety, pre-restore


@task(name="system-diff", task_run_name="diff-{source}", cache_policy=NO_CACHE)
def system_diff(source: str, target: str, snapshot: str, at: str | None, root: str,
                include: list[str] | None) -> dict[str, Any]:
    """Entries of the snapshot that differ from the live tree under ``root``. A snapshot
    named by id may also be one of the source's safety snapshots (the undo of a recovery)."""
    src = load_source(source)
    with repository(target) as repo:
        snaps = repo.list_snapshots(src.source_name)
        if snapshot and snapshot != "latest":
            snaps += repo.list_snapshots(f"{src.source_name}-safety")
        snap = pick_snapshot(snaps, snapshot, parse_time(at), src.source_name)
        changes = sysdiff.diff(repo.reader(snap), Path(root), include)
    return {"snapshot": snap.id, "snapshot_time": snap.time.isoformat(),
            "bytes": snap.stats.bytes_total, "changes": changes}


@task(name="system-safety", task_run_name="safety-{source}", cache_policy=NO_CACHE)
def system_safety(source: str, target: str, root: str, changes: list[dict[str, Any]]
                  ) -> str | None:
    """Snapshot the live entries about to be replaced (``<name>-safety``) and prove it can
    undo them: no entry unread, every entry in it, every blob read back. Raises (before
    anything changes) when it cannot."""
    live = [str(Path(root) / c["path"].lstrip("/")) for c in changes
            if not c["changes"][0].startswith("missing")]
    if not live:
        return None
    src = load_source(source)
    with repository(target) as repo:
        snap = registry.get("files").backup(repo, name=f"{src.source_name}-safety",
                                            kind="snapshot", tags=SAFETY_TAGS,
                                            settings={"paths": live})
        errors = snap.meta.get("error_count") or len(snap.meta.get("errors") or [])
        if errors:
            raise SourceError(f"safety snapshot {snap.short_id} could not read {errors} "
                              f"entries (first: {snap.meta['errors'][0]}): nothing was "
                              "changed")
        reader = repo.reader(snap)
        lacking = [p for p in live if reader.node_or_none(
            os.path.abspath(p).lstrip("/")) is None]
        if lacking:
            raise SourceError(f"safety snapshot {snap.short_id} lacks {len(lacking)} of the "
                              f"entries to replace (first: {lacking[0]}, which a backup "
                              "cannot keep): nothing was changed")
        verify_snapshot(repo, snap.id, "read-data")
    return snap.id


@task(name="system-stage", task_run_name="stage-{source}", cache_policy=NO_CACHE)
def system_stage(source: str, target: str, snapshot_id: str, staging: str,
                 include: list[str] | None) -> dict[str, Any]:
    """Restore the snapshot into the staging directory and check it there against the
    snapshot, independently of the restorer (every byte, type, mode, link)."""
    src = load_source(source)
    with repository(target) as repo, \
            audited(repo, "restore", source=source, snapshot=snapshot_id, dest=staging,
                    replace=False) as op:
        snap = repo.find_snapshot(snapshot_id)
        op.add_snapshot(snap.id, snap.stats.bytes_total)
        impl = registry.get(snap.source_kind)
        report = impl.restore(repo, snap, staging, replace=False, include=list(include or []),
                              options=src.restore_options())
        checked = impl.verify_restored(repo, snap, staging, include=list(include or []),
                                       report=report)
    return {k: v for k, v in {**report, **checked}.items()
            if isinstance(v, (str, int, float, bool))}


@task(name="system-apply", task_run_name="apply-{source}", cache_policy=NO_CACHE)
def system_apply(source: str, staging: str, root: str, changes: list[dict[str, Any]],
                 when: str) -> dict[str, Any]:
    """Move the staged entries into place (see :func:`tasks.sysdiff.apply_staged`)."""
    return sysdiff.apply_staged(Path(staging), Path(root), changes, when)


def diff_markdown(source: str, result: dict[str, Any], root: str, dry_run: bool) -> str:
    changes = result["changes"]
    head = (f"# System recovery {'dry run' if dry_run else 'applied'}: `{source}` over "
            f"`{root}`\n\nSnapshot `{result['snapshot'][:8]}` of "
            f"{result['snapshot_time'][:19]} UTC: {len(changes)} entries "
            f"{'would change' if dry_run else 'to change'}.\n")
    rows = [[f"`{c['path']}`", c["type"], "; ".join(c["changes"])]
            for c in changes[:MAX_ROWS]]
    more = f"\n\n... and {len(changes) - MAX_ROWS} more" if len(changes) > MAX_ROWS else ""
    return head + ("\n" + _table(["path", "type", "change"], rows) + more if rows else "")


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def undo_command(source: str, safety: str, from_target: str, root: str) -> str:
    """The deployment run that restores the safety snapshot over the same root."""
    from prefect.runtime import deployment

    name = deployment.name or "recover-system"
    return (f"prefect deployment run 'recover-system/{name}' -p source={source} "
            f"-p snapshot={safety} -p from_target={from_target} -p root={root} "
            "-p dry_run=false")


def left_behind(source: str, from_target: str, root: str, safety: str | None,
                outcome: dict[str, Any] | None) -> list[str]:
    """What a failed recovery changed, and how to undo it."""
    applied = list((outcome or {}).get("applied") or [])
    created = list((outcome or {}).get("created") or [])
    out = []
    if not applied:
        out.append("nothing was changed: the recovery stopped before it replaced any entry")
    else:
        shown = ", ".join(f"`{p}`" for p in applied[:MAX_ROWS])
        more = f" and {len(applied) - MAX_ROWS} more" if len(applied) > MAX_ROWS else ""
        out.append(f"changed: {_entries(len(applied))} applied before the failure: "
                   f"{shown}{more}")
        if safety:
            out.append(f"undo: the safety snapshot `{safety}` holds the replaced entries as "
                       f"they were: `{undo_command(source, safety, from_target, root)}` (or "
                       f"`strongroom restore {safety} --target {root} --replace` with the "
                       f"repository of target `{from_target}`)")
        if created:
            out.append("created (they did not exist before; remove them to undo): "
                       + ", ".join(f"`{p}`" for p in created[:MAX_ROWS]))
    if outcome and outcome.get("failed"):
        if outcome.get("left"):
            out.append(f"`{outcome['failed']}` could not be put back: the old entry is at "
                       f"`{outcome['left']}`; move it back by hand")
        else:
            out.append(f"`{outcome['failed']}` was not replaced: it holds the old entry")
    elif safety and not applied:
        out.append(f"safety snapshot `{safety}` taken (nothing to undo)")
    return out


def result_row(name: str, before: dict[str, Any], root: str, safety: str | None,
               objectives: str | None, rto_s: float | None, applied: int,
               anomalies: list[str]) -> dict[str, Any]:
    """The post-mortem's table for the source, measured against the system class."""
    try:
        objs = RecoveryObjectives.load(objectives) if objectives else RecoveryObjectives()
    except ValueError:
        anomalies.append(f"objectives block {objectives!r} not found: the seed's defaults "
                         "apply")
        objs = RecoveryObjectives()
    obj = objs.for_class("system")
    rpo_s = max(0.0, (datetime.now(UTC) - datetime.fromisoformat(before["snapshot_time"])
                      ).total_seconds())
    if rto_s is not None and rto_s > obj.rto.total_seconds():
        anomalies.append(f"{name}: RTO objective missed")
    if rto_s is not None and rpo_s > obj.rpo.total_seconds():
        anomalies.append(f"{name}: RPO objective missed (recovery point {human_span(rpo_s)} "
                         "old)")
    return {"source": name, "class": "system", "snapshot": before["snapshot"],
            "snapshot_time": before["snapshot_time"], "bytes": before.get("bytes"),
            "dest": root, "safety_snapshot": safety, "recovery_point": "snapshot as taken",
            "recovery_point_time": before["snapshot_time"],
            "restored": {"entries": applied},
            "verified": "by a second diff: nothing left to change" if rto_s is not None
            else None, "rto_s": rto_s, "rto_objective_s": obj.rto.total_seconds(),
            "rpo_s": round(rpo_s, 1), "rpo_objective_s": obj.rpo.total_seconds()}


@flow(name="recover-system", log_prints=True, timeout_seconds=RECOVERY_TIMEOUT_S)
def recover_system(source: str, root: str = "/", snapshot: str = "latest",
                   at: datetime | None = None, from_target: str = "primary",
                   include: list[str] | None = None, dry_run: bool = True,
                   objectives: str | None = "default") -> dict[str, Any]:
    """Restore a host's configuration (a files source of the system class) over the live
    tree, owners, modes and extended attributes included.

    Args:
        source: files source block, files/NAME (e.g. files/platform-config)
        root: where the snapshot's / is on this host: / to restore in place, or another
            directory to rebuild a host's tree elsewhere
        snapshot: latest, or a snapshot id (or unique prefix); a safety snapshot's id undoes
            an earlier recovery
        at: with snapshot=latest, the newest snapshot at or before this time (ISO 8601)
        from_target: repository target block to restore from
        include: only these paths of the snapshot (e.g. /etc/nginx)
        dry_run: only list what would change (artifact system-diff-<source>); false: apply
        objectives: recovery objectives block (the system class's RTO/RPO apply)
    """
    src = load_source(source)
    if not src.source().target_is_path:
        raise ConfigError(f"{source} is a {src.source_kind} source: recover-system restores "
                          "files sources")
    if not Path(root).is_absolute():
        raise ConfigError(f"root must be an absolute directory, not {root!r}")
    name = src.source_name
    title = f"recover-system-{name}"
    with flow_repositories():
        started = time.monotonic()
        try:
            before = system_diff(source, from_target, snapshot, _iso(at), root, include)
        except Exception as exc:
            raise stopped(exc, f"{title}: diff failed: {one_line(exc)}") from None
        key = artifact_key("system-diff", name)
        create_markdown_artifact(diff_markdown(name, before, root, dry_run), key=key,
                                 description=f"System recovery diff: {name}")
        if dry_run:
            return {"dry_run": True, "snapshot": before["snapshot"],
                    "changes": before["changes"], "artifact_key": key}
        if not before["changes"]:
            return {"dry_run": False, "snapshot": before["snapshot"], "changes": [],
                    "applied": 0, "artifact_key": key}
        report = _apply(source, name, title, from_target, root, include, before, objectives,
                        started)
    return {"dry_run": False, "snapshot": before["snapshot"], "changes": before["changes"],
            "artifact_key": key, **report}


def _apply(source: str, name: str, title: str, from_target: str, root: str,
           include: list[str] | None, before: dict[str, Any], objectives: str | None,
           started: float) -> dict[str, Any]:
    """prepare -> restore -> apply -> verify -> post-mortem, timed; a failure writes the failed
    post-mortem and raises one line."""
    stages = {"assess": round(time.monotonic() - started, 3)}
    clock = time.monotonic()
    stage, safety, outcome, staging = "prepare", None, None, None
    when = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"

    def lap(next_stage: str | None) -> None:
        nonlocal clock, stage
        now = time.monotonic()
        stages[stage] = round(now - clock, 3)
        clock = now
        stage = next_stage or stage

    try:
        sysdiff.check_devices(Path(root), Path(root), before["changes"])
        safety = system_safety(source, from_target, root, before["changes"])
        lap("restore")
        staging = sysdiff.make_staging(Path(root), when)
        system_stage(source, from_target, before["snapshot"], str(staging), include)
        lap("apply")
        outcome = system_apply(source, str(staging), root, before["changes"], when)
        if outcome["failed"]:
            raise RecoveryStopped(f"could not replace {outcome['error']}")
        lap("verify")
        after = system_diff(source, from_target, before["snapshot"], None, root, include)
        if after["changes"]:
            raise IntegrityError(f"{len(after['changes'])} entries still differ after the "
                                 f"recovery, e.g. {after['changes'][0]['path']}: "
                                 f"{after['changes'][0]['changes'][0]}")
        lap(None)
    except Exception as exc:
        failed = stage
        lap(None)
        error = one_line(exc)
        anomalies: list[str] = []
        applied = len((outcome or {}).get("applied") or [])
        pm = failed_post_mortem(
            title, stages, error, failed, left_behind(source, from_target, root, safety,
                                                      outcome), anomalies,
            [result_row(name, before, root, safety, objectives, None, applied, anomalies)])
        undo = f"; undo with safety snapshot {safety[:8]}" if applied and safety else ""
        raise stopped(exc, f"{title} failed at {failed}: {error}; {_entries(applied)} "
                           f"applied{undo} (post-mortem {pm})") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    anomalies = []
    rto_s = round(sum(stages.values()), 3)
    applied = len(outcome["applied"])
    row = result_row(name, before, root, safety, objectives, rto_s, applied, anomalies)
    pm_started = time.monotonic()
    pm = artifact_key("post-mortem", title)
    create_markdown_artifact(post_mortem_markdown(title, stages, [row], anomalies), key=pm,
                             description=f"Post-mortem: {title}")
    stages["post-mortem"] = round(time.monotonic() - pm_started, 3)
    notify("recovery.completed", title, f"recovery {title} completed in {rto_s:.1f} s: "
           f"{applied} entries applied", {"artifact": pm})
    return {"applied": applied, "safety_snapshot": safety, "post_mortem": pm,
            "stages": stages, "results": [row], "anomalies": anomalies}
