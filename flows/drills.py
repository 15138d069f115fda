"""Recovery drills: rehearse recoveries on a schedule, into scratch targets, and keep the record.

* ``drill`` (quarterly, one deployment per source): the newest recovery point of one source is
  restored into a scratch target the drill creates and removes (see
  :mod:`tasks.scratch`), through the same stages and verification as a real recovery
  (:func:`flows.recovery.recover`: assess, prepare, restore, verify-restore, post-mortem); the
  measured RTO and the RPO the schedules actually delivered are compared with the objectives.
* ``disaster-drill`` (semi-annual): a simulated disaster: every source of the site from the
  secondary tier into scratch targets, classes in priority order (security, database, files,
  system), the sources of one class in parallel.

A drill never touches a production target; one that cannot create its scratch target fails
with that reason. Each drill leaves a post-mortem artifact (``post-mortem-drill-<name>``), a
drill summary artifact (``drill-<name>``) and a record in the drill history (the Prefect
Variable ``strongroom_drill_history``; format in :mod:`tasks.drill_history`).
"""

from __future__ import annotations

import time
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from blocks.loading import load_source, load_target
from blocks.policies import RecoveryObjectives
from blocks.site import StrongroomSite
from blocks.targets import Role
from flows.recovery import recover
from flows.report import human_duration
from strongroom.errors import ConfigError
from tasks.drill_history import INTERVAL_DAYS, record_drill
from tasks.notify import notify
from tasks.progress import artifact_key
from tasks.repos import flow_repositories
from tasks.scratch import pick_drill_point, scratch_target

# the simulated disaster restores classes in this order; sources of one class in parallel
PRIORITY = ("security", "database", "files", "system")
DRILL_TIMEOUT_S = 24 * 3600


