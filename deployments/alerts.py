"""Alerts: one Prefect Automation per alert, sending to the channels of its level.

:func:`alert_specs` is plain data (name, level, trigger, subject, body), so tests read it without
a server; :func:`apply_alerts` saves the channel blocks and creates or updates the automations
by name (an unchanged automation is kept as it is, so a re-deploy does not reset the timers of
proactive triggers), removes ``strongroom:`` automations and channel blocks the file no longer
names, and saves the operations settings the backup flows read (metrics textfile, capacity
threshold). Alerts:

* critical ``run failed``: a backup, retention, copy or recovery flow run Failed or Crashed;
* warning ``backup late <row>``: no ``strongroom.backup.completed`` for a source of a schedule
  row within the row's period + grace (or its ``alert_within``), once per silence;
* warning ``backup running long``: a backup run still running after the time limit (4 h);
* warning ``RPO <class>``: a source's newest good recovery point older than its class's RPO;
  also a replication RPO breach reported by the replication supervisor;
* info ``backup completed`` (channels opt in);
* maintenance: key rotation due, target above its capacity threshold, verify found damage,
  3-2-1 broken, WAL gaps, a drill failed, drill overdue (no drill of a source or the site
  within its interval).

The proactive triggers start counting at a source's first completed backup after they exist.
A drill is overdue one interval (quarterly per source, semi-annual for the site) plus
``drill_grace`` after the last drill; a source never drilled counts from its first backup or
from the deploy that scheduled its drill (``strongroom.drill.scheduled``, which never restarts
a count already running), a site never drilled from that deploy.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from deployments.notifications import block_name, save_channels

if TYPE_CHECKING:
    from deployments.config import PlatformConfig

PREFIX = "strongroom: "
TAG_STRONGROOM = {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.strongroom"}
# the per-source subflow fails with its parent, which names every failed source: alert once
NOT_SUBFLOW = {"prefect.resource.role": "flow", "prefect.resource.name": "!backup-source"}
CRITICAL_TAGS = ["backup", "retention", "copy", "recovery", "replication"]
TERMINAL = ["Completed", "Failed", "Crashed", "Cancelled", "TimedOut"]
DRILL_INTERVAL = {"source": timedelta(days=92), "site": timedelta(days=183)}
MIN_WITHIN = timedelta(seconds=10)
SETTLE_S = 2.0  # time for the server to load changed automations before announcing drills

_RUN_BODY = (
    "{% set p = flow_run.parameters %}"
    "{{ flow.name }} run {{ flow_run.name }} {{ flow_run.state.name }}\n"
    "source: {{ p.sources | join(', ') if p.sources else (p.source or p.site or "
    "(p.targets | join(', ') if p.targets else '-')) }}\n"
    "tier: {{ p.tier or '-' }}\n"
    "error: {{ (flow_run.state.message or flow_run.state.name) | replace('\\n', ' ') "
    "| truncate(500) }}\n"
    "run: {{ flow_run | ui_url }}")
_EVENT_BODY = (
    "{{ event.payload.summary or event.event }}\n"
    "source: {{ event.resource['prefect.resource.name'] }}\n"
    "tier: {{ event.resource['strongroom.tier'] or event.payload.tier or '-' }}\n"
    "at: {{ event.occurred }}\n"
    "run: {{ event.payload.flow_run_url or '-' }}")


def _silence_body(what: str, window: timedelta) -> str:
    return (f"no {what} of {{{{ event.resource['prefect.resource.name'] }}}} within "
            f"{_words(window)} of the last one ({{{{ event.occurred }}}})\n"
            "source: {{ event.resource['prefect.resource.name'] }}\n"
            "tier: {{ event.resource['strongroom.tier'] or '-' }}\n"
            "last run: {{ event.payload.flow_run_url or '-' }}")


def _drill_body(scope: str, window: timedelta) -> str:
    name = ("{{ event.resource['prefect.resource.name'] | replace('source.', '') "
            "| replace('site.', '') }}")
    return (f"no {scope} recovery drill of {name} within {_words(window)} of "
            "{{ 'its last drill' if event.event == 'strongroom.drill.completed' else "
            "'its first backup' if event.event == 'strongroom.backup.completed' else "
            "'the deploy that scheduled it' }} ({{ event.occurred }})\n"
            f"{scope}: {name}\n"
            "last run: {{ event.payload.flow_run_url or '-' }}")


def _words(delta: timedelta) -> str:
    from deployments.objectives import human

    return human(delta)


def _spec(name: str, level: str, trigger: dict[str, Any], subject: str, body: str,
          description: str) -> dict[str, Any]:
    return {"name": PREFIX + name, "level": level, "trigger": trigger, "subject": subject,
            "body": body, "description": description}


def row_window(config: PlatformConfig, row: str) -> timedelta:
    """How long a schedule row may go without a completed backup of a source: its
    ``alert_within``, else its longest gap between runs plus the grace."""
    from deployments.config import parse_objective
    from deployments.objectives import max_gap

    sched = config.schedules[row]
    if sched.alert_within:
        return max(parse_objective(sched.alert_within), MIN_WITHIN)
    gap = max_gap([sched.cron], config.timezone) or timedelta(days=1)
    return gap + config.notifications.duration("grace")


def alert_specs(config: PlatformConfig) -> list[dict[str, Any]]:
    """Every alert of the platform: name, level, trigger (EventTrigger fields), subject, body."""
    from deployments.objectives import class_rpo
    from tasks.events import (
        BACKUP_COMPLETED,
        DRILL_COMPLETED,
        DRILL_SCHEDULED,
        MAINTENANCE_EVENTS,
        WARNING_EVENTS,
    )

    notes = config.notifications
    specs = [_spec(
        "critical: run failed", "critical",
        {"posture": "Reactive", "threshold": 1, "within": timedelta(0),
         "expect": {"prefect.flow-run.Failed", "prefect.flow-run.Crashed",
                    "prefect.flow-run.TimedOut"},
         "match": {"prefect.resource.id": "prefect.flow-run.*"},
         "match_related": [TAG_STRONGROOM, NOT_SUBFLOW,
                           {"prefect.resource.role": "tag", "prefect.resource.id":
                            [f"prefect.tag.{t}" for t in CRITICAL_TAGS]}]},
        "[critical] Strongroom: {{ flow.name }} {{ flow_run.state.name }}", _RUN_BODY,
        "A backup, retention, copy or recovery flow run failed or crashed")]
    for row in config.schedules:
        if not config.sources_for(row):
            continue
        window = row_window(config, row)
        specs.append(_spec(
            f"warning: backup late {row}", "warning",
            {"posture": "Proactive", "threshold": 1, "within": window,
             "after": {BACKUP_COMPLETED}, "expect": {BACKUP_COMPLETED},
             "for_each": {"prefect.resource.id"},
             "match": {"prefect.resource.id": "strongroom.source.*",
                       "strongroom.schedule": row}},
            f"[warning] Strongroom: {row} backup of "
            "{{ event.resource['prefect.resource.name'] }} is late",
            _silence_body(f"{row} backup", window),
            f"No {row} backup of a source within {_words(window)}"))
    specs.append(_spec(
        "warning: backup running long", "warning",
        {"posture": "Proactive", "threshold": 1, "within": notes.duration("backup_time_limit"),
         "after": {"prefect.flow-run.Running"},
         "expect": {f"prefect.flow-run.{s}" for s in TERMINAL},
         "for_each": {"prefect.resource.id"},
         "match": {"prefect.resource.id": "prefect.flow-run.*"},
         "match_related": [TAG_STRONGROOM, NOT_SUBFLOW,
                           {"prefect.resource.role": "tag",
                            "prefect.resource.id": "prefect.tag.backup"}]},
        "[warning] Strongroom: {{ flow.name }} running longer than "
        f"{_words(notes.duration('backup_time_limit'))}", _RUN_BODY,
        "A backup still running after its time limit"))
    classes = sorted({config.source_class(s) for s in config.sources})
    for cls in classes:
        rpo = max(class_rpo(config, cls), MIN_WITHIN)
        specs.append(_spec(
            f"warning: RPO {cls}", "warning",
            {"posture": "Proactive", "threshold": 1, "within": rpo,
             "after": {BACKUP_COMPLETED}, "expect": {BACKUP_COMPLETED},
             "for_each": {"prefect.resource.id"},
             "match": {"prefect.resource.id": "strongroom.source.*", "strongroom.class": cls}},
            f"[warning] Strongroom: {cls} RPO missed by "
            "{{ event.resource['prefect.resource.name'] }}",
            _silence_body("good recovery point", rpo),
            f"The newest recovery point of a {cls} source is older than its RPO "
            f"({_words(rpo)})"))
    specs.append(_spec(
        "warning: replication", "warning",
        {"posture": "Reactive", "threshold": 1, "within": timedelta(0),
         "expect": set(WARNING_EVENTS), "match": {"prefect.resource.id": "strongroom.*"}},
        "[warning] Strongroom: {{ event.event }}", _EVENT_BODY,
        "Replication fell behind its RPO"))
    specs.append(_spec(
        "info: backup completed", "info",
        {"posture": "Reactive", "threshold": 1, "within": timedelta(0),
         "expect": {BACKUP_COMPLETED}, "match": {"prefect.resource.id": "strongroom.source.*"}},
        "[info] Strongroom: {{ event.payload.summary }}", _EVENT_BODY,
        "A backup completed"))
    specs.append(_spec(
        "maintenance: events", "maintenance",
        {"posture": "Reactive", "threshold": 1, "within": timedelta(0),
         "expect": set(MAINTENANCE_EVENTS), "match": {"prefect.resource.id": "strongroom.*"}},
        "[maintenance] Strongroom: {{ event.event }}", _EVENT_BODY,
        "Key rotation due, capacity, verify damage, 3-2-1 broken, WAL gaps, drill failed or "
        "overdue"))
    for scope, interval in DRILL_INTERVAL.items():
        window = interval + notes.duration("drill_grace")
        # a count starts at a drill, or (never drilled) at the first backup / the deploy;
        # only a drill restarts one already running (Prefect keeps an open window as it is)
        starts = {DRILL_COMPLETED, DRILL_SCHEDULED} | ({BACKUP_COMPLETED} if scope == "source"
                                                       else set())
        specs.append(_spec(
            f"maintenance: {scope} drill overdue", "maintenance",
            {"posture": "Proactive", "threshold": 1, "within": window,
             "after": starts, "expect": {DRILL_COMPLETED},
             "for_each": {"prefect.resource.id"},
             "match": {"prefect.resource.id": f"strongroom.{scope}.*"}},
            f"[maintenance] Strongroom: {scope} drill overdue for "
            "{{ event.resource['prefect.resource.name'] | replace('source.', '') "
            "| replace('site.', '') }}",
            _drill_body(scope, window),
            f"No {scope} recovery drill within {_words(window)}"))
    return specs


def _automation(spec: dict[str, Any], block_ids: list[Any]) -> Any:
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger

    return AutomationCore(
        name=spec["name"], description=spec["description"], enabled=True,
        trigger=EventTrigger(**spec["trigger"]),
        actions=[SendNotification(block_document_id=b, subject=spec["subject"],
                                  body=spec["body"]) for b in block_ids])


def _comparable(model: Any) -> Any:
    """A model as JSON without ids (the server adds its own), for change detection."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("id", "created",
                                                                         "updated")}
        if isinstance(value, list):
            items = [strip(v) for v in value]
            return sorted(items, key=repr) if all(isinstance(v, str) for v in items) else items
        return value

    return strip(model.model_dump(mode="json", include={
        "name", "description", "enabled", "trigger", "actions", "actions_on_trigger",
        "actions_on_resolve"}))


