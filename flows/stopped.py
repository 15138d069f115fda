"""Post-mortems of recoveries that stop outside the five stages of ``flows.recovery.recover``
(recover-system's apply and second diff, recover-incident's checks and forensic copies): a
failed one under its own key, never over a success or another failure, plus the
``recovery.failed`` event; and the one-line error the flow then raises."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from prefect.artifacts import create_markdown_artifact

from flows.report import post_mortem_markdown
from strongroom.errors import StrongroomError
from tasks.notify import notify
from tasks.progress import artifact_key


class RecoveryStopped(StrongroomError):
    """A recovery stopped; the message is one line: where, why, what was changed."""


def one_line(exc: BaseException) -> str:
    """An exception as one line (a raw OSError keeps its reason and path, not a traceback)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    if not isinstance(exc, StrongroomError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:500]


def stopped(exc: BaseException, message: str) -> StrongroomError:
    """The error a stopped recovery raises: ``message`` (one line), of ``exc``'s own class when
    that is one of ours (an IntegrityError stays one), else :class:`RecoveryStopped`."""
    if isinstance(exc, StrongroomError):
        try:
            return type(exc)(message)
        except Exception:  # noqa: BLE001 - a class with another constructor
            pass
    return RecoveryStopped(message)


def failed_post_mortem(title: str, stages: dict[str, float], error: str, failed_stage: str,
                       left_behind: list[str], anomalies: list[str],
                       results: list[dict[str, Any]] | None = None) -> str:
    """Write the failed post-mortem (its own key) and emit ``recovery.failed``; returns the
    artifact key. Reporting never hides the failure itself: errors here are swallowed."""
    key = artifact_key("post-mortem", title, "failed", f"{datetime.now(UTC):%Y%m%dt%H%M%S%f}")
    with suppress(Exception):
        create_markdown_artifact(
            post_mortem_markdown(title, stages, list(results or []), anomalies, error,
                                 failed_stage=failed_stage, left_behind=left_behind),
            key=key, description=f"Post-mortem: {title} (FAILED)")
    with suppress(Exception):
        notify("recovery.failed", title, f"recovery {title} failed at {failed_stage}: {error}",
               {"artifact": key}, level="error")
    return key
