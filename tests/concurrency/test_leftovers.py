"""Temp files of killed writers: verify reports them as garbage, prune removes those older
than the grace period (never one a live process may still be writing)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from strongroom.repository.prune import prune
from strongroom.repository.verify import verify
from tests.tiers.helpers import backup, new_repo, open_repo, random_files, read_all


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_of_killed_writers_are_garbage_and_pruned(tmp_path: Path) -> None:
    url = str(tmp_path / "r")
    repo = new_repo(url)
    files = random_files(1, count=3, size=20_000)
    snap = backup(repo, files)
    root = Path(url)
    dead = _dead_pid()
    old = root / "data" / "ab" / f".tmp-{'ab' * 32}-{dead}-1"
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"x" * 1000)
    past = time.time() - 7200
    os.utime(old, (past, past))
    recent = root / "index" / f".tmp-{'cd' * 32}-{dead}-2"
    recent.write_bytes(b"y" * 10)
    live = root / "snapshots" / f".tmp-{'ef' * 32}-{os.getpid()}-3"
    live.parent.mkdir(exist_ok=True)
    live.write_bytes(b"z")
    os.utime(live, (past, past))

    check = verify(open_repo(url))
    assert check.ok, check.errors
    assert any("2 temporary file(s)" in g for g in check.garbage), check.garbage

    report = prune(open_repo(url), grace=timedelta(hours=1))
    assert report.removed_temp_files == 1
    assert not old.exists() and recent.exists() and live.exists()
    report = prune(open_repo(url), grace=timedelta(0))
    assert report.removed_temp_files == 1
    assert not recent.exists() and live.exists()  # a live writer's file is never touched
    repo = open_repo(url)
    assert read_all(repo, repo.find_snapshot(snap.id)) == files
