"""Ctrl-C during a restore stops at the next chunk: running files give up, queued files are
never started, and no partial file is left behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from strongroom.sources.files.restore import restore_files
from tests.tiers.helpers import backup, new_repo, open_repo, random_files


def test_ctrl_c_stops_a_restore_at_the_next_chunk(tmp_path: Path) -> None:
    # Ctrl-C as Python's default handler delivers it, whatever an earlier test installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_a_restore(tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_a_restore(tmp_path: Path) -> None:
    url = str(tmp_path / "r")
    files = random_files(3, count=16, size=6_000_000)
    total = sum(len(v) for v in files.values())
    snap = backup(new_repo(url, pack_target=8 << 20), files)
    written = {"before": 0, "after": 0}

    def progress(n: int) -> None:
        if written["before"] == 0:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, delivered to the main thread
        written["before" if written["after"] == 0 and written["before"] == 0 else "after"] += n

    target = tmp_path / "out"
    repo = open_repo(url)
    with pytest.raises(KeyboardInterrupt):
        restore_files(repo, repo.find_snapshot(snap.id), target, progress=progress)
    # at most the chunks in flight in the workers when the signal came, not every queued file
    assert written["after"] < total / 4, (written, total)
    leftovers = [p for p in target.rglob("*") if p.name.endswith(".strongroom-partial")]
    assert leftovers == []
