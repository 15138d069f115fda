"""kill -9 of either side of a race: a killed prune never blocks the next backup (its
exclusive lock belongs to a dead process), a killed backup or restore never blocks a prune,
and the repository stays whole."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from strongroom.repository.prune import prune
from strongroom.repository.verify import verify
from tests.concurrency.conftest import RACE_RUNS
from tests.tiers.helpers import backup, new_repo, open_repo, random_files, read_all

ROOT = Path(__file__).resolve().parents[2]


def _history(url: str, opts: dict) -> list[tuple[str, dict[str, bytes]]]:
    repo = new_repo(url, options=opts, pack_target=128 * 1024)
    kept = []
    for i in range(3):
        files = random_files(500 + i, count=4, size=60_000)
        kept.append((backup(repo, files, source="keep").id, files))
        backup(repo, random_files(600 + i, count=4, size=60_000), source="churn")
    return kept


def _kill_during(mode: str, url: str, opts: dict, seconds: float) -> None:
    env = dict(os.environ)
    if opts.get("endpoint"):
        env["AWS_ENDPOINT_URL"] = opts["endpoint"]
    proc = subprocess.Popen([sys.executable, "-m", "tests.concurrency.child", mode, url],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready", proc.stderr.read() if proc.stderr else ""
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _check_whole(url: str, opts: dict, kept: list[tuple[str, dict[str, bytes]]]) -> None:
    repo = open_repo(url, options=opts)
    check = verify(repo, read_data=True)
    assert check.ok, check.errors  # leftovers may be garbage, never damage
    for snap_id, files in kept:
        assert read_all(repo, repo.find_snapshot(snap_id)) == files


@pytest.mark.parametrize("run", range(RACE_RUNS))
def test_killed_prune_never_blocks_the_next_backup(target, run: int, monkeypatch) -> None:
    from strongroom.repository import writer

    url, opts = target
    kept = _history(url, opts)
    _kill_during("prune", url, opts, random.uniform(0.2, 1.5))
    monkeypatch.setattr(writer, "BACKUP_LOCK_WAIT", 600)  # as in production
    started = time.monotonic()
    files = random_files(700 + run, count=3, size=30_000)
    snap = backup(open_repo(url, options=opts), files, source="keep")
    assert time.monotonic() - started < 30  # no waiting for a dead holder's lock
    kept.append((snap.id, files))
    _check_whole(url, opts, kept)
    report = prune(open_repo(url, options=opts), grace=timedelta(0), lock_wait_s=5)
    assert not report.deferred, report
    _check_whole(url, opts, kept)


@pytest.mark.parametrize("mode", ["backup", "restore"])
@pytest.mark.parametrize("run", range(RACE_RUNS))
def test_killed_reader_or_writer_never_blocks_a_prune(target, mode: str, run: int) -> None:
    url, opts = target
    kept = _history(url, opts)
    _kill_during(mode, url, opts, random.uniform(0.3, 2.0))
    report = prune(open_repo(url, options=opts), grace=timedelta(0), lock_wait_s=5)
    assert not report.deferred, report
    _check_whole(url, opts, kept)


def test_prune_killed_in_its_sweep_leaves_a_lock_that_blocks_nobody(target, monkeypatch) -> None:
    from strongroom.policy.retention import RetentionPolicy
    from strongroom.repository import writer
    from strongroom.repository.forget import forget, plan_for
    from strongroom.repository.locks import read_locks

    url, opts = target
    kept = _history(url, opts)
    repo = open_repo(url, options=opts)
    forget(repo, plan_for(repo, RetentionPolicy(keep_last=1), source_name="churn"))
    env = dict(os.environ)
    if opts.get("endpoint"):
        env["AWS_ENDPOINT_URL"] = opts["endpoint"]
    # the child kills itself before its first pack deletion, holding the exclusive lock
    proc = subprocess.run([sys.executable, "-m", "tests.tiers.prune_child", url, "1", "0"],
                          cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = [info for _, info in read_locks(open_repo(url, options=opts).backend)]
    assert any(info["exclusive"] for info in left), left
    monkeypatch.setattr(writer, "BACKUP_LOCK_WAIT", 600)
    started = time.monotonic()
    files = random_files(800, count=3, size=30_000)
    snap = backup(open_repo(url, options=opts), files, source="keep")
    assert time.monotonic() - started < 30
    kept.append((snap.id, files))
    _check_whole(url, opts, kept)
