"""Loading a platform file checks each source's schedules against its class's RPO."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from strongroom.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def doc(schedules: dict, sources: dict | None = None, **extra: object) -> dict:
    return {"site": "s", "timezone": "America/New_York", "keys": {"k": {"password": "x"}},
            "targets": {"primary": {"url": "/srv/repo", "key": "k"}},
            "sources": sources or {"docs": {"kind": "files", "class": "files", "paths": ["/d"]},
                                   "vault": {"kind": "files", "class": "security",
                                             "paths": ["/v"]}},
            "schedules": schedules} | extra


DAILY = {"daily": {"tier": "incremental", "cron": "0 2 * * *",
                   "classes": ["files", "security"], "keep": "14d"}}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_daily_incremental_misses_files_and_security_rpo_by_how_much(tmp_path, capsys):
    from deployments.config import load_config

    load_config(write(tmp_path, doc(DAILY)))
    err = capsys.readouterr().err
    # 25 h on the day clocks fall back
    assert ("source docs (files, RPO 4h): its schedules (daily) leave up to 1d 1h between "
            "backups, missing the RPO by 21h") in err
    assert "source vault (security, RPO 15min)" in err and "missing the RPO by 1d 45min" in err
    with pytest.raises(ConfigError, match="schedules cannot meet the objectives: source docs"):
        load_config(write(tmp_path, doc(DAILY)), strict=True)


def test_rows_together_meet_the_rpo_and_objectives_override_the_seed(tmp_path, capsys):
    from deployments.config import load_config
    from deployments.objectives import max_gap

    rows = DAILY | {"four-hourly": {"tier": "incremental", "cron": "0 */4 * * *",
                                    "classes": ["files"], "keep": "2d"},
                    "quarter-hourly": {"tier": "snapshot", "cron": "*/15 * * * *",
                                       "classes": ["security"], "keep": "1d"}}
    load_config(write(tmp_path, doc(rows)), strict=True)
    load_config(write(tmp_path, doc(DAILY, objectives={"files": {"rpo": "26h"},
                                                       "security": {"rpo": "2d"}})),
                strict=True)
    # daylight-saving changes count in real time, not wall-clock time
    assert max_gap(["0 2 * * *"], "America/New_York") == timedelta(hours=25)
    assert max_gap(["*/15 * * * *", "0 * * * *"], "America/New_York") == timedelta(minutes=15)
    assert max_gap(["0 0 1 * *"], "UTC") == timedelta(days=31)


def test_a_source_no_schedule_covers_is_named(tmp_path, capsys):
    from deployments.config import load_config

    sched = {"daily": {"tier": "incremental", "cron": "0 2 * * *", "classes": ["system"],
                       "keep": "14d"}}
    with pytest.raises(ConfigError, match="source docs .*no schedule backs it up"):
        load_config(write(tmp_path, doc(sched)), strict=True)


def test_the_example_platform_meets_its_objectives(monkeypatch):
    from deployments.config import load_config

    for var in ("STRONGROOM_PASSWORD", "STRONGROOM_S3_ENDPOINT", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "ORDERS_DB_PASSWORD"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    load_config(ROOT / "deployments" / "platform.example.yaml", strict=True)


def test_serve_strict_refuses_with_one_error_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "deployments.serve", "--config",
                           str(write(tmp_path, doc(DAILY))), "--strict", "--register-only"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing the RPO" in lines[0]


def test_up_strict_refuses_before_starting_anything(tmp_path):
    """``strongroom up --strict --config`` checks the file first: one error line, exit 2, no
    server started."""
    import shutil

    state = tmp_path / "state"
    proc = subprocess.run([shutil.which("strongroom") or "strongroom", "up", "--strict",
                           "--config", str(write(tmp_path, doc(DAILY))), "--state-dir",
                           str(state), "--port", "0", "--once"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing the RPO" in lines[0]
    assert not list(state.rglob("*.db")) and "PREFECT_API_URL" not in proc.stdout  # no server
