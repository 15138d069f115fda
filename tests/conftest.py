"""Suite-wide settings and shared fixtures."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator

import pytest

# Argon2id at 64 MiB per key-slot open would dominate a suite that opens repositories hundreds
# of times; tests lower the memory cost (production slots keep the default).
os.environ.setdefault("STRONGROOM_ARGON2_MEMORY_KIB", "1024")
# moto's request log drowns failure reports
logging.getLogger("werkzeug").setLevel(logging.WARNING)
# moto accepts any credentials; boto3 still wants some.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# Short retry delays for the transient-fault tests; read when the tasks module is imported.
os.environ.setdefault("STRONGROOM_RETRY_DELAY_S", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto S3 server for the session, on a free 127.0.0.1 port."""
    from tests.support.moto_server import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect API on SQLite, with every block type: one per session (per xdist
    worker), shared by every directory that runs flows (a harness takes 10-20 s to start)."""
    from tests.support.prefect_api import test_harness

    with test_harness():
        import blocks

        blocks.register_all()
        yield


@pytest.fixture
def names() -> str:
    """A unique suffix for block names so tests never see each other's blocks."""
    return secrets.token_hex(4)


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh, empty bucket name on the session's moto server."""
    from tests.support.moto_server import s3_client

    name = f"test-{secrets.token_hex(6)}"
    s3_client(moto_endpoint).create_bucket(Bucket=name)
    return name


# Directories whose tests share one expensive session server (a JVM, a `prefect server`):
# under pytest-xdist (`./scripts/test` runs two workers) they stay on one worker, so the
# server starts once; any other test file is its own group (module fixtures set up once).
ONE_WORKER_DIRS = ("alerts", "neo4j")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        parts = item.path.relative_to(config.rootpath).parts
        shared = len(parts) > 2 and parts[0] == "tests" and parts[1] in ONE_WORKER_DIRS
        item.add_marker(pytest.mark.xdist_group("/".join(parts[:2] if shared else parts)))
