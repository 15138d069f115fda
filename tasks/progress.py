"""Progress artifacts for long stages, updated at most once a second."""

from __future__ import annotations

import time
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext, TaskRunContext


class Progress:
    """A progress artifact (0-100) that is cheap to update often; silent outside a run."""

    def __init__(self, key: str, total: float, description: str) -> None:
        self.total = max(total, 1.0)
        self.done = 0.0
        self._last = 0.0
        self._id: UUID | None = None
        if FlowRunContext.get() or TaskRunContext.get():
            self._id = create_progress_artifact(0.0, key=key, description=description)

    def advance(self, amount: float) -> None:
        self.done += amount
        now = time.monotonic()
        if self._id is not None and now - self._last >= 1.0:
            self._last = now
            update_progress_artifact(self._id, min(100.0, 100.0 * self.done / self.total))

    def finish(self) -> None:
        if self._id is not None:
            update_progress_artifact(self._id, 100.0)


def artifact_key(*parts: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    text = "-".join(parts).lower()
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")[:200]