class DrillFailed(RuntimeError):
    """A drill did not restore and verify (its post-mortem and history record say why)."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:500]


def _run_id() -> str | None:
    with suppress(Exception):
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    return None


def _objectives(name: str | None) -> RecoveryObjectives:
    if name:
        with suppress(ValueError):
            return RecoveryObjectives.load(name)
    return RecoveryObjectives()


def next_due(started: datetime, scope: str) -> str:
    """The date the next drill of this scope is due (quarterly / semi-annual)."""
    return (started + timedelta(days=INTERVAL_DAYS[scope])).date().isoformat()


def drill_markdown(record: dict[str, Any], scratch: str | None, extra: list[str]) -> str:
    """The drill summary artifact: outcome, RTO/RPO against objectives, integrity, next date."""
    status = "passed" if record["ok"] else "FAILED"

    def versus(value: float | None, objective: float | None, met: bool | None) -> str:
        if value is None:
            return "not measured"
        goal = f" / {human_duration(objective)}" if objective else ""
        verdict = "" if met is None else (" met" if met else " MISSED")
        return f"{human_duration(value)}{goal}{verdict}"

    lines = [f"# Recovery drill: {record['name']} ({status})", ""]
    if record.get("error"):
        lines += [f"**Error:** {record['error']}", ""]
    rto = versus(record.get("rto_s"), record.get("rto_objective_s"), record.get("rto_met"))
    rpo = versus(record.get("rpo_s"), record.get("rpo_objective_s"), record.get("rpo_met"))
    lines += ["| | |", "|---|---|",
              f"| scope | {record['scope']} |",
              f"| restored from | {record['from']} |",
              f"| recovery point | `{record.get('snapshot') or '-'}` |",
              f"| scratch target | {scratch or 'not created'} |",
              f"| measured RTO / objective | {rto} |",
              f"| delivered RPO / objective | {rpo} |",
              f"| integrity verified | {'yes' if record.get('verified') else 'no'} |",
              f"| started (UTC) | {record['started'][:19]} |",
              f"| next drill due | {record['next_due']} |", ""]
    if extra:
        lines += ["## Notes", "", *[f"- {e}" for e in extra]]
    return "\n".join(lines)


def _finish(record: dict[str, Any], scratch: str | None, notes: list[str]) -> dict[str, Any]:
    record["finished"] = datetime.now(UTC).isoformat()
    key = artifact_key("drill", record["name"])
    record["artifact"] = key
    with suppress(Exception):  # the record matters more than the artifact
        create_markdown_artifact(drill_markdown(record, scratch, notes), key=key,
                                 description=f"Recovery drill: {record['name']}")
    record_drill(record)
    return record


@flow(name="drill", log_prints=True, timeout_seconds=DRILL_TIMEOUT_S)
def drill(source: str, from_target: str = "primary", objectives: str | None = "default",
          scratch_uri: str | None = None, workdir: str | None = None) -> dict[str, Any]:
    """Rehearse the recovery of one source into a scratch target; record the outcome.

    Args:
        source: source block reference, kind/name (files/docs, redis/cache)
        from_target: repository target block to restore from
        objectives: recovery objectives block the measured RTO/RPO are compared with
        scratch_uri: a scratch server the drill may overwrite, for kinds that cannot create
            their own (Neo4j Community); from the platform file
        workdir: where scratch directories and servers live (default: a temp directory)
    """
    started = datetime.now(UTC)
    clock = time.monotonic()
    src = load_source(source)
    cls = src.objectives_class()
    obj = _objectives(objectives).for_class(cls)
    title = f"drill-{src.source_name}"
    record: dict[str, Any] = {
        "id": _run_id(), "scope": "source", "name": src.source_name, "kind": src.source_kind,
        "class": cls, "from": from_target, "started": started.isoformat(), "finished": None,
        "ok": False, "error": None, "snapshot": None, "verified": False, "rto_s": None,
        "rto_objective_s": obj.rto.total_seconds(), "rpo_s": None,
        "rpo_objective_s": obj.rpo.total_seconds(), "rto_met": None, "rpo_met": None,
        "next_due": next_due(started, "source"), "artifact": None}
    notes: list[str] = []
    scratch_desc: str | None = None
    try:
        load_target(from_target)
        with flow_repositories():
            point = pick_drill_point(source, from_target)
            record["snapshot"] = point["short_id"]
            record["rpo_s"] = point["rpo_s"]
            if point["rpo_s"] is not None:
                record["rpo_met"] = point["rpo_s"] <= record["rpo_objective_s"]
            overrides = {"scratch_uri": scratch_uri} if scratch_uri else {}
            made = time.monotonic()
            with scratch_target(source, from_target, point["snapshot_id"], workdir,
                                overrides) as scratch:
                scratch_desc = scratch.description
                notes.append(f"scratch target created in {human_duration(time.monotonic() - made)}"
                             f": {scratch.description}")
                job = {"source": source, "target": from_target, "dest": scratch.target,
                       "snapshot": point["snapshot_id"], "replace": False,
                       "options": scratch.options}
                report = recover(title, [job], objectives, incident_at=started.isoformat())
    except Exception as exc:
        record["error"] = _one_line(exc)
        record["rto_s"] = round(time.monotonic() - clock, 3)
        if scratch_desc is None:  # recover() never ran: leave the post-mortem ourselves
            with suppress(Exception):
                from flows.report import post_mortem_markdown

                create_markdown_artifact(
                    post_mortem_markdown(title, {"prepare scratch target": record["rto_s"]},
                                         [], [], record["error"]),
                    key=artifact_key("post-mortem", title), description=f"Post-mortem: {title}")
        _finish(record, scratch_desc, notes)
        with suppress(Exception):
            notify("drill.failed", f"source.{src.source_name}",
                   f"recovery drill of {src.source_name} failed: {record['error']}",
                   level="error")
        raise DrillFailed(f"drill of {src.source_name} failed: {record['error']}") from None
    rto = round(time.monotonic() - clock, 3)
    result = (report.get("results") or [{}])[0]
    record.update(ok=True, verified=bool(result.get("verified")), rto_s=rto,
                  rto_met=rto <= record["rto_objective_s"])
    notes += report.get("anomalies", [])
    notes.append(f"post-mortem: {report.get('artifact_key')}")
    _finish(record, scratch_desc, notes)
    notify("drill.completed", f"source.{src.source_name}",
           f"recovery drill of {src.source_name} passed in {human_duration(rto)}",
           {"rto_s": rto, "rpo_s": record["rpo_s"]})
    return record


@task(name="source-drill", task_run_name="drill-{source}", cache_policy=NO_CACHE)
def drill_source(source: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """One source's drill as a subflow run (raises when it failed)."""
    name = source.rpartition("/")[2]
    return drill.with_options(flow_run_name=f"drill-{name}")(source=source, **parameters)


def priority_groups(classes: dict[str, str]) -> list[list[str]]:
    """Source refs grouped by class in :data:`PRIORITY` order (unknown classes last)."""
    order = {c: i for i, c in enumerate(PRIORITY)}
    groups: dict[int, list[str]] = {}
    for ref, cls in classes.items():
        groups.setdefault(order.get(cls, len(PRIORITY)), []).append(ref)
    return [groups[k] for k in sorted(groups)]


