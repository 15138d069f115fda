"""``strongroom up`` makes its server findable: the profile is saved and the export line is the
first thing printed, before the platform file's warnings."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from deployments.up import PROFILE, announce, demo_platform
from strongroom.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
API = "http://127.0.0.1:4321/api"


def test_export_line_first_then_warnings_and_the_profile_saved(tmp_path):
    config = demo_platform(tmp_path / "state")
    profiles = tmp_path / "profiles.toml"
    # one terminal: stdout and stderr interleaved as the operator sees them
    lines = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from deployments.up import announce; "
         "announce(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])",
         str(config), str(profiles), API],
        env=os.environ | {"STRONGROOM_DEMO_PASSWORD": "pw"}, cwd=ROOT, check=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    ).stdout.splitlines()
    assert lines[0] == f"export PREFECT_API_URL={API}"
    assert f"prefect profile use {PROFILE}" in lines[1]
    assert tomllib.loads(profiles.read_text())["profiles"][PROFILE] == {"PREFECT_API_URL": API}


def test_a_bad_platform_file_fails_before_the_profile_is_saved(tmp_path, capfd):
    bad = tmp_path / "platform.yaml"
    bad.write_text("site: [unclosed\n")
    profiles = tmp_path / "profiles.toml"
    with pytest.raises(ConfigError, match="not valid YAML"):
        announce(bad, profiles, API)
    assert not profiles.exists()
    assert "export" not in capfd.readouterr().out
