"""Ctrl-C during a restore stops at the next chunk: running files give up, queued files are
never started, and no partial file is left behind."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest

from strongroom.repository.reader import SnapshotReader
from strongroom.sources.files.restore import restore_files
from tests.tiers.helpers import backup, new_repo, open_repo, random_files


def test_ctrl_c_stops_a_restore_at_the_next_chunk(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C as Python's default handler delivers it, whatever an earlier test installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_a_restore(tmp_path, monkeypatch)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_a_restore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(tmp_path / "r")
    files = random_files(3, count=16, size=6_000_000)
    total = sum(len(v) for v in files.values())
    snap = backup(new_repo(url, pack_target=8 << 20), files)

    # The promise is about the moment the restore is told to stop, not about how soon a busy
    # machine schedules the main thread after the signal: count what each worker writes after.
    stopped = threading.Event()
    real_stop = SnapshotReader.stop

    def stop(self: SnapshotReader) -> None:
        stopped.set()
        real_stop(self)

    monkeypatch.setattr(SnapshotReader, "stop", stop)
    chunks_after_stop: Counter[str] = Counter()
    written = [0]

    def progress(n: int) -> None:
        if written[0] == 0:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, delivered to the main thread
        written[0] += n
        if stopped.is_set():
            chunks_after_stop[threading.current_thread().name] += 1

    target = tmp_path / "out"
    repo = open_repo(url)
    with pytest.raises(KeyboardInterrupt):
        restore_files(repo, repo.find_snapshot(snap.id), target, progress=progress)
    assert stopped.is_set()
    # each running file finishes at most the chunk it was writing; no queued file starts
    assert all(n <= 1 for n in chunks_after_stop.values()), chunks_after_stop
    assert written[0] < total, (written, total)
    leftovers = [p for p in target.rglob("*") if p.name.endswith(".strongroom-partial")]
    assert leftovers == []
