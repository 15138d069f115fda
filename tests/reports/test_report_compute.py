"""Report figures from plain records: rates, percentiles, trends, empty and partial history,
and the generation time over 400 days of synthetic history."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from flows.reporting.compute import build_report, classify, percentile, run_stats
from flows.reporting.render import to_markdown
from tests.reports import synthetic

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_percentile_and_stats():
    assert percentile([], 95) is None
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile(list(map(float, range(101))), 95) == pytest.approx(95.0)
    stats = run_stats([{"state": "COMPLETED", "duration_s": 10.0},
                       {"state": "FAILED", "duration_s": None},
                       {"state": "RUNNING", "duration_s": None}])
    assert stats["runs"] == 2 and stats["running"] == 1
    assert stats["success_rate"] == 0.5 and stats["mean_duration_s"] == 10.0


@pytest.mark.parametrize(("name", "values", "expected"), [
    ("success_rate", [0.99, 0.99, 0.99, 0.99], "stable"),
    ("success_rate", [0.5, 0.6, 0.7, 0.8, 0.9], "improving"),
    ("success_rate", [0.99, 0.9, 0.8, 0.7], "decreasing"),
    ("completion_time", [100, 200, 300, 400], "increasing"),
    ("completion_time", [400, 300, 200, 100], "improving"),
    ("completion_time", [100, 101, 100, 101, 100], "stable"),
    ("storage_use", [1, 2, 3, 4], "increasing"),
    ("error_rate", [0.0, 0.0, 0.0], "stable"),
    ("error_rate", [0.3, 0.2, 0.1, 0.0], "improving"),
    ("error_rate", [0.1, None, None], "not enough data"),
])
def test_trend_from_fitted_slope(name, values, expected):
    assert classify(name, values)["trend"] == expected


def test_empty_history_says_so():
    report = build_report("weekly", NOW, [], [], [], [])
    assert report["runs"]["success_rate"] is None and report["success_met"] is None
    assert any("no backup runs" in n for n in report["notes"])
    assert report["recovery"]["note"] == "no recovery drill has run yet"
    text = to_markdown(report)
    assert "n/a" in text and "no data" in text


def test_partial_history_is_noted():
    runs, snaps = synthetic.history(NOW, days=3)
    report = build_report("monthly", NOW, runs, snaps, synthetic.storage(), [])
    assert any("partial history" in n for n in report["notes"])
    assert report["runs"]["runs"] == len(runs)


def test_figures_over_synthetic_history():
    runs, snaps = synthetic.history(NOW, days=120, fail_every=50)
    report = build_report("quarterly", NOW, runs, snaps, synthetic.storage(),
                          synthetic.drills(NOW), sources=list(synthetic.SOURCES))
    assert report["runs"]["success_rate"] == pytest.approx(0.98, abs=0.002)
    assert report["success_met"] is False and report["duration_met"] is True
    assert report["trends"]["completion_time"]["trend"] == "increasing"
    assert report["trends"]["storage_use"]["trend"] == "increasing"
    assert report["storage"]["primary"]["used_ratio"] == pytest.approx(600 / 1024)
    assert report["storage"]["primary"]["over_threshold"] is False
    assert report["storage"]["secondary"]["over_threshold"] is True
    rec = report["recovery"]
    assert rec["last"]["name"] == "docs" and rec["next_due"]
    assert rec["overdue"] == ["cache", "config", "main-db"]  # never drilled


def test_generation_time_over_400_days(record_property):
    """Compute, Markdown and HTML with four charts for each period over 400 days of history
    (4 sources x 6 runs a day: 9600 runs); the figure goes into the report."""
    from flows.reports import render

    runs, snaps = synthetic.history(NOW, days=400)
    timings = {}
    for period in ("daily", "weekly", "monthly", "quarterly"):
        t0 = time.perf_counter()
        report = build_report(period, NOW, runs, snaps, synthetic.storage(),
                              synthetic.drills(NOW))
        markdown, html = render(report)
        timings[period] = time.perf_counter() - t0
        assert html.count("<img class='chart'") == 4 and "Trends" in markdown
    record_property("report_seconds", timings)
    print("report generation over 400 days:", {k: round(v, 3) for k, v in timings.items()})
    assert max(timings.values()) < 30
    assert report["since"] == NOW - timedelta(days=91)
