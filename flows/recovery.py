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
from flows.report import post_mortem_markdown
from strongroom.errors import ConfigError
from tasks.notify import notify
from tasks.progress import artifact_key
from tasks.recovery import assess, parse_time, prepare, record_rate, restore, verify_restore
from tasks.repos import flow_repositories

STAGES = ("assess", "prepare", "restore", "verify", "post-mortem")
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
                anomalies: list[str], error: str | None = None) -> dict[str, Any]:
    """Write the post-mortem artifact; feed the measured throughput into later estimates."""
    notes = list(anomalies)
    objs = _objectives(objectives, notes)
    incident = parse_time(incident_at) or datetime.now(UTC)
    rto_s = sum(stages.values())
    results = []
    for i, a in enumerate(assessed):
        obj = objs.for_class(a["class"])
        snap_time = datetime.fromisoformat(a["snapshot"]["time"])
        dest = prepared[i]["dest"] if i < len(prepared) else "-"
        safety = prepared[i].get("safety_snapshot") if i < len(prepared) else None
        written = restored[i] if i < len(restored) else {}
        checked = verified[i] if i < len(verified) else {}
        rpo_s = max(0.0, (incident - snap_time).total_seconds())
        results.append({"source": a["source_name"], "snapshot": a["snapshot"]["id"],
                        "snapshot_time": a["snapshot"]["time"], "bytes": a["bytes"],
                        "dest": dest, "safety_snapshot": safety,
                        "restored": {k: v for k, v in written.items()
                                     if k in ("files", "bytes", "keys_copied", "tables",
                                              "objects", "mode")},
                        "verified": checked.get("checked"),
                        "estimate_s": a["estimate_s"], "estimate_basis": a["estimate_basis"],
                        "rto_s": round(rto_s, 3),
                        "rto_objective_s": obj.rto.total_seconds(), "rpo_s": round(rpo_s, 1),
                        "rpo_objective_s": obj.rpo.total_seconds()})
        if rto_s > obj.rto.total_seconds():
            notes.append(f"{a['source_name']}: RTO objective missed")
        if rpo_s > obj.rpo.total_seconds():
            notes.append(f"{a['source_name']}: RPO objective missed (recovery point "
                         f"{round(rpo_s / 60)} min before the incident)")
        if a["estimate_s"] and rto_s > 3 * a["estimate_s"] + 60:
            notes.append(f"{a['source_name']}: recovery took over 3x the estimate")
    for p in prepared:
        notes += p.get("anomalies", [])
    markdown = post_mortem_markdown(title, stages, results, notes, error)
    key = artifact_key("post-mortem", title)
    create_markdown_artifact(markdown, key=key, description=f"Post-mortem: {title}")
    if not error and restored:
        record_rate(sum(a["bytes"] for a in assessed), stages.get("restore", 0.0))
    return {"artifact_key": key, "results": results, "anomalies": notes,
            "stages": stages, "ok": error is None}


def recover(title: str, jobs: list[dict[str, Any]], objectives: str | None,
            incident_at: str | None = None) -> dict[str, Any]:
    """Run the five stages over ``jobs`` (source, target, dest, snapshot, at, replace, ...)."""
    incident = incident_at or (jobs[0].get("at") if jobs else None) or \
        datetime.now(UTC).isoformat()
    stages: dict[str, float] = {}
    assessed: list[dict[str, Any]] = []
    prepared: list[dict[str, Any]] = []
    restored: list[dict[str, Any]] = []
    verified: list[dict[str, Any]] = []
    anomalies: list[str] = []
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
                                   job.get("at")))
        lap("assess")
        for job in jobs:
            prepared.append(prepare(job["source"], job["target"], job["dest"],
                                    job.get("replace", False)))
        lap("prepare")
        for job, a in zip(jobs, assessed, strict=True):
            restored.append(restore(job["source"], job["target"], a["snapshot"]["id"],
                                    job["dest"], job.get("replace", False), job.get("include"),
                                    job.get("options"), a["bytes"]))
        lap("restore")
        for job, a, r in zip(jobs, assessed, restored, strict=True):
            verified.append(verify_restore(job["source"], job["target"], a["snapshot"]["id"],
                                           job["dest"], job.get("include"), r))
        lap("verify")
    except Exception as exc:
        error = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
        lap(STAGES[len(stages)])
        with suppress(Exception):  # reporting must never hide the failure itself
            post_mortem(title, stages, assessed, prepared, restored, verified, incident,
                        objectives, anomalies, error)
            notify("recovery.failed", title, f"recovery {title} failed: {error}",
                   level="error")
        raise
    report = post_mortem(title, stages, assessed, prepared, restored, verified, incident,
                         objectives, anomalies)
    notify("recovery.completed", title,
           f"recovery {title} completed in {sum(stages.values()):.1f} s",
           {"artifact": report["artifact_key"]})
    return report


@flow(name="recover-files", log_prints=True, timeout_seconds=RECOVERY_TIMEOUT_S)
def recover_files(source: str, target_dir: str | None = None, snapshot: str = "latest",
                  at: str | None = None, from_target: str = "primary", replace: bool = False,
                  include: list[str] | None = None,
                  objectives: str | None = "default") -> dict[str, Any]:
    """Restore a files-like source (one whose restore target is a directory) into a directory.

    Args:
        source: source block reference, kind/name (files/docs)
        target_dir: directory to restore into; empty: the source block's restore_target
        snapshot: latest, or a snapshot id (or unique prefix)
        at: with snapshot=latest, the newest snapshot at or before this ISO 8601 time
        from_target: repository target block to restore from
        replace: restore into a non-empty directory after a safety snapshot of it
        include: only these paths (globs) of the snapshot
        objectives: recovery objectives block the measured RTO/RPO are compared with
    """
    src = load_source(source)
    if not src.source().target_is_path:
        raise ConfigError(f"{source} is a {src.source_kind} source: use recover-database")
    dest = target_dir or src.restore_target
    if not dest:
        raise ConfigError(f"no restore target for {source}: pass target_dir or set "
                          "restore_target")
    job = {"source": source, "target": from_target, "dest": dest, "snapshot": snapshot,
           "at": at, "replace": replace, "include": include}
    with flow_repositories():
        return recover(f"recover-files-{source.rpartition('/')[2]}", [job], objectives)


