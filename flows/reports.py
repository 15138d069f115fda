"""Report flows: daily status, weekly trends, monthly analysis, quarterly review.

Each run reads the backup runs from the Prefect API, the snapshots and storage of the site's
repositories and the drill history, then leaves a Markdown artifact (``report-<period>``) and a
self-contained HTML file with charts under ``<state dir>/reports/`` (the state directory is
$STRONGROOM_STATE_DIR, else $XDG_STATE_HOME/strongroom, else ~/.local/state/strongroom).
``strongroom report --period weekly --html OUT`` renders the same from the command line.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow

from flows.reporting.compute import (
    CAPACITY_THRESHOLD,
    DURATION_TARGET_S,
    PERIODS,
    SUCCESS_TARGET,
    Period,
    build_report,
)

REPORT_FLOWS = {"daily": "report-daily", "weekly": "report-weekly",
                "monthly": "report-monthly", "quarterly": "report-quarterly"}


def state_dir() -> Path:
    """Where reports are written (see the module doc)."""
    env = os.environ.get("STRONGROOM_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "strongroom"


def generate(period: Period, site: str = "default", timezone: str = "UTC",
             now: datetime | None = None, success_target: float = SUCCESS_TARGET,
             duration_target_s: float = DURATION_TARGET_S,
             capacity_threshold: float | None = None,
             size_target_bytes: float | None = None) -> dict[str, Any]:
    """Gather everything and build the report (needs the Prefect API and the blocks). The
    capacity threshold and targets' capacities default to the platform file's (saved at
    deploy time), else 70% and the file system's size."""
    from flows.reporting.history import (
        fetch_runs,
        operations_settings,
        repository_records,
        site_targets,
    )
    from tasks.drill_history import read_history

    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    now = now or datetime.now(UTC)
    since = now - PERIODS[period]["trend_window"]
    targets, sources, refs, _objectives = site_targets(site)
    runs = fetch_runs(since, refs)
    ops = operations_settings()
    capacities = {name: (info or {}).get("capacity_bytes")
                  for name, info in (ops.get("targets") or {}).items()}
    if capacity_threshold is None:
        capacity_threshold = float(ops.get("capacity_threshold") or CAPACITY_THRESHOLD)
    audit: dict[str, dict[str, Any]] = {}  # per target: audit activity in the period
    snaps, storage, notes = repository_records(targets, capacities, audit=audit,
                                               audit_since=now - PERIODS[period]["window"])
    drills = read_history()["drills"]
    report = build_report(period, now, runs, snaps, storage, drills,
                          success_target=success_target, duration_target_s=duration_target_s,
                          capacity_threshold=capacity_threshold,
                          size_target_bytes=size_target_bytes, site=site, timezone=timezone,
                          sources=sources)
    report["notes"] += notes
    report["audit"] = audit
    return report


def render(report: dict[str, Any]) -> tuple[str, str]:
    """(Markdown, HTML) of a report."""
    from flows.reporting.charts import all_charts
    from flows.reporting.render import to_html, to_markdown

    return to_markdown(report), to_html(report, all_charts(report))


def write_html(html: str, report: dict[str, Any], out: Path | None = None) -> Path:
    """Write the HTML to ``out`` or ``<state dir>/reports/<period>-<UTC time>.html``."""
    if out is None:
        stamp = report["generated"].strftime("%Y%m%dT%H%M%SZ")
        out = state_dir() / "reports" / f"{report['period']}-{report['site']}-{stamp}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


@flow(name="report", log_prints=True, timeout_seconds=3600)
def report(period: Period = "weekly", site: str = "default", timezone: str = "UTC",
           success_target: float = SUCCESS_TARGET, duration_target_h: float = 4.0,
           capacity_threshold: float | None = None,
           size_target_bytes: float | None = None,
           html_dir: str | None = None) -> dict[str, Any]:
    """Write the period's operations report: a Markdown artifact and an HTML file with charts.

    Args:
        period: daily (status), weekly (trends), monthly (analysis) or quarterly (review)
        site: site block whose repositories and sources are reported
        timezone: the platform's time zone, for the times shown
        success_target: backup success rate target (0.995 = 99.5%)
        duration_target_h: backups should finish within this many hours
        capacity_threshold: storage use above this share of capacity is flagged; empty: the
            platform file's (default 0.70)
        size_target_bytes: flag a mean backup size above this; empty: no size target
        html_dir: directory for the HTML file; empty: <state dir>/reports
    """
    from prefect.artifacts import create_markdown_artifact

    started = time.monotonic()
    data = generate(period, site, timezone, success_target=success_target,
                    duration_target_s=duration_target_h * 3600,
                    capacity_threshold=capacity_threshold, size_target_bytes=size_target_bytes)
    markdown, html = render(data)
    out = None
    if html_dir:
        stamp = data["generated"].strftime("%Y%m%dT%H%M%SZ")
        out = Path(html_dir) / f"{period}-{site}-{stamp}.html"
    path = write_html(html, data, out)
    key = f"report-{period}"
    create_markdown_artifact(markdown + f"\n\nHTML report: `{path}`", key=key,
                             description=f"Strongroom {data['title'].lower()} of {site}")
    seconds = round(time.monotonic() - started, 3)
    print(f"{data['title']} of {site} written to {path} in {seconds} s")
    return {"period": period, "html": str(path), "artifact_key": key, "seconds": seconds,
            "success_rate": data["runs"]["success_rate"], "runs": data["runs"]["runs"],
            "notes": data["notes"]}


# one deployable flow name per period (the UI and schedules name the period)
report_daily = report.with_options(name=REPORT_FLOWS["daily"])
report_weekly = report.with_options(name=REPORT_FLOWS["weekly"])
report_monthly = report.with_options(name=REPORT_FLOWS["monthly"])
report_quarterly = report.with_options(name=REPORT_FLOWS["quarterly"])
REPORT_FLOW_OBJECTS = {"daily": report_daily, "weekly": report_weekly,
                       "monthly": report_monthly, "quarterly": report_quarterly}
