"""Recovery flows in the seed's five stages: assess -> prepare -> restore -> verify -> post-mortem.

Each stage is a named task (one run per source), timed by the flow; the post-mortem artifact
records the timings, measured RTO/RPO against the objectives, what was restored, and anomalies.
A disaster recovery runs every source's recovery at once, each in its own subflow run; a source
whose block names a host (``runs_on``) is recovered by that host's worker through its
``recover-files@HOST`` / ``recover-database@HOST`` deployment when one exists.
"""

from __future__ import annotations

import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.logging import get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from blocks.loading import load_source, load_target
from blocks.policies import RecoveryObjectives
from blocks.site import StrongroomSite
from blocks.targets import Role
from flows.report import human_span, post_mortem_markdown
from strongroom.errors import ConfigError
from strongroom.sources import registry
from tasks import runbook
from tasks.notify import notify
from tasks.progress import artifact_key
from tasks.recovery import (
    assess,
    check_target,
    fresh_backup,
    parse_time,
    prepare,
    record_rate,
    restore,
    verify_restore,
)
from tasks.repos import flow_repositories
from tasks.undo import UndoPlan, UndoStep

STAGES = ("assess", "prepare", "restore", "verify", "post-mortem")
# how a directory restore that stopped half-way through its swaps says so (files restore)
SWAPPED = "already swapped in"
# Generous timeouts on the flows (see flows.backup.SOURCE_TIMEOUT_S for why not on tasks).
RECOVERY_TIMEOUT_S = 48 * 3600


def _objectives(name: str | None, anomalies: list[str]) -> RecoveryObjectives:
    if name:
        try:
            return RecoveryObjectives.load(name)
        except ValueError:
            anomalies.append(f"objectives block {name!r} not found: the seed's defaults apply")
    return RecoveryObjectives()


