"""verify while other backups are being written: a snapshot that appears during the check is
either checked whole or not seen, never reported as damaged (false alarms page people)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from strongroom.repository import Repository
from strongroom.repository.verify import verify
from strongroom.sources.files import backup_files


def test_verify_during_backups_reports_no_damage(tmp_path: Path) -> None:
    url = str(tmp_path / "r")
    Repository.init(url, password="pw")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("0")
    backup_files(Repository.open(url, password="pw"), [src])
    for i in range(3000):  # leftovers of killed backups: they make listing packs take a while
        leftover = tmp_path / "r" / "data" / f"{i % 256:02x}" / f"{i:064x}"
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"")
    stop = threading.Event()
    backups = [0]

    def writer() -> None:
        repo = Repository.open(url, password="pw")
        while not stop.is_set():
            (src / "f").write_text(str(backups[0]))
            backup_files(repo, [src], kind="full")
            backups[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    problems = []
    try:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            report = verify(Repository.open(url, password="pw"))
            problems.extend(report.errors)
    finally:
        stop.set()
        thread.join()
    assert backups[0] > 3
    assert problems == []
    assert verify(Repository.open(url, password="pw"), read_data=True).errors == []
