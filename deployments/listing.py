"""What the server holds: every deployment with its schedules (``prefect deployment ls`` shows
names only; ``--output json`` has the schedules too)."""

from __future__ import annotations

from typing import Any


def deployment_rows() -> list[dict[str, Any]]:
    """One row per deployment schedule (on-demand deployments: one row, no cron), with the
    sources it backs up and the work queue it runs on."""
    from prefect.client.orchestration import get_client

    rows: list[dict[str, Any]] = []
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments()
        flows = {f.id: f.name for f in client.read_flows()}
        for dep in sorted(deployments, key=lambda d: (flows.get(d.flow_id, ""), d.name)):
            name = f"{flows.get(dep.flow_id, '?')}/{dep.name}"
            common = {"deployment": name, "sources": (dep.parameters or {}).get("sources"),
                      "queue": dep.work_queue_name if dep.work_pool_name else None}
            if not dep.schedules:
                rows.append(common | {"cron": None, "timezone": None, "active": None})
            for s in dep.schedules:
                rows.append(common | {"cron": getattr(s.schedule, "cron", None),
                                      "timezone": getattr(s.schedule, "timezone", None),
                                      "active": s.active})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A plain text table: deployment, schedule, time zone, sources (and work queue)."""
    queues = any(r.get("queue") for r in rows)
    table = [("deployment", "schedule", "time zone", "sources") + (("queue",) if queues else ())]
    for r in rows:
        when = r["cron"] or "on demand"
        if r["active"] is False:
            when += " (paused)"
        table.append((r["deployment"], when, r["timezone"] or "-",
                      ", ".join(r["sources"]) if r["sources"] else "-")
                     + ((r.get("queue") or "-",) if queues else ()))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in table)
