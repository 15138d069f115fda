"""Engine fixtures: a repository on each backend, and a CLI runner."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(params=["local", "s3"])
def repo_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Environment naming a fresh (uninitialised) repository on the local disk or on S3."""
    env = dict(os.environ, STRONGROOM_PASSWORD="correct horse battery staple")
    if request.param == "local":
        env["STRONGROOM_REPOSITORY"] = str(tmp_path / "repo")
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        env["AWS_ENDPOINT_URL"] = endpoint
        env["STRONGROOM_REPOSITORY"] = f"s3://{bucket}/repo-{secrets.token_hex(3)}"
    return env


Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(repo_env: dict[str, str]) -> Runner:
    """Run ``strongroom ARGS`` with the repository's environment; return the completed process."""

    def run(*args: str, check: bool = True, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["strongroom", *args], env={**repo_env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"strongroom {' '.join(args)} -> {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    return run