@task(name="post-mortem", cache_policy=NO_CACHE)
def post_mortem(title: str, stages: dict[str, float], assessed: list[dict[str, Any]],
                prepared: list[dict[str, Any]], restored: list[dict[str, Any]],
                verified: list[dict[str, Any]], incident_at: str, objectives: str | None,
                anomalies: list[str], error: str | None = None,
                failed_stage: str | None = None,
                fresh: list[dict[str, Any]] | None = None,
                objective_class: str | None = None,
                undo: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the post-mortem artifact (a failed one under its own key, never over a success)
    with the undo plan; feed the measured throughput into later estimates."""
    notes = list(anomalies)
    objs = _objectives(objectives, notes)
    incident = parse_time(incident_at) or datetime.now(UTC)
    rto_s = sum(v for k, v in stages.items() if k != "post-mortem")
    results = []
    for i, a in enumerate(assessed):
        obj = objs.for_class(objective_class or a["class"])
        dest = prepared[i]["dest"] if i < len(prepared) else "-"
        safety = prepared[i].get("safety_snapshot") if i < len(prepared) else None
        written = restored[i] if i < len(restored) else {}
        checked = verified[i] if i < len(verified) else {}
        point_time = recovery_point_time(a, written)
        rpo_s = max(0.0, (incident - point_time).total_seconds())
        results.append({"source": a["source_name"], "snapshot": a["snapshot"]["id"],
                        "snapshot_time": a["snapshot"]["time"], "bytes": a["bytes"],
                        "dest": dest, "safety_snapshot": safety,
                        "kept": written.get("kept"),
                        "recovery_point": a.get("recovery_point", "snapshot as taken"),
                        "recovery_point_time": point_time.isoformat(),
                        "restored": {k: v for k, v in written.items()
                                     if k in ("files", "bytes", "keys_copied", "tables",
                                              "objects", "mode", "promoted_lsn",
                                              "last_replayed_commit")},
                        "verified": checked.get("checked"), "smoke": checked.get("smoke"),
                        "fresh_backup": fresh[i] if fresh and i < len(fresh) else None,
                        "estimate_s": a["estimate_s"], "estimate_basis": a["estimate_basis"],
                        "rto_s": round(rto_s, 3) if not error else None,
                        "rto_objective_s": obj.rto.total_seconds(), "rpo_s": round(rpo_s, 1),
                        "rpo_objective_s": obj.rpo.total_seconds(), "class":
                        objective_class or a["class"]})
        if error:
            continue
        if rto_s > obj.rto.total_seconds():
            notes.append(f"{a['source_name']}: RTO objective missed")
        if rpo_s > obj.rpo.total_seconds():
            notes.append(f"{a['source_name']}: RPO objective missed (recovery point "
                         f"{human_span(rpo_s)} before the incident)")
        if a["estimate_s"] and rto_s > 3 * a["estimate_s"] + 60:
            notes.append(f"{a['source_name']}: recovery took over 3x the estimate")
    for p in prepared:
        notes += p.get("anomalies", [])
    plan = UndoPlan.model_validate(undo or {"title": title})
    left = left_behind(prepared, assessed, restored, verified, failed_stage, plan,
                       error or "") if error else []
    markdown = post_mortem_markdown(title, stages, results, notes, error,
                                    failed_stage=failed_stage, left_behind=left)
    key = artifact_key("post-mortem", title)
    if error:  # its own key: a failure never replaces the last good post-mortem or another
        key = artifact_key("post-mortem", title, "failed", f"{datetime.now(UTC):%Y%m%dt%H%M%S%f}")
    markdown += "\n" + plan.markdown(key)
    create_markdown_artifact(markdown, key=key, description=f"Post-mortem: {title}"
                             + (" (FAILED)" if error else ""))
    if not error and restored:
        record_rate(sum(a["bytes"] for a in assessed), stages.get("restore", 0.0))
    return {"artifact_key": key, "results": results, "anomalies": notes,
            "stages": stages, "ok": error is None, "failed_stage": failed_stage,
            "left_behind": left, "undo": plan.model_dump()}


def recovery_point_time(assessed: dict[str, Any], restored: dict[str, Any]) -> datetime:
    """What the recovered data is as of: the last replayed commit of a point-in-time
    recovery, else the requested time, else the snapshot's time."""
    replayed = restored.get("last_replayed_commit") if assessed.get("replay_options") else None
    point = (assessed.get("point") or {}).get("time")
    snap = datetime.fromisoformat(assessed["snapshot"]["time"])
    when = parse_time(replayed) or (parse_time(point) if assessed.get("replay_options") else None)
    return max(when, snap) if when else snap


def left_behind(prepared: list[dict[str, Any]], assessed: list[dict[str, Any]],
                restored: list[dict[str, Any]], verified: list[dict[str, Any]],
                failed_stage: str | None, plan: UndoPlan, error: str = "") -> list[str]:
    """What a failed recovery leaves for the operator to deal with, and how to undo it."""
    out = []
    for i, p in enumerate(prepared):
        name = assessed[i]["source_name"] if i < len(assessed) else p["dest"]
        if p.get("stopped"):
            out.append(f"{name}: service stopped ({p['stopped']}); start it again by hand")
    failing = {"restore": len(restored), "verify": len(verified)}.get(failed_stage or "")
    if failing is not None and failing < len(prepared):
        a, dest = assessed[failing], prepared[failing]["dest"]
        if failed_stage == "verify":
            out.append(f"{a['source_name']}: {dest} holds a restore that failed its checks: "
                       "do not use it; undo below")
        elif registry.get(a["kind"]).target_is_path and SWAPPED not in error:
            out.append(f"{a['source_name']}: {dest} was not changed (the restore writes "
                       "beside it and swaps only once checked)")
        else:
            out.append(f"{a['source_name']}: {dest} may hold a partial restore: do not use "
                       "it; undo below")
    for step in plan.steps:
        if step.possible:
            out.append(f"{step.source}: undo with " + "; ".join(f"`{c}`"
                                                                for c in step.commands()))
    if not prepared:
        out.append("nothing was changed: the recovery stopped before it overwrote anything")
    return out


def restart_untouched(jobs: list[dict[str, Any]], assessed: list[dict[str, Any]],
                      prepared: list[dict[str, Any]], restored: list[dict[str, Any]],
                      failed_stage: str, notes: list[str], swapped: bool = False) -> None:
    """After a recovery stopped: start again each service it stopped whose target was not
    overwritten (it stopped in prepare, or a directory restore stopped before its swap, or
    it had not begun); the start command is the platform file's ``start_service``. A
    service over a partly overwritten target stays stopped."""
    for i, p in enumerate(prepared):
        if not p.get("stopped"):
            continue
        untouched = failed_stage == "prepare" or i > len(restored) or (
            i == len(restored) and failed_stage == "restore" and not swapped
            and registry.get(assessed[i]["kind"]).target_is_path)
        command = jobs[i].get("start_command")
        if not untouched:
            continue
        if not command:
            notes.append(f"{assessed[i]['source_name']}: stopped and not overwritten; no "
                         "start_service in the platform file: start it by hand")
            continue
        try:
            p["stopped"] = None
            notes.append(f"{assessed[i]['source_name']}: started again "
                         f"({runbook.start_service(command, p['dest'])})")
        except Exception as exc:  # noqa: BLE001 - reported, the recovery failure stands
            p["stopped"] = f"start again failed: {_one_line(exc)}"


def start_in_place(jobs: list[dict[str, Any]], assessed: list[dict[str, Any]],
                   notes: list[str]) -> None:
    """After a successful recovery: start again each service the recovery stopped, with the
    platform file's start_service; without one, say it is left stopped. A start that fails
    is an anomaly (the data is restored and verified; the service is not up)."""
    for job, a in zip(jobs, assessed, strict=True):
        if not job.get("stop_command") or job.get("failover"):
            continue
        command = job.get("start_command")
        if not command:
            notes.append(f"{a['source_name']}: stopped for the recovery and left stopped (no "
                         "start_service in the platform file): start it")
            continue
        try:
            notes.append(f"{a['source_name']}: started "
                         f"({runbook.start_service(command, job['dest'])})")
        except Exception as exc:  # noqa: BLE001 - the recovery itself succeeded
            notes.append(f"{a['source_name']}: restored and verified, but starting it "
                         f"failed: {_one_line(exc)}; start it by hand")


def undo_plan(title: str, jobs: list[dict[str, Any]], prepared: list[dict[str, Any]],
              restored: list[dict[str, Any]]) -> UndoPlan:
    """Per source: what the recovery kept beside its target, and its safety snapshot."""
    steps = []
    for i, p in enumerate(prepared):
        written = restored[i] if i < len(restored) else {}
        kept = str(written.get("kept") or "")
        only = [e.rpartition("=") for e in str(written.get("kept_only") or "").split(";") if e]
        steps.append(UndoStep(source=jobs[i]["source"], dest=p["dest"],
                              repository=jobs[i]["target"],
                              kept=[k for k in kept.split(";") if k],
                              kept_only={k: r.split(",") for k, _, r in only},
                              safety_snapshot=p.get("safety_snapshot"),
                              stop_command=jobs[i].get("stop_command"),
                              options={k: str(v) for k, v in
                                       (jobs[i].get("options") or {}).items()}))
    return UndoPlan(title=title, steps=steps)


def recover(title: str, jobs: list[dict[str, Any]], objectives: str | None,
            incident_at: str | None = None, objective_class: str | None = None,
            notes: list[str] | None = None) -> dict[str, Any]:
    """Run the five stages over ``jobs`` (source, target, dest, snapshot, at, point, replace,
    include, options, stop_command, smoke, fresh_backup (default off: a drill into a
    scratch target must not back the source up), fresh_to (the repository target the
    fresh backup goes to; default the one restored from), failover)."""
    incident = incident_at or (jobs[0].get("at") if jobs else None) or \
        datetime.now(UTC).isoformat()
    stages: dict[str, float] = {}
    assessed: list[dict[str, Any]] = []
    prepared: list[dict[str, Any]] = []
    restored: list[dict[str, Any]] = []
    verified: list[dict[str, Any]] = []
    anomalies: list[str] = list(notes or [])
    error: str | None = None
    clock = time.monotonic()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.monotonic()
        stages[stage] = round(now - clock, 3)
        clock = now

    try:
        for job in jobs:
            assessed.append(assess(job["source"], job["target"], job.get("snapshot", "latest"),
                                   job.get("at"), job.get("point")))
        lap("assess")
        # every target checked before any service is stopped or anything overwritten
        checked = [check_target(job["source"], job["dest"], job.get("replace", False),
                                a["bytes"], job.get("options"))
                   for job, a in zip(jobs, assessed, strict=True)]
        for job, notes in zip(jobs, checked, strict=True):
            prepared.append(prepare(job["source"], job["target"], job["dest"],
                                    job.get("replace", False), job.get("stop_command")))
            prepared[-1]["anomalies"] = [*prepared[-1]["anomalies"], *notes]
        lap("prepare")
        for job, a in zip(jobs, assessed, strict=True):
            restored.append(restore(job["source"], job["target"], a["snapshot"]["id"],
                                    job["dest"], job.get("replace", False), job.get("include"),
                                    restore_options(job, a), a["bytes"]))
        lap("restore")
        for job, a, r in zip(jobs, assessed, restored, strict=True):
            verified.append(verify_restore(
                job["source"], job["target"], a["snapshot"]["id"], job["dest"],
                job.get("include"), r, job.get("smoke"),
                stop_server=not job.get("failover")))
        lap("verify")
    except Exception as exc:
        error = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
        failed = STAGES[len(stages)]
        lap(failed)
        restart_untouched(jobs, assessed, prepared, restored, failed, anomalies,
                          SWAPPED in error)
        with suppress(Exception):  # reporting must never hide the failure itself
            post_mortem(title, stages, assessed, prepared, restored, verified, incident,
                        objectives, anomalies, error, failed_stage=failed,
                        objective_class=objective_class,
                        undo=undo_plan(title, jobs, prepared, restored).model_dump())
            notify("recovery.failed", title, f"recovery {title} failed at {failed}: {error}",
                   level="error")
        raise
    start_in_place(jobs, assessed, anomalies)
    fresh = []
    for job in jobs:
        if not job.get("fresh_backup", False):
            fresh.append({"skipped": "not asked"})
            continue
        try:
            fresh.append(fresh_backup(job["source"], job.get("fresh_to") or job["target"],
                                      create=bool(job.get("fresh_to"))))
        except Exception as exc:  # noqa: BLE001 - the recovery itself succeeded
            fresh.append({"error": (str(exc).strip().splitlines() or ["failed"])[0][:300]})
            anomalies.append(f"{job['source']}: backup after the recovery failed: "
                             f"{fresh[-1]['error']}")
    for a, r in zip(assessed, restored, strict=True):
        if r.get("failover"):
            anomalies.append(f"{a['source_name']}: failover: repoint clients to "
                             f"{repoint(r)}")
            print(anomalies[-1])
    report = post_mortem(title, stages, assessed, prepared, restored, verified, incident,
                         objectives, anomalies, fresh=fresh, objective_class=objective_class,
                         undo=undo_plan(title, jobs, prepared, restored).model_dump())
    notify("recovery.completed", title,
           f"recovery {title} completed in {sum(stages.values()):.1f} s",
           {"artifact": report["artifact_key"]})
    return report


def restore_options(job: dict[str, Any], assessed: dict[str, Any]) -> dict[str, Any]:
    """The job's restore options plus a point-in-time replay; a kind whose restore runs its
    own server (PostgreSQL physical) keeps it up for SQL smoke checks (stopped after them) or
    as the new primary on failover (``Source.serving_options``)."""
    options = {**(job.get("options") or {}), **(assessed.get("replay_options") or {})}
    kind = registry.get(assessed["kind"])
    return options | kind.serving_options(
        job["dest"], failover=bool(job.get("failover")) and kind.fails_over,
        sql_checks=any("sql" in c for c in job.get("smoke") or []))


def repoint(restored: dict[str, Any]) -> str:
    """Where clients of a promoted PostgreSQL cluster connect now: host (its socket
    directory) and port, data directory, timeline."""
    server = restored.get("server") or {}
    return (f"host={server.get('socket_dir')} port={server.get('port')}: the cluster in "
            f"{restored.get('datadir')} (listen_addresses is empty until you set it; then "
            f"host=<this machine>), timeline {restored.get('new_timeline')} from LSN "
            f"{restored.get('promoted_lsn')}")


def runbook_job(source: str, stop_service: str | None,
                smoke_checks: list[dict[str, Any]] | None, fresh: bool) -> dict[str, Any]:
    """The run's stop command and smoke checks, else the platform file's for ``source``."""
    book = runbook.runbook_for(source)
    stop = stop_service if stop_service is not None else book.get("stop_service")
    return {"stop_command": stop,
            "start_command": book.get("start_service") if stop == book.get("stop_service")
            else None,
            "smoke": smoke_checks if smoke_checks is not None else book.get("smoke"),
            "fresh_backup": fresh}


@flow(name="recover-files", log_prints=True, timeout_seconds=RECOVERY_TIMEOUT_S)
def recover_files(source: str, target_dir: str | None = None, snapshot: str = "latest",
                  at: datetime | None = None, from_target: str = "primary",
                  replace: bool = False, include: list[str] | None = None,
                  objectives: str | None = "default", stop_service: str | None = None,
                  smoke_checks: list[dict[str, Any]] | None = None,
                  fresh_backup: bool = True, fresh_to: str | None = None) -> dict[str, Any]:
    """Restore a files-like source (one whose restore target is a directory): in place by
    default, into staging beside each directory, checked, then swapped in; what each held is
    kept beside it (``<dir>.before-restore-<time>``, the undo).

    Args:
        source: source block reference, kind/name (files/docs)
        target_dir: directory to restore the source path's contents into (a one-path source;
            several paths keep their absolute paths under it); empty: the source block's
            restore_target, else every path where it was backed up from
        snapshot: latest, or a snapshot id (or unique prefix; a safety snapshot id undoes a
            recovery)
        at: with snapshot=latest, the newest snapshot at or before this time (ISO 8601, UTC
            when no offset); the post-mortem names the snapshot chosen
        from_target: repository target block to restore from
        replace: restore over a non-empty directory (its contents are kept beside it)
        include: only these paths (globs) of the snapshot
        objectives: recovery objectives block the measured RTO/RPO are compared with
        stop_service: command run before anything is overwritten (empty: the platform file's
            stop_service for this source, if any)
        smoke_checks: checks after the restore, e.g. [{"http": "http://app/health"}] (empty:
            the platform file's smoke checks for this source)
        fresh_backup: after success, back the source up again and read the backup back
        fresh_to: repository target of that backup (empty: from_target)
    """
    src = load_source(source)
    if not src.source().target_is_path:
        raise ConfigError(f"{source} is a {src.source_kind} source: use recover-database")
    dest = target_dir or src.restore_target or src.source().in_place_target(src.settings())
    job = {"source": source, "target": from_target, "dest": dest, "snapshot": snapshot,
           "at": _iso(at), "replace": replace, "include": include,
           "options": src.source().recovery_options(dest), "fresh_to": fresh_to,
           **runbook_job(source, stop_service, smoke_checks, fresh_backup)}
    with flow_repositories():
        return recover(f"recover-files-{source.rpartition('/')[2]}", [job], objectives)


@flow(name="recover-database", log_prints=True, timeout_seconds=RECOVERY_TIMEOUT_S)
def recover_database(source: str, target: str | None = None, snapshot: str = "latest",
                     at: datetime | None = None, from_target: str = "primary",
                     replace: bool = False, options: dict[str, Any] | None = None,
                     objectives: str | None = "default", target_lsn: str | None = None,
                     target_xid: str | None = None, target_name: str | None = None,
                     failover: bool = False, stop_service: str | None = None,
                     smoke_checks: list[dict[str, Any]] | None = None,
                     fresh_backup: bool = True, fresh_to: str | None = None
                     ) -> dict[str, Any]:
    """Restore a database-like source (PostgreSQL, Neo4j, Redis, S3 bucket, ...) in place by
    default (its server, cluster or bucket); the restore is chosen by the snapshot's source
    kind. A target it cannot keep aside gets a safety snapshot first (the undo).

    Args:
        source: source block reference, kind/name (postgres/main)
        target: URL, DSN or directory to restore into; empty: the block's restore_target,
            else where the source lives (its server, data directory or bucket)
        snapshot: latest, or a snapshot id (or unique prefix; a safety snapshot id undoes a
            recovery)
        at: recover to this time (ISO 8601, UTC when no offset): PostgreSQL physical replays
            WAL to exactly that moment; other kinds take the newest snapshot at or before it
        from_target: repository target block to restore from
        replace: overwrite what the target holds, after a safety snapshot of the target
        options: the kind's restore options (its --restore-option keys)
        objectives: recovery objectives block the measured RTO/RPO are compared with
        target_lsn: PostgreSQL: replay WAL up to this LSN (e.g. 0/3000060)
        target_xid: PostgreSQL: replay up to and including this transaction id
        target_name: PostgreSQL: replay up to this restore point (pg_create_restore_point)
        failover: PostgreSQL physical: promote the restored cluster as the new primary, keep
            it running, archive its new timeline and print what to repoint
        stop_service: command run before anything is overwritten; "pg_ctl" stops the managed
            cluster in the target data directory (empty: the platform file's, if any)
        smoke_checks: checks after the restore, e.g. [{"sql": "SELECT count(*) FROM orders",
            "expect": 42}], [{"redis_key": "config:version"}], [{"cypher": "MATCH (n) RETURN
            count(n)"}], [{"http": "http://app/health"}] (empty: the platform file's)
        fresh_backup: after success, back the source up again and read the backup back
        fresh_to: repository target of that backup (empty: from_target)
    """
    src = load_source(source)
    if src.source().target_is_path:
        raise ConfigError(f"{source} is a {src.source_kind} source: use recover-files")
    dest = target or src.restore_target or src.source().in_place_target(src.settings())
    if not dest:
        raise ConfigError(f"no restore target for {source}: pass target or set restore_target "
                          "(this source does not say where it lives)")
    point = {k: v for k, v in (("time", _iso(at)), ("lsn", target_lsn), ("xid", target_xid),
                               ("name", target_name)) if v}
    job = {"source": source, "target": from_target, "dest": dest, "snapshot": snapshot,
           "at": _iso(at), "point": point, "replace": replace, "options": options or {},
           "failover": failover, "fresh_to": fresh_to,
           **runbook_job(source, stop_service, smoke_checks, fresh_backup)}
    with flow_repositories():
        return recover(f"recover-database-{source.rpartition('/')[2]}", [job], objectives,
                       incident_at=_iso(at))


def _iso(moment: datetime | str | None) -> str | None:
    if moment is None or moment == "":
        return None
    when = parse_time(moment)
    return when.isoformat() if when else None


class RecoveryFailed(RuntimeError):
    """One or more sources of a disaster recovery failed (each one's own run says why)."""


def host_deployment(flow_name: str, host: str) -> str | None:
    """``flow/flow@host`` when that per-host deployment exists on the server, else None."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    name = f"{flow_name}/{flow_name}@{host}"
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None
    return name


@task(name="source-recovery", task_run_name="recover-{source}", cache_policy=NO_CACHE)
def recover_source(source: str, flow_name: str, parameters: dict[str, Any],
                   runs_on: str | None = None) -> dict[str, Any]:
    """Recover one source: on its host's worker (``runs_on`` and a ``flow@host`` deployment),
    else as a subflow here. Raises when the recovery failed."""
    run_name = f"{flow_name}-{source.rpartition('/')[2]}"
    deployment = host_deployment(flow_name, runs_on) if runs_on else None
    if deployment is None:
        if runs_on:
            get_run_logger().warning("no deployment %s/%s@%s: recovering %s here",
                                     flow_name, flow_name, runs_on, source)
        local = {"recover-files": recover_files, "recover-database": recover_database}
        report = local[flow_name].with_options(flow_run_name=run_name)(**parameters)
        return {"source": source, "runs_on": None, **report}
    from prefect.deployments import run_deployment

    run = run_deployment(name=deployment, parameters=parameters, flow_run_name=run_name,
                         timeout=None)
    if run.state is None or not run.state.is_completed():
        state = run.state.name if run.state else "unknown"
        raise RecoveryFailed(f"{deployment} run {run.name} ended {state}: "
                             f"{(run.state.message if run.state else '') or 'no message'}")
    return {"source": source, "runs_on": runs_on, "flow_run": str(run.id),
            "flow_run_name": run.name, "results": [], "anomalies": [],
            "artifact_key": artifact_key("post-mortem", run_name)}


DEFAULT_PRIORITY = ["security", "database", "files", "system"]


@flow(name="disaster-recovery", log_prints=True, timeout_seconds=RECOVERY_TIMEOUT_S + 3600,
      task_runner=ThreadPoolTaskRunner(max_workers=8))
def disaster_recovery(site: str = "default", from_role: Role = "secondary",
                      target_root: str | None = None, targets: dict[str, str] | None = None,
                      at: datetime | None = None, replace: bool = False,
                      priority: list[str] | None = None, failover: bool = False,
                      fresh_backup: bool = True) -> dict[str, Any]:
    """Restore every source of a site from its secondary (or tertiary) tier: class by class in
    priority order, the sources of one class at once, each in its own recovery run (on the
    source's host when it names one).

    Args:
        site: site block naming the sources and the targets of each tier
        from_role: which tier to restore from: primary, secondary or tertiary
        target_root: restore each path-like source under target_root/<source name>; a
            source of another kind then needs its own entry in targets
        targets: source name -> restore target (overrides target_root for that source);
            a source in neither restores where it lives (in place)
        at: recover to this time (ISO 8601): PostgreSQL replays WAL to it, other kinds take
            the newest snapshot at or before it
        replace: overwrite non-empty targets after safety snapshots
        priority: objective classes in restore order (default security, database, files,
            system); classes not named come last, in one group
        failover: promote restored PostgreSQL clusters (physical) as the new primaries
        fresh_backup: after each source's success, back it up again into the site's
            primary (created again when it is gone) and read the backup back
    """
    try:
        spec = StrongroomSite.load(site)
    except ValueError:
        raise ConfigError(f"no site block named {site!r}") from None
    tiers = {"secondary": spec.secondary, "tertiary": spec.tertiary, "primary": [spec.primary]}
    if from_role not in tiers:
        raise ConfigError(f"from_role must be primary, secondary or tertiary, not {from_role!r}")
    if not tiers[from_role]:
        raise ConfigError(f"site {site!r} has no {from_role} target")
    repo_target = tiers[from_role][0]
    load_target(repo_target)  # fail early, by name, if the target block is missing
    order = list(priority or DEFAULT_PRIORITY)
    jobs = []
    for ref in spec.sources:
        src = load_source(ref)
        dest = site_target(src, target_root, targets or {})
        common = {"source": ref, "snapshot": "latest", "at": _iso(at),
                  "from_target": repo_target, "replace": replace,
                  "objectives": spec.objectives, "fresh_backup": fresh_backup,
                  "fresh_to": spec.primary}
        cls = src.objectives_class()
        rank = order.index(cls) if cls in order else len(order)
        if src.source().target_is_path:
            jobs.append((rank, ref, "recover-files", common | {"target_dir": dest},
                         src.runs_on))
        else:
            extra = {"failover": True} if failover and src.source().fails_over else {}
            jobs.append((rank, ref, "recover-database",
                         common | {"target": dest, "options": {}} | extra, src.runs_on))
    if not jobs:
        raise ConfigError(f"site {site!r} has no sources")
    reports, failures, stages = [], {}, {}
    began = time.monotonic()
    for rank in sorted({j[0] for j in jobs}):
        group = [j for j in jobs if j[0] == rank]
        label = order[rank] if rank < len(order) else "other classes"
        started = time.monotonic()
        runs = [recover_source.submit(ref, name, params, host)
                for _, ref, name, params, host in group]
        wait(runs)
        for (_, ref, *_rest), run in zip(group, runs, strict=True):
            outcome = run.result(raise_on_failure=False)
            if run.state.is_completed():
                reports.append(since_disaster_recovery_began(outcome, time.monotonic() - began))
            else:
                failures[ref] = _one_line(outcome) if isinstance(outcome, BaseException) \
                    else (run.state.message or run.state.name)
        stages[f"{label} ({len(group)} at once)"] = round(time.monotonic() - started, 3)
    title = f"disaster-recovery-{site}"
    class_order = [order[r] if r < len(order) else "other classes"
                   for r in sorted({j[0] for j in jobs})]
    results = [r for report in reports for r in report.get("results", [])]
    anomalies = [a for report in reports for a in report.get("anomalies", [])]
    anomalies += [f"{r['source']}: recovered on {r['runs_on']} by {r['flow_run_name']} (see its "
                  "post-mortem)" for r in reports if r.get("runs_on")]
    error = "; ".join(f"{ref}: {why}" for ref, why in failures.items()) or None
    total = round(sum(stages.values()), 3)
    with suppress(Exception):  # reporting must never hide the outcome
        key = artifact_key("post-mortem", title) if not error else artifact_key(
            "post-mortem", title, "failed", f"{datetime.now(UTC):%Y%m%dt%H%M%S%f}")
        plan = UndoPlan(title=title, steps=[
            UndoStep.model_validate(step) for report in reports
            for step in (report.get("undo") or {}).get("steps", [])])
        create_markdown_artifact(
            post_mortem_markdown(title, stages, results, anomalies, error,
                                 failed_stage="recover" if error else None,
                                 left_behind=[f"{ref}: see its own post-mortem"
                                              for ref in failures])
            + f"\n\nClasses in order: {', '.join(class_order)}.\n" + plan.markdown(key),
            key=key, description=f"Post-mortem: {title}" + (" (FAILED)" if error else ""))
    if failures:
        with suppress(Exception):
            notify("recovery.failed", title, f"recovery {title} failed: {error}",
                   level="error")
        raise RecoveryFailed(f"{len(failures)} of {len(jobs)} sources failed: {error}")
    notify("recovery.completed", title, f"recovery {title} completed in {total:.1f} s")
    return {"site": site, "from": repo_target, "results": results, "anomalies": anomalies,
            "sources": {r["source"]: r for r in reports}, "stages": stages, "ok": True,
            "wall_s": total, "order": class_order}


def since_disaster_recovery_began(report: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """A source's report with its RTO measured from the start of the disaster recovery (its
    class waited for the classes before it), not from the start of its own run."""
    results = []
    for r in report.get("results", []):
        r = dict(r)
        r["rto_own_run_s"] = r.get("rto_s")
        r["rto_s"] = round(elapsed, 3)
        results.append(r)
    return {**report, "results": results}


def site_target(src: Any, target_root: str | None, targets: dict[str, str]) -> str | None:
    """Where a disaster recovery restores ``src``: its entry in ``targets``, else under
    ``target_root`` (path-like sources only), else its block's restore_target, else in
    place (None: the recovery flow decides)."""
    if src.source_name in targets:
        return targets[src.source_name]
    if target_root:
        if not src.source().target_is_path:
            raise ConfigError(f"source {src.source_name} is a {src.source_kind} source: "
                              "target_root is for directories; name its target in targets "
                              "(or leave both empty to restore every source in place)")
        return str(Path(target_root) / src.source_name)
    return src.restore_target


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:500]
