"""What the server holds: every deployment with its schedules (``prefect deployment ls`` shows
names only; ``--output json`` has the schedules too)."""

from __future__ import annotations

from typing import Any


def deployment_rows() -> list[dict[str, Any]]:
    """One row per deployment schedule (on-demand deployments: one row, no cron)."""
    from prefect.client.orchestration import get_client

    rows: list[dict[str, Any]] = []
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments()
        flows = {f.id: f.name for f in client.read_flows()}
        for dep in sorted(deployments, key=lambda d: (flows.get(d.flow_id, ""), d.name)):
            name = f"{flows.get(dep.flow_id, '?')}/{dep.name}"
            if not dep.schedules:
                rows.append({"deployment": name, "cron": None, "timezone": None,
                             "active": None, "source": None})
            for s in dep.schedules:
                rows.append({"deployment": name, "cron": getattr(s.schedule, "cron", None),
                             "timezone": getattr(s.schedule, "timezone", None),
                             "active": s.active, "source": (s.parameters or {}).get("source")})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A plain text table: deployment, schedule, time zone, source."""
    table = [("deployment", "schedule", "time zone", "source")]
    for r in rows:
        when = r["cron"] or "on demand"
        if r["active"] is False:
            when += " (paused)"
        table.append((r["deployment"], when, r["timezone"] or "-", r["source"] or "-"))
    widths = [max(len(str(row[i])) for row in table) for i in range(4)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in table)
