"""``strongroom metrics``: the textfile for node-exporter and ``/metrics``, parsed with
prometheus_client's own parser; and the engine facts behind them."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from deployments.up import free_port

PASSWORD = "pw-metrics-secret"


def samples(text: str) -> dict[str, list]:
    """Metric name -> its samples (name, labels, value)."""
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, STRONGROOM_PASSWORD=PASSWORD)
    env.pop("STRONGROOM_REPOSITORY", None)
    return env


def sr(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["strongroom", *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def repo(tmp_path: Path, env: dict[str, str]) -> Path:
    """A local repository with two files snapshots (incremental, then full) of one source."""
    data = tmp_path / "docs"
    data.mkdir()
    (data / "a.txt").write_text("alpha " * 1000)
    repo = tmp_path / "repo"
    sr(env, "init", "-r", str(repo))
    sr(env, "backup", "files", "-r", str(repo), "--name", "docs", "--tag", "incremental",
       str(data))
    (data / "b.txt").write_text("beta " * 500)
    sr(env, "backup", "files", "-r", str(repo), "--name", "docs", "--tag", "full", str(data))
    return repo


def test_textfile_holds_backup_repository_and_drill_metrics(repo, env, tmp_path):
    drills = tmp_path / "drills.json"
    drills.write_text(json.dumps({"version": 1, "drills": [
        {"scope": "source", "name": "docs", "kind": "files", "ok": True, "rto_s": 9.5,
         "rpo_s": 3600.0, "finished": "2026-01-01T00:00:00+00:00",
         "next_due": "2026-04-02"}]}))
    failures = tmp_path / "failures.json"
    failures.write_text(json.dumps({"docs|incremental": 2}))
    out = tmp_path / "textfiles" / "strongroom.prom"
    sr(env, "metrics", "-R", f"{repo},name=primary,capacity=1000000000", "--drills",
       str(drills), "--failures", str(failures), "--textfile", str(out))
    got = samples(out.read_text())
    last = {s.labels["tier"]: s for s in got["strongroom_backup_last_success_timestamp_seconds"]}
    assert set(last) == {"incremental", "full"}
    assert last["full"].labels == {"source": "docs", "kind": "files", "tier": "full",
                                   "target": "primary"}
    assert time.time() - 600 < last["full"].value <= time.time()
    for name in ("backup_last_duration_seconds", "backup_last_read_bytes",
                 "backup_last_new_bytes", "backup_last_stored_bytes", "snapshots"):
        assert {s.labels["tier"] for s in got[f"strongroom_{name}"]} == {"incremental", "full"}
    read = {s.labels["tier"]: s.value for s in got["strongroom_backup_last_read_bytes"]}
    assert read["incremental"] == 6000  # the first backup read the one file it had
    size = got["strongroom_repository_size_bytes"][0]
    assert size.labels == {"target": "primary", "tier": "primary"} and size.value > 0
    cap = got["strongroom_repository_capacity_ratio"][0].value
    assert cap == pytest.approx(size.value / 1e9)
    assert got["strongroom_repository_dedup_ratio"][0].value > 0
    assert got["strongroom_repository_snapshots"][0].value == 2
    age = got["strongroom_recovery_point_age_seconds"][0]
    assert age.labels == {"source": "docs", "kind": "files", "target": "primary"}
    assert 0 <= age.value < 600
    assert got["strongroom_backup_failures_total"][0].labels == {"source": "docs",
                                                                 "tier": "incremental"}
    assert got["strongroom_backup_failures_total"][0].value == 2
    assert got["strongroom_drill_last_rto_seconds"][0].value == 9.5
    assert got["strongroom_drill_last_rpo_seconds"][0].value == 3600
    assert got["strongroom_drill_last_success"][0].value == 1
    assert got["strongroom_drill_next_due_timestamp_seconds"][0].value > 0
    assert PASSWORD not in out.read_text()


def test_serve_answers_on_loopback(repo, env):
    port = free_port()
    proc = subprocess.Popen(["strongroom", "metrics", "-R", f"{repo},name=primary", "serve",
                             "--port", str(port), "--cache", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        got = samples(text)
        assert got["strongroom_repository_snapshots"][0].value == 2
        assert {s.labels["source"] for s in got["strongroom_snapshots"]} == {"docs"}
        # loopback only: the port is not open on another address of this host
        import socket

        addrs = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None,
                                                     socket.AF_INET)} - {"127.0.0.1"}
        for addr in addrs:
            with socket.socket() as s:
                s.settimeout(1)
                assert s.connect_ex((addr, port)) != 0
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_wrong_key_fails_with_its_exit_code(repo, env):
    proc = subprocess.run(["strongroom", "metrics", "-R", str(repo)],
                          env=env | {"STRONGROOM_PASSWORD": "wrong"}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 11, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1


def test_engine_metrics_do_not_import_prefect():
    import sys

    code = ("import sys, strongroom.metrics, strongroom.cli.metrics; "
            "sys.exit(1 if 'prefect' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