def apply_alerts(config: PlatformConfig) -> dict[str, Any]:
    """Save channel blocks, create/update/delete automations by name; what changed."""
    from prefect.client.orchestration import get_client

    save_operations(config)
    block_ids = save_channels(config.notifications)
    wanted = {}
    for spec in alert_specs(config):
        channels = config.notifications.channels_for(spec["level"])
        if channels:
            wanted[spec["name"]] = _automation(spec, [block_ids[c] for c in channels])
    done: dict[str, list[str]] = {"created": [], "updated": [], "kept": [], "deleted": []}
    with get_client(sync_client=True) as client:
        existing: dict[str, list[Any]] = {}
        for auto in client.read_automations():
            if auto.name.startswith(PREFIX):
                existing.setdefault(auto.name, []).append(auto)
        for name, have in existing.items():
            keep = wanted.get(name)
            if keep is not None and len(have) == 1:
                if _comparable(have[0]) == _comparable(keep):
                    done["kept"].append(name)
                else:
                    client.update_automation(have[0].id, keep)
                    done["updated"].append(name)
                continue
            for auto in have:  # gone from the file, or duplicates: start clean
                client.delete_automation(auto.id)
            if keep is None:
                done["deleted"].append(name)
        for name, automation in wanted.items():
            if name not in done["kept"] and name not in done["updated"]:
                client.create_automation(automation)
                done["created"].append(name)
    done["channels"] = [block_name(c) for c in config.notifications.channels]
    drills = [name for name in wanted if name.endswith("drill overdue")]
    if drills:
        if set(drills) - set(done["kept"]):
            # a SQLite server loads a created/updated automation in a task of its own after
            # answering: an event that came first would meet the old trigger (or none)
            time.sleep(SETTLE_S)
        done["drills_announced"] = announce_drills(config)
    return done


