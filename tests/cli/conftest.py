"""CLI fixtures: a fresh local repository in the environment, and ``strongroom ARGS`` runs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

PASSWORD = "correct horse battery staple"
Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    """Environment naming a fresh (uninitialised) local repository and its password."""
    env = dict(os.environ, STRONGROOM_PASSWORD=PASSWORD,
               STRONGROOM_REPOSITORY=str(tmp_path / "repo"), COLUMNS="40")
    env.pop("STRONGROOM_PASSWORD_FILE", None)
    env.pop("STRONGROOM_KEYFILE", None)
    return env


@pytest.fixture
def cli(repo_env: dict[str, str]) -> Runner:
    """Run ``strongroom ARGS`` (not on a terminal) with the repository's environment."""

    def run(*args: str, check: bool = True, env: dict[str, str] | None = None,
            drop: tuple[str, ...] = (), timeout: float = 300) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in {**repo_env, **(env or {})}.items() if k not in drop}
        proc = subprocess.run(["strongroom", *args], env=full, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"strongroom {' '.join(args)} -> {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    return run


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, *parts: str) -> None:
    """``proc`` failed with ``code`` and one ``error:`` line holding every one of ``parts``."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "unexpected" not in proc.stderr and "Traceback" not in proc.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
