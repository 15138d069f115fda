"""Each deployment shows one schedule, and its description names the time zone and the cron once
(the UI shows next runs in the browser's zone), for serve and for work pools alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployments.build import describe_cron, pool_specs, schedule_specs, when
from deployments.config import load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "deployments" / "platform.example.yaml"


@pytest.fixture
def example(monkeypatch):
    for var in ("STRONGROOM_PASSWORD", "ORDERS_DB_PASSWORD", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, f"value-of-{var.lower()}")
    monkeypatch.setenv("STRONGROOM_S3_ENDPOINT", "http://127.0.0.1:9")
    return load_config(EXAMPLE)


@pytest.mark.parametrize("specs_of", [schedule_specs, pool_specs], ids=["serve", "pool"])
def test_one_schedule_per_deployment_described_with_its_time_zone(example, specs_of):
    for name, spec in specs_of(example).items():
        schedules = spec["schedules"]
        assert len(schedules) <= 1, f"{name} has {len(schedules)} schedules"
        for sched in schedules:
            assert sched["timezone"] == example.timezone
            assert example.timezone in spec["description"], name
            assert spec["description"].count(sched["cron"]) == 1, spec["description"]


@pytest.mark.parametrize(("cron", "words"), [
    ("0 2 * * *", "daily at 02:00"), ("0 1 * * 0", "weekly on Sunday at 01:00"),
    ("0 0 1 * *", "monthly on day 1 at 00:00"), ("0 * * * *", "hourly at minute 0"),
    ("*/15 * * * *", "every 15 minutes"), ("0 */4 * * *", "every 4 hours at minute 0"),
    ("0 10 15 1,4,7,10 *", "at cron 0 10 15 1,4,7,10 *")])
def test_crons_in_words(cron, words):
    assert describe_cron(cron) == words
    assert when(cron, "Europe/Paris").startswith(
        f"{words} Europe/Paris (cron {cron})" if not words.startswith("at cron")
        else f"(cron {cron}) Europe/Paris")
