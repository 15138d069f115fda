"""Report and drill deployments: four reports in the platform's time zone, a
quarterly drill per source and a semi-annual simulated disaster. Plain data like the rest of
:mod:`deployments.build`, which adds these to its specs."""

from __future__ import annotations

from typing import Any

from deployments.config import PlatformConfig

# period -> cron (platform time zone): mornings, after the night's backups
REPORT_CRONS = {"daily": "0 7 * * *", "weekly": "0 7 * * 1", "monthly": "0 7 1 * *",
                "quarterly": "0 7 1 1,4,7,10 *"}
# quarterly per source on the 15th of Jan/Apr/Jul/Oct, one source an hour from 10:00
DRILL_MONTHS = "1,4,7,10"
# semi-annual simulated disaster: 1 March and 1 September
DISASTER_DRILL_CRON = "0 10 1 3,9 *"


def _schedule(cron: str, config: PlatformConfig, slug: str) -> dict[str, Any]:
    return {"cron": cron, "timezone": config.timezone, "active": True, "slug": slug}


def drill_cron(index: int) -> str:
    """The quarterly drill time of the ``index``-th source (staggered an hour apart)."""
    return f"0 {10 + index % 8} {15 + index // 8 % 14} {DRILL_MONTHS} *"


def operations_specs(config: PlatformConfig) -> dict[str, dict[str, Any]]:
    """Deployment name -> spec (flow, schedules, parameters, tags, description)."""
    from deployments.build import when
    from deployments.register import source_refs

    specs: dict[str, dict[str, Any]] = {}
    for period, cron in REPORT_CRONS.items():
        specs[f"report-{period}"] = {
            "flow": f"report_{period}", "schedules": [_schedule(cron, config,
                                                                f"report-{period}")],
            "parameters": {"period": period, "site": config.site,
                           "timezone": config.timezone},
            "tags": ["strongroom", "report"],
            "description": f"{period} operations report {when(cron, config.timezone)}"}
    refs = source_refs(config)
    for i, (name, ref) in enumerate(refs.items()):
        cron = drill_cron(i)
        params: dict[str, Any] = {"source": ref, "from_target": config.primary,
                                  "objectives": "default"}
        scratch = config.sources[name].settings().get("scratch_uri")
        if scratch:
            params["scratch_uri"] = scratch
        specs[f"drill-{name}"] = {
            "flow": "drill", "schedules": [_schedule(cron, config, f"drill-{name}")],
            "parameters": params, "tags": ["strongroom", "drill"],
            "description": f"quarterly recovery drill of {name} into a scratch target "
                           f"{when(cron, config.timezone)}"}
        host = config.sources[name].runs_on
        if host:  # drilled where the source lives, like its recoveries (work pools)
            specs[f"drill-{name}"]["work_queue"] = host
            specs[f"drill-{name}"]["tags"].append(f"host-{host}")
    secondary = [n for n in config.replicas() if config.targets[n].role == "secondary"]
    scratch_uris = {n: s.settings()["scratch_uri"] for n, s in config.sources.items()
                    if s.settings().get("scratch_uri")}
    specs["disaster-drill"] = {
        "flow": "disaster_drill",
        "schedules": [_schedule(DISASTER_DRILL_CRON, config, "disaster-drill")
                      | {"active": bool(secondary)}],
        "parameters": {"site": config.site, "from_role": "secondary",
                       **({"scratch_uris": scratch_uris} if scratch_uris else {})},
        "tags": ["strongroom", "drill"],
        "description": "semi-annual simulated disaster: the whole site from the secondary tier "
                       f"into scratch targets, at cron {DISASTER_DRILL_CRON} "
                       f"{config.timezone} (1 March and 1 September)"
                       + ("" if secondary else "; paused: the platform has no secondary tier")}
    return specs


def operation_flows() -> dict[str, Any]:
    """Spec ``flow`` name -> flow object, for :func:`deployments.build.flow_for`."""
    from flows.drills import disaster_drill, drill
    from flows.reports import REPORT_FLOW_OBJECTS

    return {"drill": drill, "disaster_drill": disaster_drill,
            **{f"report_{p}": f for p, f in REPORT_FLOW_OBJECTS.items()}}
