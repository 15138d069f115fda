"""Global concurrency limits: one slot per source, so two backups of a source never overlap."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
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


def limit_exists(name: str) -> bool:
    """Whether the global concurrency limit ``name`` exists on the Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return False
    return True


@contextmanager
def source_slot(source: str, timeout_s: float = WAIT_S) -> Iterator[None]:
    """Hold the source's slot (strict: a missing limit is a deployment error, not a free pass)."""
    name = limit_name(source)
    try:
        with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_s):
            yield
    except ConcurrencySlotAcquisitionError:
        if not limit_exists(name):  # strict mode's documented failure: no such limit
            raise ConfigError(f"concurrency limit {name} does not exist: deploy the platform "
                              "first (it creates one limit per source)") from None
        raise
