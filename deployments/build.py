"""The platform's deployments: the seed's schedule table per source, plus on-demand recovery."""

from __future__ import annotations

from typing import Any

from deployments.config import PlatformConfig
from deployments.register import source_refs
from deployments.seed import RECOVERY_DEPLOYMENTS


def schedule_specs(config: PlatformConfig) -> dict[str, dict[str, Any]]:
    """Deployment name -> flow, schedules (cron, timezone, parameters, active) and defaults.

    Plain data, so tests compare it with the seed without a Prefect server.
    """
    refs = source_refs(config)
    secondaries = [n for n in config.replicas() if config.targets[n].role == "secondary"]
    specs: dict[str, dict[str, Any]] = {}
    for name, sched in config.schedules.items():
        replicas = config.replicas() if sched.tier == "monthly_archive" else secondaries
        covered = config.sources_for(name)
        schedules = [{"cron": sched.cron, "timezone": config.timezone, "active": True,
                      "parameters": {"source": refs[s]}, "slug": f"{name}-{s}"}
                     for s in covered]
        if not schedules:  # keep the seed's schedule visible, paused until a source fits
            schedules = [{"cron": sched.cron, "timezone": config.timezone, "active": False,
                          "parameters": {}, "slug": f"{name}-no-source"}]
        specs[name] = {"flow": sched.tier, "schedules": schedules,
                       "parameters": {"primary": config.primary, "replicas": replicas,
                                      "keep": sched.keep,
                                      "verify_mode": "read-data"
                                      if sched.tier == "monthly_archive" else config.verify},
                       "tags": ["strongroom", "backup", sched.tier.replace("_", "-")],
                       "description": f"{sched.tier} backup, {sched.cron} {config.timezone}, "
                                      f"kept {sched.keep}"}
    specs["retention"] = {
        "flow": "retention",
        "schedules": [{"cron": config.retention_cron, "timezone": config.timezone,
                       "active": True, "parameters": {}, "slug": "retention"}],
        "parameters": {"targets": list(config.targets), "policies": retention_policies(config)},
        "tags": ["strongroom", "retention"],
        "description": f"retention: forget by the schedules' keep values, then prune, "
                       f"{config.retention_cron} {config.timezone}"}
    for name, flow_name in RECOVERY_DEPLOYMENTS.items():
        params: dict[str, Any] = {"disaster_recovery": {"site": config.site,
                                                        "from_role": "secondary"}}.get(
            flow_name, {"from_target": config.primary})
        specs[name] = {"flow": flow_name, "schedules": [], "parameters": params,
                       "tags": ["strongroom", "recovery"],
                       "description": f"on-demand {flow_name.replace('_', ' ')}"}
    specs["verify-backups"] = {"flow": "verify_backups", "schedules": [],
                               "parameters": {"target": config.primary, "mode": "read-data"},
                               "tags": ["strongroom", "verify"],
                               "description": "on-demand repository verification"}
    return specs


def retention_policies(config: PlatformConfig) -> dict[str, str]:
    """Schedule tag of the snapshots (the tier) -> retention policy block of its schedule
    (saved as ``retention-<schedule>``); two schedules of one tier: the longer keep wins."""
    from strongroom.policy.retention import Duration

    def days(keep: str) -> float:
        d = Duration.parse(keep)
        return d.years * 366 + d.months * 31 + d.days + d.hours / 24

    chosen: dict[str, str] = {}
    for name, sched in config.schedules.items():
        tag = sched.tier.replace("_", "-")
        if tag not in chosen or days(sched.keep) > days(config.schedules[chosen[tag]].keep):
            chosen[tag] = name
    return {tag: f"retention-{name}" for tag, name in chosen.items()}


def flow_for(name: str) -> Any:
    from flows.checks import verify_backups
    from flows.recovery import disaster_recovery, recover_database, recover_files
    from flows.storage import retention
    from flows.tiers import TIER_FLOWS

    named = {"recover_files": recover_files, "recover_database": recover_database,
             "disaster_recovery": disaster_recovery, "verify_backups": verify_backups,
             "retention": retention}
    return TIER_FLOWS.get(name) or named[name]


def build_deployments(config: PlatformConfig) -> list[Any]:
    """RunnerDeployments for ``prefect.serve`` (or ``.apply()``), one per schedule-table row."""
    from prefect.schedules import Cron

    out = []
    for name, spec in schedule_specs(config).items():
        schedules = [Cron(s["cron"], timezone=s["timezone"], active=s["active"],
                          parameters=s["parameters"], slug=s["slug"])
                     for s in spec["schedules"]]
        out.append(flow_for(spec["flow"]).to_deployment(
            name=name, schedules=schedules or None, parameters=spec["parameters"],
            tags=spec["tags"], description=spec["description"]))
    return out