@flow(name="recover-database", log_prints=True, timeout_seconds=RECOVERY_TIMEOUT_S)
def recover_database(source: str, target: str | None = None, snapshot: str = "latest",
                     at: str | None = None, from_target: str = "primary",
                     replace: bool = False, options: dict[str, Any] | None = None,
                     objectives: str | None = "default") -> dict[str, Any]:
    """Restore a database-like source (PostgreSQL, Neo4j, Redis, S3 bucket, ...); the restore
    is chosen by the snapshot's source kind.

    Args:
        source: source block reference, kind/name (postgres/main)
        target: URL, DSN or directory to restore into; empty: the block's restore_target
        snapshot: latest, or a snapshot id (or unique prefix)
        at: with snapshot=latest, the newest snapshot at or before this ISO 8601 time
        from_target: repository target block to restore from
        replace: overwrite what the target holds, after a safety snapshot of the source
        options: the kind's restore options (its --restore-option keys)
        objectives: recovery objectives block the measured RTO/RPO are compared with
    """
    src = load_source(source)
    if src.source().target_is_path:
        raise ConfigError(f"{source} is a {src.source_kind} source: use recover-files")
    dest = target or src.restore_target
    if not dest:
        raise ConfigError(f"no restore target for {source}: pass target or set restore_target")
    job = {"source": source, "target": from_target, "dest": dest, "snapshot": snapshot,
           "at": at, "replace": replace, "options": options or {}}
    with flow_repositories():
        return recover(f"recover-database-{source.rpartition('/')[2]}", [job], objectives)


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


@flow(name="disaster-recovery", log_prints=True, timeout_seconds=RECOVERY_TIMEOUT_S + 3600,
      task_runner=ThreadPoolTaskRunner(max_workers=8))
def disaster_recovery(site: str = "default", from_role: Role = "secondary",
                      target_root: str | None = None, targets: dict[str, str] | None = None,
                      at: str | None = None, replace: bool = False) -> dict[str, Any]:
    """Restore every source of a site from its secondary (or tertiary) tier, all sources at
    once, each in its own recovery run (on the source's host when it names one).

    Args:
        site: site block naming the sources and the targets of each tier
        from_role: which tier to restore from: primary, secondary or tertiary
        target_root: restore each source under target_root/<source name>
        targets: source name -> restore target (overrides target_root for that source)
        at: restore the newest snapshots at or before this ISO 8601 time
        replace: overwrite non-empty targets after safety snapshots
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
    jobs = []
    for ref in spec.sources:
        src = load_source(ref)
        dest = (targets or {}).get(src.source_name) or (
            str(Path(target_root) / src.source_name) if target_root else src.restore_target)
        if not dest:
            raise ConfigError(f"no restore target for source {src.source_name}: give "
                              "target_root or targets")
        common = {"source": ref, "snapshot": "latest", "at": at, "from_target": repo_target,
                  "replace": replace, "objectives": spec.objectives}
        if src.source().target_is_path:
            jobs.append((ref, "recover-files", common | {"target_dir": dest}, src.runs_on))
        else:
            jobs.append((ref, "recover-database", common | {"target": dest, "options": {}},
                         src.runs_on))
    if not jobs:
        raise ConfigError(f"site {site!r} has no sources")
    started = time.monotonic()
    runs = [recover_source.submit(ref, name, params, host) for ref, name, params, host in jobs]
    wait(runs)
    reports, failures = [], {}
    for (ref, *_rest), run in zip(jobs, runs, strict=True):
        outcome = run.result(raise_on_failure=False)
        if run.state.is_completed():
            reports.append(outcome)
        else:
            failures[ref] = _one_line(outcome) if isinstance(outcome, BaseException) else \
                (run.state.message or run.state.name)
    title = f"disaster-recovery-{site}"
    stages = {"recover (all sources at once)": round(time.monotonic() - started, 3)}
    results = [r for report in reports for r in report.get("results", [])]
    anomalies = [a for report in reports for a in report.get("anomalies", [])]
    anomalies += [f"{r['source']}: recovered on {r['runs_on']} by {r['flow_run_name']} (see its "
                  "post-mortem)" for r in reports if r.get("runs_on")]
    error = "; ".join(f"{ref}: {why}" for ref, why in failures.items()) or None
    with suppress(Exception):  # reporting must never hide the outcome
        create_markdown_artifact(post_mortem_markdown(title, stages, results, anomalies, error),
                                 key=artifact_key("post-mortem", title),
                                 description=f"Post-mortem: {title}")
    if failures:
        with suppress(Exception):
            notify("recovery.failed", title, f"recovery {title} failed: {error}",
                   level="error")
        raise RecoveryFailed(f"{len(failures)} of {len(jobs)} sources failed: {error}")
    notify("recovery.completed", title,
           f"recovery {title} completed in {stages['recover (all sources at once)']:.1f} s")
    return {"site": site, "from": repo_target, "results": results, "anomalies": anomalies,
            "sources": {r["source"]: r for r in reports}, "stages": stages, "ok": True}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:500]
