"""A restore that runs out of room (here: the file size limit, as a full disk would) names
the file it could not write and leaves no partial file behind."""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # 1 MiB per file


def test_restore_hitting_the_size_limit_names_the_file(cli, repo_env, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "small").write_bytes(os.urandom(100_000))
    (src / "large.bin").write_bytes(os.urandom(3_000_000))
    cli("init")
    cli("backup", "files", str(src))
    dest = tmp_path / "dest"
    proc = subprocess.run(["strongroom", "restore", "latest", "--target", str(dest)],
                          env=repo_env, capture_output=True, text=True, timeout=300,
                          preexec_fn=_limit_file_size)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "large.bin" in lines[0] and "None" not in lines[0]
    left = [p.name for p in dest.rglob("*") if p.is_file()]
    assert not [n for n in left if "partial" in n or n == "large.bin"]
