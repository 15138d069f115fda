"""The platform's deployments: one per schedule-table row (one schedule each), plus on-demand
recovery, verification and retention.

:func:`schedule_specs` is what ``python -m deployments.serve`` serves from one process;
:func:`pool_specs` is what ``python -m deployments.deploy`` puts on a work pool, split by the
host (work queue) each source runs on. Both are plain data, so tests compare them with the seed
without a Prefect server.
"""

from __future__ import annotations

from typing import Any

from deployments.config import PlatformConfig
from deployments.register import source_refs
from deployments.seed import RECOVERY_DEPLOYMENTS

DEFAULT_QUEUE = "default"
# recovery flows that run where the source lives: one deployment per host
HOST_RECOVERY = ("recover-files", "recover-database", "recover-system")
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def describe_cron(cron: str) -> str:
    """Plain words for the common shapes (``0 2 * * *``: "daily at 02:00"); else the cron."""
    minute, hour, dom, month, dow = cron.split()
    at = f"{int(hour):02d}:{int(minute):02d}" if minute.isdigit() and hour.isdigit() else None
    if at and month == "*" and dom == "*" and dow == "*":
        return f"daily at {at}"
    if at and month == "*" and dom == "*" and dow.isdigit() and int(dow) <= 7:
        return f"weekly on {_DAYS[int(dow) % 7]} at {at}"
    if at and month == "*" and dom.isdigit() and dow == "*":
        return f"monthly on day {dom} at {at}"
    if minute.isdigit() and (hour, dom, month, dow) == ("*", "*", "*", "*"):
        return f"hourly at minute {int(minute)}"
    if minute.startswith("*/") and (hour, dom, month, dow) == ("*", "*", "*", "*"):
        return f"every {minute[2:]} minutes"
    if minute.isdigit() and hour.startswith("*/") and (dom, month, dow) == ("*", "*", "*"):
        return f"every {hour[2:]} hours at minute {int(minute)}"
    return f"at cron {cron}"


def when(cron: str, timezone: str) -> str:
    """The schedule in words with its time zone named plainly (the UI shows next runs in the
    browser's zone, which may differ); the cron is named once."""
    words = describe_cron(cron)
    plain = f"(cron {cron}) {timezone}" if words == f"at cron {cron}" \
        else f"{words} {timezone} (cron {cron})"
    return f"{plain}; the UI shows next runs in your browser's zone"


def _backup_spec(config: PlatformConfig, row: str, sources: list[str]) -> dict[str, Any]:
    sched = config.schedules[row]
    refs = source_refs(config)
    secondaries = [n for n in config.replicas() if config.targets[n].role == "secondary"]
    replicas = config.replicas() if sched.tier == "monthly_archive" else secondaries
    # one schedule per deployment; a row no source fits stays visible, paused
    schedule = {"cron": sched.cron, "timezone": config.timezone, "active": bool(sources),
                "slug": row}
    return {"flow": sched.tier, "schedules": [schedule],
            "parameters": {"tier": sched.tier, "sources": [refs[s] for s in sources],
                           "primary": config.primary, "replicas": replicas,
                           "keep": sched.keep,
                           "verify_mode": "read-data"
                           if sched.tier == "monthly_archive" else config.verify},
            "tags": ["strongroom", "backup", sched.tier.replace("_", "-")],
            "description": f"{sched.tier.replace('_', ' ')} backup "
                           f"{when(sched.cron, config.timezone)}; kept {sched.keep}"}


def _on_demand_specs(config: PlatformConfig) -> dict[str, dict[str, Any]]:
    """Retention, verification and recovery deployments (named as in serve)."""
    specs: dict[str, dict[str, Any]] = {"retention": {
        "flow": "retention",
        "schedules": [{"cron": config.retention_cron, "timezone": config.timezone,
                       "active": True, "slug": "retention"}],
        "parameters": {"targets": list(config.targets), "policies": retention_policies(config)},
        "tags": ["strongroom", "retention"],
        "description": "retention: forget by the schedules' keep values, then prune, "
                       f"{when(config.retention_cron, config.timezone)}"}}
    for name, flow_name in RECOVERY_DEPLOYMENTS.items():
        params: dict[str, Any] = {"disaster_recovery": {"site": config.site,
                                                        "from_role": "secondary",
                                                        "priority": list(
                                                            config.recovery_priority)}}.get(
            flow_name, {"from_target": config.primary})
        specs[name] = {"flow": flow_name, "schedules": [], "parameters": params,
                       "tags": ["strongroom", "recovery"],
                       "description": f"on-demand {flow_name.replace('_', ' ')}"}
    specs["verify-backups"] = {"flow": "verify_backups", "schedules": [],
                               "parameters": {"target": config.primary, "mode": "read-data"},
                               "tags": ["strongroom", "verify"],
                               "description": "on-demand repository verification"}
    from deployments.key_specs import key_specs  # quarterly key rotation
    from deployments.operations import operations_specs  # reports and drills
    from deployments.recovery_specs import recovery_specs  # replication, incident, system, undo

    return specs | operations_specs(config) | recovery_specs(config) | key_specs(config)


