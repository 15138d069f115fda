"""The Prefect run's ids on the engine's audit records (the engine never imports prefect)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from strongroom import audit


@contextmanager
def run_context() -> Iterator[None]:
    """Within the block, audit records carry the flow run (and task run, deployment) ids."""
    from prefect.runtime import deployment, flow_run, task_run

    fields = {"flow_run": flow_run.id, "flow": flow_run.flow_name,
              "task_run": task_run.id, "deployment": deployment.name}
    with audit.context(**{k: v for k, v in fields.items() if v}):
        yield
