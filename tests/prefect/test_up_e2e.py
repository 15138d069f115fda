"""End to end: ``strongroom up --once`` against a real ``prefect server`` on a free loopback port.

It serves the deployments, runs a backup and a recovery deployment through the API, checks the
post-mortem artifact, and stops every process it started.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from deployments.up import redis_available
from tests.prefect.conftest import tree_listing
from tests.support.moto_server import free_port


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if text in cmdline or text.encode() in environ:
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow
@pytest.mark.timeout(330)
def test_strongroom_up_once(tmp_path):
    state = tmp_path / "state"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_PROFILES_PATH"] = str(tmp_path / "profiles.toml")  # the user's, for the test
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", "from strongroom.cli import main; main()", "up", "--once",
         "--json", "--port", str(port), "--state-dir", str(state)],
        env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-2000:] + (state / "serve.log").read_text()[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["ui"] == f"http://127.0.0.1:{port}"
    # any shell finds the server: the profile strongroom-local names its API
    api = f"http://127.0.0.1:{port}/api"
    assert (summary["api_url"], summary["profile"]) == (api, "strongroom-local")
    profiles = tomllib.loads((tmp_path / "profiles.toml").read_text())
    assert profiles["profiles"]["strongroom-local"] == {"PREFECT_API_URL": api}
    assert summary["runs"]["backup"]["state"] == "Completed"
    assert summary["runs"]["recovery"]["state"] == "Completed"
    assert summary["post_mortem_artifact"] == "post-mortem-recover-files-demo-files"
    with_redis = redis_available()  # then the demo also has a Redis: snapshot and recovery
    if with_redis:
        assert summary["runs"]["database backup"]["state"] == "Completed"
        assert summary["runs"]["database recovery"]["state"] == "Completed"
        assert "post-mortem-recover-database-demo-cache" in summary["post_mortem_artifacts"]
    schedules = {(r["deployment"], r["cron"], r["timezone"], r["active"],
                  tuple(r["sources"]) if r["sources"] is not None else None)
                 for r in summary["deployments"]}
    assert ("backup-incremental/daily-incremental", "0 2 * * *", "America/New_York", True,
            ("files/demo-files",) + (("redis/demo-cache",) if redis_available() else ())
            ) in schedules
    if with_redis:
        assert ("backup-snapshot/hourly-snapshot", "0 * * * *", "America/New_York", True,
                ("redis/demo-cache",)) in schedules
    else:
        assert ("backup-snapshot/hourly-snapshot", "0 * * * *", "America/New_York", False,
                ()) in schedules  # no database in the demo: visible, paused
    assert ("recover-files/recover-files", None, None, None, None) in schedules
    # one schedule per deployment (no "+1" in the UI), every deployment listed
    assert len(summary["deployments"]) == len({r["deployment"] for r in summary["deployments"]})
    # + four reports, a drill per demo source and the disaster drill (deployments/operations.py)
    drills = 2 if with_redis else 1
    # + the four-hourly files incremental that lets the demo meet its files RPO of 4 h
    # + recover-incident, recover-system and undo-recovery, key-rotation and its check
    assert len({r["deployment"] for r in summary["deployments"]}) == (
        11 + 4 + drills + 1 + 1 + 3 + 2)
    assert ("backup-incremental/four-hourly-incremental", "0 */4 * * *", "America/New_York",
            True, ("files/demo-files",)) in schedules
    # the alerts exist as automations (the UI's Automations page) and the summary names them
    assert any(name.startswith("strongroom: ") for name in summary["automations"])
    assert ("report-weekly/report-weekly", "0 7 * * 1", "America/New_York", True,
            None) in schedules
    assert ("drill/drill-demo-files", "0 10 15 1,4,7,10 *", "America/New_York", True,
            None) in schedules
    assert ("retention/retention", "30 3 * * *", "America/New_York", True, None) in schedules
    data = state / "demo" / "data"
    restored = Path(summary["restored_to"])  # the source path's contents
    assert tree_listing(restored) == tree_listing(data)
    print(f"strongroom up --once took {elapsed:.0f} s")  # a figure, not a pass/fail bound

    # Nothing left behind: no process of the stack, nothing listening on the port.
    deadline = time.monotonic() + 10
    while _pids_mentioning(str(state)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pids_mentioning(str(state)) == []
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    password = (state / "demo.password").read_text().strip()
    assert password not in (
        (state / "serve.log").read_text() + (state / "server.log").read_text() + proc.stdout)
    # What the API kept (the server's SQLite database): the runs' logs reached it (the UI's
    # Logs tab is not empty) and no table holds the password in clear (block documents are
    # stored encrypted): not in parameters, logs, states, artifacts, events or variables.
    db = sqlite3.connect(state / "prefect" / "prefect.db")
    try:
        messages = [m for (m,) in db.execute("SELECT message FROM log")]
        assert any("snapshot" in m and "demo-files" in m for m in messages)
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            for col in [c[1] for c in db.execute(f"PRAGMA table_info('{table}')")]:
                hits = db.execute(f"SELECT count(*) FROM '{table}' WHERE CAST(\"{col}\" AS TEXT)"
                                  " LIKE ?", (f"%{password}%",)).fetchone()[0]
                assert hits == 0, f"the demo password is in {table}.{col}"
    finally:
        db.close()
