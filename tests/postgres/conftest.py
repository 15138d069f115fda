"""PostgreSQL test fixtures (see tests/support/pg_cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import pg_cluster as pgc

if not pgc.available():
    pytest.skip("PostgreSQL 15 binaries not installed", allow_module_level=True)


@pytest.fixture
def pg_root() -> Iterator[Path]:
    with pgc.workdir() as root:
        yield root


@pytest.fixture
def plain_cluster(pg_root: Path) -> Iterator[pgc.Cluster]:
    """A cluster without WAL archiving."""
    cluster = pgc.initdb(pg_root / "c")
    try:
        yield cluster
    finally:
        pgc.stop(cluster)
