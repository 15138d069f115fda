"""Notify task: a Prefect event (automations fan it out) plus a log line; never secrets."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.logging import get_run_logger


@task(name="notify", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def notify(event: str, resource: str, summary: str, payload: dict[str, Any] | None = None,
           level: str = "info") -> dict[str, Any]:
    """Emit ``strongroom.<event>`` about ``resource`` and log ``summary``."""
    logger = get_run_logger()
    (logger.warning if level != "info" else logger.info)("%s", summary)
    emit_event(event=f"strongroom.{event}",
               resource={"prefect.resource.id": f"strongroom.{resource}",
                         "prefect.resource.name": resource},
               payload={"summary": summary, **(payload or {})})
    return {"event": f"strongroom.{event}", "resource": resource}
