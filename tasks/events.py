"""The Prefect events Strongroom's alerts listen to, and the tasks that emit them.

Every event about a source has the resource ``strongroom.source.<name>`` with the labels
``strongroom.kind``, ``strongroom.class``, ``strongroom.tier`` and ``strongroom.schedule`` (the
schedule-table row, i.e. the deployment's name without ``@host``), so one automation can follow
each source of one schedule (``for_each`` the resource id). Payloads carry a one-line
``summary``; never a secret.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.logging import get_run_logger

BACKUP_COMPLETED = "strongroom.backup.completed"
BACKUP_FAILED = "strongroom.backup.failed"
# maintenance events and their emitters
KEY_ROTATION_DUE = "strongroom.key.rotation-due"  # flows/keys.py
CAPACITY_EXCEEDED = "strongroom.target.capacity-exceeded"  # tasks/metrics.py, after a backup
# a drill overdue is the silence after DRILL_COMPLETED (or, for a source never drilled, after
# its first backup or the deploy that scheduled its drill): proactive automations in
# deployments/alerts.py; DRILL_OVERDUE stays in the set for other emitters
DRILL_OVERDUE = "strongroom.drill.overdue"
DRILL_COMPLETED = "strongroom.drill.completed"   # emitted by flows/drills.py
DRILL_SCHEDULED = "strongroom.drill.scheduled"   # emitted by deployments/alerts.py at deploy
DRILL_FAILED = "strongroom.drill.failed"         # emitted by flows/drills.py
VERIFY_FAILED = "strongroom.verify.failed"       # emitted by flows/checks.py
RULE_321_BROKEN = "strongroom.storage.321-broken"  # emitted by flows/storage.py
WAL_GAP = "strongroom.wal.gap"                   # emitted by tasks/walgaps.py
MAINTENANCE_EVENTS = (KEY_ROTATION_DUE, CAPACITY_EXCEEDED, DRILL_OVERDUE, DRILL_FAILED,
                      VERIFY_FAILED, RULE_321_BROKEN, WAL_GAP)
# warnings raised by the replication supervisor (flows/replication.py)
REPLICATION_RPO_BREACHED = "strongroom.replication.rpo-breached"
WARNING_EVENTS = (REPLICATION_RPO_BREACHED,)


def source_resource(ref: str, **labels: str | None) -> dict[str, str]:
    """The resource of a source given as ``kind/name``: id ``strongroom.source.<name>``."""
    kind, _, name = ref.rpartition("/")
    resource = {"prefect.resource.id": f"strongroom.source.{name}",
                "prefect.resource.name": name, "strongroom.kind": kind or "unknown"}
    resource |= {f"strongroom.{k}": v for k, v in labels.items() if v}
    return resource


def current_schedule() -> str | None:
    """The schedule-table row this flow run belongs to: its deployment's name without
    ``@host``; outside a deployment, a ``schedule-<row>`` tag of the run, else None."""
    from prefect.context import TagsContext
    from prefect.runtime import deployment, flow_run

    name = deployment.name
    if name:
        return str(name).partition("@")[0]
    for tag in [*(flow_run.tags or []), *TagsContext.get().current_tags]:
        if str(tag).startswith("schedule-"):
            return str(tag).removeprefix("schedule-")
    return None


def _objective_class(source: str) -> str | None:
    from blocks.loading import load_source

    try:
        return load_source(source).objectives_class()
    except Exception:  # noqa: BLE001 - the event still goes out, without the class
        return None


def _flow_run_url() -> str | None:
    from prefect.runtime import flow_run

    try:
        return flow_run.ui_url
    except Exception:  # noqa: BLE001 - a link is a courtesy, never a failure
        return None


@task(name="backup-event", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def backup_event(outcome: str, tier: str, source: str, summary: str,
                 payload: dict[str, Any] | None = None, objective_class: str | None = None,
                 schedule: str | None = None) -> dict[str, Any]:
    """Emit ``strongroom.backup.<outcome>`` (completed or failed) about ``source`` and log the
    summary; the delay, RPO and info alerts follow these events."""
    logger = get_run_logger()
    (logger.info if outcome == "completed" else logger.warning)("%s", summary)
    schedule = schedule or current_schedule() or tier.replace("_", "-")
    if objective_class is None:
        objective_class = _objective_class(source)
    resource = source_resource(source, tier=tier, schedule=schedule, **{"class": objective_class})
    event = f"strongroom.backup.{outcome}"
    emit_event(event=event, resource=resource,
               payload={"summary": summary, "tier": tier, "schedule": schedule,
                        "flow_run_url": _flow_run_url(), **(payload or {})})
    return {"event": event, "resource": resource["prefect.resource.id"], "schedule": schedule}


def emit(event: str, resource_id: str, summary: str, payload: dict[str, Any] | None = None,
         name: str | None = None) -> None:
    """Emit one event (maintenance and warning events) with a one-line summary."""
    emit_event(event=event,
               resource={"prefect.resource.id": resource_id,
                         "prefect.resource.name": name or resource_id.rpartition(".")[2]},
               payload={"summary": summary, **(payload or {})})
