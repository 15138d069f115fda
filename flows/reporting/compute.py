"""A report from plain records: success rate, durations, sizes, storage, trends, drills.

Records (all times aware UTC datetimes):
  runs       {"name", "state" (COMPLETED, FAILED, CRASHED, ...), "start", "end", "duration_s"}
  snapshots  {"source", "tier", "time", "bytes_total", "bytes_stored"}
  storage    {"target", "tier", "bytes" (the repository's), "used_bytes" (what counts against
             the capacity: the whole file system's use for a local path; default ``bytes``),
             "capacity_bytes" (None: unknown)}
  drills     the drill history's records (tasks.drill_history)

Trends: a straight line is fitted (``statistics.linear_regression``) to the per-bucket values;
its change over the whole window relative to the mean of the values is the trend's size. Below
:data:`TREND_THRESHOLD` (5%) the trend is *stable*; above, success rate is *improving* or
*decreasing*, completion time and error rate *increasing* or *improving*, storage use
*increasing* or *decreasing*. Fewer than three buckets with data: *not enough data*.
"""

from __future__ import annotations

import math
import statistics
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

Period = Literal["daily", "weekly", "monthly", "quarterly"]
# report window and trend bucket of each period
PERIODS: dict[str, dict[str, Any]] = {
    "daily": {"window": timedelta(days=1), "trend_window": timedelta(days=14),
              "bucket": timedelta(days=1), "title": "Daily status"},
    "weekly": {"window": timedelta(days=7), "trend_window": timedelta(days=28),
               "bucket": timedelta(days=1), "title": "Weekly trends"},
    "monthly": {"window": timedelta(days=30), "trend_window": timedelta(days=90),
                "bucket": timedelta(days=7), "title": "Monthly analysis"},
    "quarterly": {"window": timedelta(days=91), "trend_window": timedelta(days=365),
                  "bucket": timedelta(days=14), "title": "Quarterly review"},
}
SUCCESS_TARGET = 0.995
DURATION_TARGET_S = 4 * 3600.0
CAPACITY_THRESHOLD = 0.70
TREND_THRESHOLD = 0.05
OK_STATES = {"COMPLETED"}
FAILED_STATES = {"FAILED", "CRASHED", "TIMEDOUT", "CANCELLED"}
# what rising means for each trend: good (improving) or merely increasing
_RISING = {"success_rate": "improving", "completion_time": "increasing",
           "storage_use": "increasing", "error_rate": "increasing"}
_FALLING = {"success_rate": "decreasing", "completion_time": "improving",
            "storage_use": "decreasing", "error_rate": "improving"}


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def classify(name: str, values: list[float | None],
             threshold: float = TREND_THRESHOLD) -> dict[str, Any]:
    """Trend of per-bucket ``values`` (None: no data that bucket) from a fitted slope."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(points) < 3:
        return {"trend": "not enough data", "slope": None, "relative_change": None,
                "points": len(points)}
    xs, ys = [float(i) for i, _ in points], [float(v) for _, v in points]
    if len(set(ys)) == 1:
        slope = 0.0
    else:
        slope = statistics.linear_regression(xs, ys).slope
    span = xs[-1] - xs[0]
    mean = statistics.fmean(ys)
    scale = abs(mean) if mean else max(abs(y) for y in ys) or 1.0
    change = slope * span / scale
    if abs(change) < threshold:
        trend = "stable"
    else:
        trend = _RISING[name] if change > 0 else _FALLING[name]
    return {"trend": trend, "slope": slope, "relative_change": round(change, 4),
            "points": len(points)}


def _buckets(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    out, t = [], start
    while t < end:
        out.append((t, min(t + size, end)))
        t += size
    return out


def _in(t: datetime | None, lo: datetime, hi: datetime) -> bool:
    return t is not None and lo <= t < hi


def run_stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts, success rate, mean and p95 duration of finished runs (None when none)."""
    finished = [r for r in runs if r["state"] in OK_STATES | FAILED_STATES]
    ok = [r for r in finished if r["state"] in OK_STATES]
    durations = [r["duration_s"] for r in ok if r.get("duration_s") is not None]
    return {"runs": len(finished), "succeeded": len(ok), "failed": len(finished) - len(ok),
            "running": len(runs) - len(finished),
            "success_rate": len(ok) / len(finished) if finished else None,
            "mean_duration_s": statistics.fmean(durations) if durations else None,
            "p95_duration_s": percentile(durations, 95),
            "max_duration_s": max(durations) if durations else None}


