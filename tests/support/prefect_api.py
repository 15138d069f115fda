"""Point this test process at another Prefect server for a while, events included."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any


def _drain_client_workers() -> None:
    """Flush and stop Prefect's events and API-log workers. They are process-wide singletons
    bound to the API URL of the moment they started (the events worker's key does not include
    the URL): left running, they keep sending to a server that is gone and every later event
    fails ("Service 'EventsWorker' failed to process item"), so task-run states never arrive."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(RuntimeError):
        APILogWorker.drain_all(timeout=30)
    EventsWorker.drain_all(timeout=30)


@contextlib.contextmanager
def prefect_api(url: str, settings: Mapping[Any, Any] | None = None) -> Iterator[None]:
    """`temporary_settings` with PREFECT_API_URL=url (plus `settings`, keyed by Setting), whose
    client workers start against `url` and are stopped before the previous URL is back."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    _drain_client_workers()
    with temporary_settings({PREFECT_API_URL: url, **(settings or {})}):
        try:
            yield
        finally:
            _drain_client_workers()


@contextlib.contextmanager
def test_harness() -> Iterator[None]:
    """Prefect's test harness (a temporary API on SQLite) with flow heartbeats off, whose
    client workers start against it even when another API was in use in this process
    (another suite's server, still up, or one already gone). The harness drains them itself
    when it ends."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    _drain_client_workers()
    # a loaded machine (2 cores, many suites) can take over Prefect's default 30 s to start
    with prefect_test_harness(server_startup_timeout=120), \
            temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


test_harness.__test__ = False  # a context manager, not a test