@flow(name="disaster-drill", log_prints=True, timeout_seconds=DRILL_TIMEOUT_S * 2,
      task_runner=ThreadPoolTaskRunner(max_workers=8))
def disaster_drill(site: str = "default", from_role: Role = "secondary",
                   scratch_uris: dict[str, str] | None = None,
                   workdir: str | None = None) -> dict[str, Any]:
    """Simulate losing the site: restore every source from the secondary tier into scratch
    targets, security first, then databases, files and system, in parallel within a class.

    Args:
        site: site block naming the sources and the targets of each tier
        from_role: tier to restore from: secondary (default), tertiary or primary
        scratch_uris: source name -> scratch server URL, for kinds that cannot create one
        workdir: where scratch directories and servers live (default: a temp directory)
    """
    started = datetime.now(UTC)
    clock = time.monotonic()
    try:
        spec = StrongroomSite.load(site)
    except ValueError:
        raise ConfigError(f"no site block named {site!r}") from None
    tiers = {"secondary": spec.secondary, "tertiary": spec.tertiary, "primary": [spec.primary]}
    if not tiers.get(from_role):
        raise ConfigError(f"site {site!r} has no {from_role} target")
    repo_target = tiers[from_role][0]
    blocks = {ref: load_source(ref) for ref in spec.sources}
    if not blocks:
        raise ConfigError(f"site {site!r} has no sources")
    record: dict[str, Any] = {
        "id": _run_id(), "scope": "site", "name": site, "kind": "site", "class": "site",
        "from": repo_target, "started": started.isoformat(), "finished": None, "ok": False,
        "error": None, "snapshot": None, "verified": False, "rto_s": None,
        "rto_objective_s": None, "rpo_s": None, "rpo_objective_s": None, "rto_met": None,
        "rpo_met": None, "next_due": next_due(started, "site"), "artifact": None}
    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    stages: list[str] = []
    for group in priority_groups({r: b.objectives_class() for r, b in blocks.items()}):
        t0 = time.monotonic()
        runs = {}
        for ref in group:
            uri = (scratch_uris or {}).get(blocks[ref].source_name)
            runs[ref] = drill_source.submit(ref, {"from_target": repo_target,
                                                  "objectives": spec.objectives,
                                                  "scratch_uri": uri, "workdir": workdir})
        wait(list(runs.values()))
        for ref, run in runs.items():
            outcome = run.result(raise_on_failure=False)
            if run.state.is_completed():
                results[ref] = outcome
            else:
                failures[ref] = _one_line(outcome) if isinstance(outcome, BaseException) \
                    else (run.state.message or run.state.name)
        cls = blocks[group[0]].objectives_class()
        stages.append(f"{cls}: {', '.join(blocks[r].source_name for r in group)} in "
                      f"{human_duration(time.monotonic() - t0)}")
    rto = round(time.monotonic() - clock, 3)
    rpos = [r["rpo_s"] for r in results.values() if r.get("rpo_s") is not None]
    record.update(ok=not failures, verified=bool(results) and not failures and all(
        r.get("verified") for r in results.values()), rto_s=rto,
        rpo_s=max(rpos) if rpos else None,
        rto_met=not failures and all(r.get("rto_met") for r in results.values()),
        rpo_met=not failures and all(r.get("rpo_met") for r in results.values()),
        error="; ".join(f"{ref}: {why}" for ref, why in failures.items()) or None)
    notes = [f"order: {s}" for s in stages]
    notes += [f"{r['name']}: RTO {human_duration(r['rto_s'])}, RPO "
              f"{human_duration(r['rpo_s'])}, verified {r['verified']}"
              for r in results.values()]
    _finish(record, f"scratch targets of {len(blocks)} sources", notes)
    if failures:
        with suppress(Exception):
            notify("drill.failed", f"site.{site}", f"disaster drill of {site} failed: "
                   f"{record['error']}", level="error")
        raise DrillFailed(f"{len(failures)} of {len(blocks)} sources failed: {record['error']}")
    notify("drill.completed", f"site.{site}",
           f"disaster drill of {site} passed in {human_duration(rto)}")
    return record | {"sources": results, "order": stages}


def drill_overdue(record: dict[str, Any] | None, today: date | None = None) -> bool:
    """True when there is no drill record or its next drill date has passed."""
    if not record or not record.get("next_due"):
        return True
    return date.fromisoformat(record["next_due"]) < (today or datetime.now(UTC).date())