def announce_drills(config: PlatformConfig) -> list[str]:
    """Emit ``strongroom.drill.scheduled`` for every source (and the site, when it has a
    secondary tier to drill from): the drill-overdue count of one never drilled starts here.
    A count already running is left alone, so re-deploying never postpones an alert."""
    from tasks.events import DRILL_SCHEDULED, emit

    resources = [(f"strongroom.source.{name}", name, "quarterly recovery drill of "
                  f"{name} scheduled") for name in config.sources]
    if any(config.targets[n].role == "secondary" for n in config.replicas()):
        resources.append((f"strongroom.site.{config.site}", config.site,
                          f"semi-annual disaster drill of {config.site} scheduled"))
    for resource_id, name, summary in resources:
        emit(DRILL_SCHEDULED, resource_id, summary, name=name)
    return [r[0] for r in resources]


def save_operations(config: PlatformConfig) -> None:
    """The settings backup flows read after each run (see tasks/metrics.py)."""
    from prefect.variables import Variable

    from tasks.metrics import OPERATIONS_VARIABLE

    storage_tier = {"primary": "primary", "secondary": "secondary", "tertiary": "archive"}
    Variable.set(OPERATIONS_VARIABLE, {
        "metrics_textfile": config.metrics_textfile,
        "capacity_threshold": config.notifications.capacity_threshold,
        "targets": {name: {"tier": storage_tier[t.role], "capacity_bytes": t.capacity_bytes}
                    for name, t in config.targets.items()}}, overwrite=True)
