"""Early write-back while a restore extracts: asked for in the background, stopped after."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from strongroom.sources.postgres import writeback


def _writeback_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pg-writeback"]


def test_write_back_runs_during_the_block_and_stops_after(tmp_path: Path,
                                                          monkeypatch: Any) -> None:
    calls: list[int] = []
    called = threading.Event()

    def syncfs(fd: int) -> int:
        calls.append(fd)
        called.set()
        return 0

    monkeypatch.setattr(writeback, "_syncfs", lambda: syncfs)
    with writeback.EarlyWriteBack(tmp_path, interval=0.001):
        (tmp_path / "f").write_bytes(b"x" * 4096)
        assert called.wait(30)
    for t in _writeback_threads():
        t.join(30)
    assert calls and not _writeback_threads()


def test_write_back_gives_up_where_unsupported(tmp_path: Path, monkeypatch: Any) -> None:
    failed = threading.Event()

    def syncfs(fd: int) -> int:
        failed.set()
        return -1

    monkeypatch.setattr(writeback, "_syncfs", lambda: syncfs)
    with writeback.EarlyWriteBack(tmp_path, interval=0.001):
        assert failed.wait(30)
        for t in _writeback_threads():
            t.join(30)  # ended on its own, inside the block
        assert not _writeback_threads()


def test_real_syncfs_is_found_on_linux(tmp_path: Path) -> None:
    fn = writeback._syncfs()
    assert fn is not None
    with writeback.EarlyWriteBack(tmp_path, interval=0.001):
        (tmp_path / "f").write_bytes(b"y")
