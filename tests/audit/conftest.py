"""Audit fixtures: a repository place on local disk or moto S3, a CLI runner, a state dir."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

PASSWORD = "audit test password"
Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This client's memory of the audit head lives in the test's directory."""
    state = tmp_path / "state"
    monkeypatch.setenv("STRONGROOM_STATE_DIR", str(state))
    return state


@pytest.fixture(params=["local", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """``(url, options)`` of a place for a new repository."""
    if request.param == "local":
        return str(tmp_path / "r"), {}
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/r", {"endpoint": request.getfixturevalue("moto_endpoint")}


@pytest.fixture
def repo_env(target: tuple[str, dict[str, Any]], tmp_path: Path) -> dict[str, str]:
    url, opts = target
    env = dict(os.environ, STRONGROOM_PASSWORD=PASSWORD, STRONGROOM_REPOSITORY=url,
               STRONGROOM_STATE_DIR=str(tmp_path / "state"))
    if opts.get("endpoint"):
        env["AWS_ENDPOINT_URL"] = opts["endpoint"]
    return env


@pytest.fixture
def cli(repo_env: dict[str, str]) -> Runner:
    """Run ``strongroom ARGS``; return the completed process (``check``: exit 0 wanted)."""

    def run(*args: str, check: bool = True, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["strongroom", *args], env={**repo_env, **(env or {})},
                              capture_output=True, text=True, timeout=300, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"strongroom {' '.join(args)} -> {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    return run


def token() -> str:
    return secrets.token_hex(3)
