"""Global concurrency limits: one slot per source, so two backups of a source never overlap."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prefect.concurrency.sync import concurrency

from strongroom.errors import ConfigError

WAIT_S = 6 * 3600  # a queued backup waits at most this long for the running one


def limit_name(source: str) -> str:
    """The limit guarding a source (``files/docs`` and ``docs`` share one)."""
    return f"strongroom-source-{source.rpartition('/')[2]}"


def ensure_limits(sources: Iterable[str]) -> list[str]:
    """Create (or reset to 1) the limit of each source; run at deploy time."""
    from prefect.client.orchestration import get_client

    names = [limit_name(s) for s in sources]
    with get_client(sync_client=True) as client:
        for name in names:
            client.upsert_global_concurrency_limit_by_name(name, 1)
    return names


@contextmanager
def source_slot(source: str, timeout_s: float = WAIT_S) -> Iterator[None]:
    """Hold the source's slot (strict: a missing limit is a deployment error, not a free pass)."""
    from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError

    name = limit_name(source)
    try:
        with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_s):
            yield
    except ConcurrencySlotAcquisitionError as exc:
        if "must be created" in str(exc):
            raise ConfigError(f"concurrency limit {name} does not exist: deploy the platform "
                              "first (it creates one limit per source)") from None
        raise
