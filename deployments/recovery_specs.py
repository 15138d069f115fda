"""Deployments and runbook data of recoveries: one ``replication-<source>`` deployment per
PostgreSQL source (the supervised WAL receiver), on-demand ``recover-incident``,
``recover-system`` and ``undo-recovery``, and the per-source runbook (stop command, smoke
checks) the recovery tasks read from the Prefect Variable ``strongroom_runbook``."""

from __future__ import annotations

from typing import Any

# The supervisor is started every few minutes; the deployment's concurrency limit of one
# cancels a start while a run is alive, so a crashed supervisor is back within this period.
REPLICATION_CRON = "*/5 * * * *"
RECOVERY_FLOWS = {"recover-incident": "recover_incident", "recover-system": "recover_system",
                  "undo-recovery": "undo_recovery"}


def replication_specs(config: Any) -> dict[str, dict[str, Any]]:
    """``replication-<source>`` per physical PostgreSQL source, on its host's queue."""
    from deployments.build import when  # build imports this module

    secondaries = [n for n in config.replicas() if config.targets[n].role == "secondary"]
    specs = {}
    for name, src in config.sources.items():
        settings = src.settings()
        if src.kind != "postgres" or str(settings.get("method") or "physical") != "physical":
            continue
        specs[f"replication-{name}"] = {
            "flow": "wal_replication",
            "schedules": [{"cron": REPLICATION_CRON, "timezone": config.timezone,
                           "active": True, "slug": f"replication-{name}"}],
            "parameters": {"source": f"postgres/{name}", "primary": config.primary,
                           "secondaries": secondaries,
                           "copy_every_s": float(config.wal_copy_bound_s)},
            "concurrency_limit": 1,
            "tags": ["strongroom", "replication"] + ([f"host-{src.runs_on}"]
                                                     if src.runs_on else []),
            "description": f"continuous WAL replication of {name}: a supervised receiver "
                           f"(restarted with back-off), WAL on the secondary tier within "
                           f"{config.wal_copy_bound_s:.0f} s; lag as "
                           "strongroom.replication.lag events; supervisor started "
                           f"{when(REPLICATION_CRON, config.timezone)}"}
        if src.runs_on:  # the receiver runs where the source's backups run
            specs[f"replication-{name}"]["work_queue"] = src.runs_on
    return specs


def incident_system_specs(config: Any) -> dict[str, dict[str, Any]]:
    """On-demand ``recover-incident`` (for the site), ``recover-system`` and
    ``undo-recovery``."""
    return {
        "recover-incident": {"flow": "recover_incident", "schedules": [],
                             "parameters": {"site": config.site},
                             "tags": ["strongroom", "recovery", "security"],
                             "description": "on-demand security incident recovery from the "
                                            "immutable tier"},
        "recover-system": {"flow": "recover_system", "schedules": [],
                           "parameters": {"from_target": config.primary, "dry_run": True},
                           "tags": ["strongroom", "recovery", "system"],
                           "description": "on-demand system configuration recovery (dry run "
                                          "by default)"},
        "undo-recovery": {"flow": "undo_recovery", "schedules": [], "parameters": {},
                          "tags": ["strongroom", "recovery"],
                          "description": "on-demand: put back what a recovery replaced, from "
                                         "its post-mortem (-p post_mortem=<artifact key>)"}}


def recovery_specs(config: Any) -> dict[str, dict[str, Any]]:
    return replication_specs(config) | incident_system_specs(config)


def flows() -> dict[str, Any]:
    """Spec ``flow`` name -> flow object, for deployments.build.flow_for."""
    from flows.incident import recover_incident
    from flows.replication import wal_replication
    from flows.system import recover_system
    from flows.undo import undo_recovery

    return {"wal_replication": wal_replication, "recover_incident": recover_incident,
            "recover_system": recover_system, "undo_recovery": undo_recovery}


def runbook(config: Any) -> dict[str, dict[str, Any]]:
    """Source block reference -> {stop_service, start_service, smoke} from the platform
    file."""
    out = {}
    for name, src in config.sources.items():
        entry = {k: v for k, v in (("stop_service", src.stop_service),
                                   ("start_service", src.start_service),
                                   ("smoke", list(src.smoke))) if v}
        if entry:
            out[f"{src.kind}/{name}"] = entry
    return out


def save_runbook(config: Any) -> dict[str, dict[str, Any]]:
    """Store the runbook where the recovery tasks read it (Prefect Variable)."""
    from prefect.variables import Variable

    from tasks.runbook import RUNBOOK_VARIABLE

    book = runbook(config)
    Variable.set(RUNBOOK_VARIABLE, book, overwrite=True)
    return book
