"""Fixtures for the concurrency tests: a repository URL on local disk or moto S3."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

# Race loops per test: a few in the suite; `STRONGROOM_RACE_RUNS=50` for the full proof.
RACE_RUNS = int(os.environ.get("STRONGROOM_RACE_RUNS", "2"))


@pytest.fixture(params=["local", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """``(url, options)`` of a place for a new repository."""
    if request.param == "local":
        return str(tmp_path / "r"), {}
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/r", {"endpoint": request.getfixturevalue("moto_endpoint")}
