"""An edited or damaged config is named as such (one error line, never an unexpected
exception), whatever JSON it holds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


EDITS = {
    "list": lambda d: [d],
    "string": lambda d: "strongroom",
    "null": lambda d: None,
    "no-id": lambda d: {k: v for k, v in d.items() if k != "id"},
    "id-not-text": lambda d: {**d, "id": 5},
    "pack-target": lambda d: {**d, "pack_target": 1},
    "no-mac": lambda d: {k: v for k, v in d.items() if k != "mac"},
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_edited_config_is_a_clear_integrity_error(cli, repo_env, edit: str) -> None:
    cli("init")
    config = Path(repo_env["STRONGROOM_REPOSITORY"]) / "config"
    config.write_text(json.dumps(EDITS[edit](json.loads(config.read_text()))))
    proc = cli("snapshots", check=False)
    assert proc.returncode == 13, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: config of "), proc.stderr
