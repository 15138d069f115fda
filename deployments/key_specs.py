"""Deployments of issue 13 s.1: the quarterly ``key-rotation`` of every target (first day of
January, April, July and October, platform time zone) and a daily ``key-rotation-check`` that
alerts when a target's newest data-key epoch is older than 100 days."""

from __future__ import annotations

from typing import Any

KEY_ROTATION_CRON = "0 3 1 1,4,7,10 *"
KEY_CHECK_CRON = "30 6 * * *"


def key_specs(config: Any) -> dict[str, dict[str, Any]]:
    from deployments.build import when  # build imports this module

    targets = list(config.targets)
    return {
        "key-rotation": {
            "flow": "key_rotation",
            "schedules": [{"cron": KEY_ROTATION_CRON, "timezone": config.timezone,
                           "active": True, "slug": "key-rotation"}],
            "parameters": {"targets": targets, "rotate": True},
            "tags": ["strongroom", "keys"],
            "description": "quarterly data-key rotation of every target (a new epoch; no "
                           f"data rewritten) {when(KEY_ROTATION_CRON, config.timezone)}"},
        "key-rotation-check": {
            "flow": "key_rotation",
            "schedules": [{"cron": KEY_CHECK_CRON, "timezone": config.timezone,
                           "active": True, "slug": "key-rotation-check"}],
            "parameters": {"targets": targets, "rotate": False},
            "tags": ["strongroom", "keys"],
            "description": "alert when a target's newest data-key epoch is older than 100 "
                           f"days {when(KEY_CHECK_CRON, config.timezone)}"},
    }


def flows() -> dict[str, Any]:
    from flows.keys import key_rotation

    return {"key_rotation": key_rotation}