def schedule_specs(config: PlatformConfig) -> dict[str, dict[str, Any]]:
    """Deployment name -> flow, its one schedule (cron, timezone, active), parameters, tags and
    description: every source of a row in one deployment (``serve``: one process runs all)."""
    specs = {row: _backup_spec(config, row, config.sources_for(row))
             for row in config.schedules}
    return specs | _on_demand_specs(config)


def pool_specs(config: PlatformConfig) -> dict[str, dict[str, Any]]:
    """Like :func:`schedule_specs`, split by host for a work pool: each spec also names its
    ``work_queue``. A row's sources on host H: deployment ``<row>@H`` on queue H (sources that
    name no host: ``<row>`` on the default queue); per host ``recover-files@H`` and
    ``recover-database@H``; disaster recovery, retention and verification on the default
    queue."""
    on_demand = _on_demand_specs(config)
    specs: dict[str, dict[str, Any]] = {}
    for row in config.schedules:
        covered = config.sources_for(row)
        hosts = {config.sources[s].runs_on for s in covered}
        for host in sorted(hosts, key=lambda h: h or "") or [None]:
            on_host = [s for s in covered if config.sources[s].runs_on == host]
            name = f"{row}@{host}" if host else row
            specs[name] = _backup_spec(config, row, on_host) | {
                "work_queue": host or DEFAULT_QUEUE}
            if host:
                specs[name]["schedules"][0]["slug"] = name.replace("@", "-at-")
                specs[name]["tags"] = [*specs[name]["tags"], f"host-{host}"]
    for host in config.hosts():
        for name in HOST_RECOVERY:
            dep = f"{name}@{host}" if host else name
            specs[dep] = on_demand[name] | {"work_queue": host or DEFAULT_QUEUE}
            if host:
                specs[dep]["tags"] = [*specs[dep]["tags"], f"host-{host}"]
                specs[dep]["description"] += f" on {host}"
    for name, spec in on_demand.items():
        if name not in HOST_RECOVERY:
            specs[name] = {"work_queue": DEFAULT_QUEUE} | spec  # a drill names its host
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
    """The flow object of a spec's ``flow`` (a tier, or a recovery/maintenance flow)."""
    from flows.backup import TIER_FLOWS
    from flows.checks import verify_backups
    from flows.recovery import disaster_recovery, recover_database, recover_files
    from flows.storage import retention

    named = {"recover_files": recover_files, "recover_database": recover_database,
             "disaster_recovery": disaster_recovery, "verify_backups": verify_backups,
             "retention": retention}
    from deployments.key_specs import flows as key_flows
    from deployments.operations import operation_flows
    from deployments.recovery_specs import flows as recovery_flows

    return TIER_FLOWS.get(name) or {**named, **operation_flows(), **recovery_flows(),
                                    **key_flows()}[name]


def to_deployment(name: str, spec: dict[str, Any], work_pool: str | None = None) -> Any:
    """One RunnerDeployment. With ``work_pool``: on the spec's work queue, its entrypoint a
    module path (``flows.backup.backup``) that a worker imports from the installed package."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    schedules = [Cron(s["cron"], timezone=s["timezone"], active=s["active"], slug=s["slug"])
                 for s in spec["schedules"]]
    pool: dict[str, Any] = {} if work_pool is None else {
        "work_pool_name": work_pool, "work_queue_name": spec["work_queue"],
        "entrypoint_type": EntrypointType.MODULE_PATH}
    flow = flow_for(spec["flow"])
    deployment = flow.to_deployment(
        name=name, schedules=schedules or None, parameters=spec["parameters"],
        tags=spec["tags"], description=spec["description"], **pool,
        **concurrency(spec))
    attr = flow_attribute(flow)
    if work_pool is not None:
        deployment.entrypoint = f"{flow.fn.__module__}.{attr}"
    elif deployment.entrypoint:
        deployment.entrypoint = f"{deployment.entrypoint.rpartition(':')[0]}:{attr}"
    return deployment


def concurrency(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec's ``concurrency_limit`` (runs at once; a new run past it is cancelled)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    if not spec.get("concurrency_limit"):
        return {}
    return {"concurrency_limit": ConcurrencyLimitConfig(
        limit=int(spec["concurrency_limit"]),
        collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)}


def flow_attribute(flow: Any) -> str:
    """The module attribute that holds this very flow object (``backup_full``, one of the
    tier names of one function), so the runner or worker loads the flow under its deployed
    name rather than the function's; else the function's name."""
    import sys

    for attr, value in vars(sys.modules[flow.fn.__module__]).items():
        if value is flow:
            return attr
    return flow.fn.__name__


def build_deployments(config: PlatformConfig) -> list[Any]:
    """RunnerDeployments for ``prefect.serve`` (or ``.apply()``), one per schedule-table row."""
    return [to_deployment(name, spec) for name, spec in schedule_specs(config).items()]


def build_pool_deployments(config: PlatformConfig, work_pool: str) -> list[Any]:
    """RunnerDeployments for a work pool, one queue per host (see :func:`pool_specs`)."""
    return [to_deployment(name, spec, work_pool) for name, spec in pool_specs(config).items()]
