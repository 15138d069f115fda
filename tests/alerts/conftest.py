"""A real ``prefect server`` on a free loopback port for the alert tests (one per session),
with this process's Prefect client pointed at it, and the local receivers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.alerts.receivers import SmtpRecorder, WebhookRecorder
from tests.support.prefect_api import prefect_api


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from deployments.up import Stack, free_port, stack_env, wait_healthy

    root = tmp_path_factory.mktemp("alerts-server")
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env = base | stack_env(root, "127.0.0.1", port) | {"PREFECT_LOGGING_LEVEL": "INFO"}
    stack = Stack(root, {})
    stack.env = env
    stack.spawn("server", [sys.executable, "-m", "prefect", "server", "start",
                           "--analytics-off"])
    api = env["PREFECT_API_URL"]
    try:
        wait_healthy(stack, api, 180)
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

        with prefect_api(api, {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            import blocks

            blocks.register_all()
            yield api
    finally:
        stack.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookRecorder]:
    rec = WebhookRecorder()
    yield rec
    rec.close()


@pytest.fixture
def smtp() -> Iterator[SmtpRecorder]:
    rec = SmtpRecorder()
    yield rec
    rec.close()


def platform(tmp: Path, sources: dict, channels: dict, schedules: dict | None = None,
             **extra: object) -> dict:
    """A platform document: one local primary repository, ``sources``, ``channels``."""
    doc = {"site": "alerts", "timezone": "UTC",
           "keys": {"main": {"password": "pw-alerts-secret"}},
           "targets": {"primary": {"url": str(tmp / "repo"), "role": "primary", "key": "main"}},
           "sources": sources,
           "schedules": schedules or {"fast": {"tier": "incremental", "cron": "*/5 * * * *",
                                               "classes": ["files"], "keep": "1d",
                                               "alert_within": "20s"}},
           "notifications": {"channels": channels}}
    return doc | extra
