"""Report flow tests run in the Prefect harness of tests/prefect (one temporary API a session)."""

from tests.prefect.conftest import names, prefect_harness  # noqa: F401
