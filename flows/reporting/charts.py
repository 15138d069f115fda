"""Report charts with matplotlib (Agg, no display), each an SVG as a base64 data URI."""

from __future__ import annotations

import base64
import io
from typing import Any

CHART_SIZE = (7.0, 2.6)


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=CHART_SIZE, dpi=100)
    fig.set_layout_engine("constrained")
    return fig


def _data_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg")
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def _labels(report: dict[str, Any]) -> list[str]:
    return [t.strftime("%m-%d") for t in report["series"]["start"]]


def _no_data(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this window", ha="center", va="center",
            transform=ax.transAxes, color="#777")


def success_chart(report: dict[str, Any]) -> str:
    """Success rate per bucket (bars) against the target (line)."""
    fig = _figure()
    ax = fig.add_subplot()
    labels, values = _labels(report), report["series"]["success_rate"]
    xs = [i for i, v in enumerate(values) if v is not None]
    ax.bar(xs, [values[i] * 100 for i in xs], color="#2e7d32", label="success rate")
    ax.axhline(report["targets"]["success_rate"] * 100, color="#c62828", ls="--",
               label=f"target {report['targets']['success_rate']:.1%}")
    ax.set_ylim(min([90.0, *[values[i] * 100 - 2 for i in xs]]), 100.5)
    ax.set_ylabel("% succeeded")
    ax.set_title("Backup success rate")
    ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
    ax.legend(loc="lower left", fontsize=7)
    if not xs:
        _no_data(ax, "finished backups")
    return _data_uri(fig)


def duration_chart(report: dict[str, Any]) -> str:
    """Mean and p95 completion time per bucket against the 4-hour target."""
    fig = _figure()
    ax = fig.add_subplot()
    labels = _labels(report)
    for key, style, label in (("completion_time", "-o", "mean"), ("p95_time", "--s", "p95")):
        vals = report["series"][key]
        xs = [i for i, v in enumerate(vals) if v is not None]
        ax.plot(xs, [vals[i] / 60 for i in xs], style, ms=3, label=label)
    ax.axhline(report["targets"]["duration_s"] / 60, color="#c62828", ls=":",
               label=f"target {report['targets']['duration_s'] / 3600:g} h")
    ax.set_ylabel("minutes")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_title("Backup completion time")
    ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
    ax.legend(loc="upper left", fontsize=7)
    if not any(v is not None for v in report["series"]["completion_time"]):
        _no_data(ax, "completed backups")
    return _data_uri(fig)


def storage_chart(report: dict[str, Any]) -> str:
    """Storage used per tier (bars: % of capacity when known) against the 70% threshold."""
    fig = _figure()
    ax = fig.add_subplot()
    tiers = report["storage"]
    names = list(tiers)
    known = [t["used_ratio"] is not None for t in tiers.values()]
    if names and all(known):
        vals = [t["used_ratio"] * 100 for t in tiers.values()]
        colors = ["#c62828" if v >= report["targets"]["capacity_ratio"] * 100 else "#1565c0"
                  for v in vals]
        ax.barh(names, vals, color=colors)
        ax.axvline(report["targets"]["capacity_ratio"] * 100, color="#c62828", ls="--",
                   label=f"threshold {report['targets']['capacity_ratio']:.0%}")
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of capacity used")
        ax.legend(loc="lower right", fontsize=7)
    elif names:
        ax.barh(names, [t["bytes"] / 2**30 for t in tiers.values()], color="#1565c0")
        ax.set_xlabel("GiB stored (capacity unknown)")
    else:
        _no_data(ax, "repositories")
    ax.set_title("Storage per tier")
    return _data_uri(fig)


def growth_chart(report: dict[str, Any]) -> str:
    """Stored bytes over the trend window and failed runs per bucket."""
    fig = _figure()
    ax = fig.add_subplot()
    labels = _labels(report)
    vals = report["series"]["storage_use"]
    xs = [i for i, v in enumerate(vals) if v is not None]
    ax.plot(xs, [vals[i] / 2**30 for i in xs], "-", color="#6a1b9a", label="stored (GiB)")
    ax.set_ylabel("GiB stored")
    ax2 = ax.twinx()
    ax2.bar(range(len(labels)), report["series"]["failed"], color="#ef6c00", alpha=0.5,
            label="failed runs")
    ax2.set_ylabel("failed runs")
    ax.set_title("Storage growth and errors")
    ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
    if not xs:
        _no_data(ax, "snapshots")
    return _data_uri(fig)


def all_charts(report: dict[str, Any]) -> dict[str, str]:
    """Title -> data URI of every chart of the report."""
    return {"Backup success rate": success_chart(report),
            "Backup completion time": duration_chart(report),
            "Storage per tier": storage_chart(report),
            "Storage growth and errors": growth_chart(report)}
