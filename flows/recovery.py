"""Recovery flows in the seed's five stages: assess -> prepare -> restore -> verify -> post-mortem.

Each stage is a named task (one run per source), timed by the flow; the post-mortem artifact
records the timings, measured RTO/RPO against the objectives, what was restored, and anomalies.
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

from blocks.loading import load_source, load_target
from blocks.policies import RecoveryObjectives
from blocks.site import StrongroomSite
from flows.report import post_mortem_markdown
from strongroom.errors import ConfigError
from tasks.notify import notify
from tasks.progress import artifact_key
from tasks.recovery import assess, parse_time, prepare, record_rate, restore, verify_restore

STAGES = ("assess", "prepare", "restore", "verify", "post-mortem")


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


@flow(name="recover-files", log_prints=True)
def recover_files(source: str, target_dir: str | None = None, snapshot: str = "latest",
                  at: str | None = None, from_target: str = "primary", replace: bool = False,
                  include: list[str] | None = None,
                  objectives: str | None = "default") -> dict[str, Any]:
    """Restore a files source into ``target_dir`` (default: the source's restore_target):
    the latest snapshot, a snapshot id, or the newest at or before ``at``."""
    src = load_source(source)
    if src.source_kind != "files":
        raise ConfigError(f"{source} is a {src.source_kind} source: use recover-database")
    dest = target_dir or src.restore_target
    if not dest:
        raise ConfigError(f"no restore target for {source}: pass target_dir or set "
                          "restore_target")
    job = {"source": source, "target": from_target, "dest": dest, "snapshot": snapshot,
           "at": at, "replace": replace, "include": include}
    return recover(f"recover-files-{source.rpartition('/')[2]}", [job], objectives)


@flow(name="recover-database", log_prints=True)
def recover_database(source: str, target: str | None = None, snapshot: str = "latest",
                     at: str | None = None, from_target: str = "primary",
                     replace: bool = False, options: dict[str, Any] | None = None,
                     objectives: str | None = "default") -> dict[str, Any]:
    """Restore a database source; the restorer is chosen by the snapshot's source kind."""
    src = load_source(source)
    if src.source_kind == "files":
        raise ConfigError(f"{source} is a files source: use recover-files")
    dest = target or src.restore_target
    if not dest:
        raise ConfigError(f"no restore target for {source}: pass target or set restore_target")
    job = {"source": source, "target": from_target, "dest": dest, "snapshot": snapshot,
           "at": at, "replace": replace, "options": options or {}}
    return recover(f"recover-database-{source.rpartition('/')[2]}", [job], objectives)


@flow(name="disaster-recovery", log_prints=True)
def disaster_recovery(site: str = "default", from_role: str = "secondary",
                      target_root: str | None = None, targets: dict[str, str] | None = None,
                      at: str | None = None, replace: bool = False) -> dict[str, Any]:
    """Restore every source of a site from its secondary (or tertiary) tier."""
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
        jobs.append({"source": ref, "target": repo_target, "dest": dest, "snapshot": "latest",
                     "at": at, "replace": replace, "options": {}})
    if not jobs:
        raise ConfigError(f"site {site!r} has no sources")
    return recover(f"disaster-recovery-{site}", jobs, spec.objectives)