def build_report(period: Period, now: datetime, runs: list[dict[str, Any]],
                 snapshots: list[dict[str, Any]], storage: list[dict[str, Any]],
                 drills: list[dict[str, Any]], *, success_target: float = SUCCESS_TARGET,
                 duration_target_s: float = DURATION_TARGET_S,
                 capacity_threshold: float = CAPACITY_THRESHOLD,
                 size_target_bytes: float | None = None, site: str = "default",
                 timezone: str = "UTC", sources: list[str] | None = None) -> dict[str, Any]:
    """The report of ``period`` ending ``now`` (a plain dict: JSON-able apart from datetimes)."""
    spec = PERIODS[period]
    since = now - spec["window"]
    in_window = [r for r in runs if _in(r.get("start") or r.get("end"), since, now)]
    stats = run_stats(in_window)
    notes: list[str] = []
    if not runs:
        notes.append("no backup runs in the history: nothing to measure yet")
    elif not in_window:
        notes.append(f"no backup runs in this {period} window")
    earliest = min((r.get("start") or r.get("end") for r in runs
                    if r.get("start") or r.get("end")), default=None)
    if earliest is not None and earliest > now - spec["trend_window"]:
        notes.append(f"partial history: runs only since {earliest:%Y-%m-%d %H:%M} UTC, "
                     f"less than the {spec['trend_window'].days}-day trend window")
    snaps = [s for s in snapshots if _in(s["time"], since, now)]
    sizes = [s["bytes_total"] for s in snaps]
    new = [s["bytes_stored"] for s in snaps]
    size = {"snapshots": len(snaps),
            "mean_bytes": statistics.fmean(sizes) if sizes else None,
            "mean_new_bytes": statistics.fmean(new) if new else None,
            "target_bytes": size_target_bytes}
    size["within_target"] = (None if size_target_bytes is None or size["mean_bytes"] is None
                             else size["mean_bytes"] <= size_target_bytes)
    tiers: dict[str, dict[str, Any]] = {}
    for st in storage:
        t = tiers.setdefault(st["tier"], {"bytes": 0, "used_bytes": 0, "capacity_bytes": 0,
                                          "targets": [], "capacity_known": True})
        t["bytes"] += st["bytes"]
        t["used_bytes"] += st.get("used_bytes") or st["bytes"]
        t["targets"].append(st["target"])
        if st.get("capacity_bytes"):
            t["capacity_bytes"] += st["capacity_bytes"]
        else:
            t["capacity_known"] = False
    for t in tiers.values():
        t["used_ratio"] = (t["used_bytes"] / t["capacity_bytes"]
                           if t["capacity_known"] and t["capacity_bytes"] else None)
        t["over_threshold"] = (None if t["used_ratio"] is None
                               else t["used_ratio"] >= capacity_threshold)
    # trends over per-bucket values
    tstart = now - spec["trend_window"]
    buckets = _buckets(tstart, now, spec["bucket"])
    series: dict[str, list[Any]] = {"start": [b[0] for b in buckets], "success_rate": [],
                                    "completion_time": [], "p95_time": [], "error_rate": [],
                                    "storage_use": [], "runs": [], "failed": []}
    stored_before = sum(s["bytes_stored"] for s in snapshots if s["time"] < tstart)
    for lo, hi in buckets:
        b = run_stats([r for r in runs if _in(r.get("start") or r.get("end"), lo, hi)])
        series["runs"].append(b["runs"])
        series["failed"].append(b["failed"])
        series["success_rate"].append(b["success_rate"])
        series["error_rate"].append(None if not b["runs"] else b["failed"] / b["runs"])
        series["completion_time"].append(b["mean_duration_s"])
        series["p95_time"].append(b["p95_duration_s"])
        stored_before += sum(s["bytes_stored"] for s in snapshots if _in(s["time"], lo, hi))
        series["storage_use"].append(stored_before if snapshots else None)
    trends = {name: classify(name, series[name])
              for name in ("success_rate", "completion_time", "storage_use", "error_rate")}
    return {
        "period": period, "title": spec["title"], "site": site, "timezone": timezone,
        "generated": now, "since": since, "until": now, "notes": notes,
        "targets": {"success_rate": success_target, "duration_s": duration_target_s,
                    "capacity_ratio": capacity_threshold, "size_bytes": size_target_bytes,
                    "trend_threshold": TREND_THRESHOLD},
        "runs": stats,
        "success_met": None if stats["success_rate"] is None
        else stats["success_rate"] >= success_target,
        "duration_met": None if stats["p95_duration_s"] is None
        else stats["p95_duration_s"] <= duration_target_s,
        "failures": [{"name": r["name"], "state": r["state"], "start": r.get("start"),
                      "message": r.get("message") or ""}
                     for r in in_window if r["state"] in FAILED_STATES][:20],
        "size": size, "storage": tiers, "series": series, "trends": trends,
        "recovery": recovery_testing(drills, now, sources),
    }


def recovery_testing(drills: list[dict[str, Any]], now: datetime,
                     sources: list[str] | None = None) -> dict[str, Any]:
    """Last drill (any scope), its result, measured RTO, integrity, next drill date; the
    sources never drilled or overdue."""
    if not drills:
        return {"last": None, "next_due": None, "overdue": list(sources or []),
                "note": "no recovery drill has run yet"}
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for d in drills:
        latest[(d.get("scope", "source"), d.get("name", "?"))] = d
    last = max(drills, key=lambda d: d.get("started") or "")
    today = now.astimezone(UTC).date()
    overdue = sorted(name for (scope, name), d in latest.items()
                     if d.get("next_due") and date.fromisoformat(d["next_due"]) < today)
    overdue += sorted(s for s in (sources or []) if ("source", s) not in latest)
    dues = [d["next_due"] for d in latest.values() if d.get("next_due")]
    return {"last": last, "next_due": min(dues) if dues else None, "overdue": overdue,
            "drills_in_history": len(drills),
            "latest": sorted(latest.values(), key=lambda d: d.get("started") or "")}
