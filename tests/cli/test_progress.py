"""Progress bars on a terminal show the total, the percentage and the time left once the
total is known: a files backup counts what it will read in a first pass beside it (changed
files only, for an incremental), a restore knows its snapshot's size."""

from __future__ import annotations

import io
import os
import pty
import re
import selectors
import subprocess
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from strongroom.cli._scan import FirstPass
from strongroom.cli.output import ByteProgress


def _on_a_terminal(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    """Run ``strongroom ARGS`` with stdout on a pseudo-terminal; everything it drew."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(["strongroom", *args], env={**env, "COLUMNS": "160"},
                            stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()  # epoll: select() refuses descriptors past 1023
    sel.register(master, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if sel.select(0.5):
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    sel.close()
    os.close(master)
    assert proc.wait(timeout=30) == 0, out.decode(errors="replace")[-2000:]
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))


def test_backup_and_restore_bars_show_total_and_eta(cli, repo_env, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    block = os.urandom(1 << 20)
    for i in range(6):  # 120 MB to read: the bar is drawn several times
        (src / f"f{i}.bin").write_bytes(block[i:] + block[:i] * 1 + os.urandom(19 << 20))
    cli("init")
    drawn = _on_a_terminal(["backup", "files", str(src), "--kind", "full"], repo_env)
    assert re.search(r"/\s?12\d\.\d MB", drawn), drawn[-1500:]  # the first pass's total
    assert "ETA" in drawn and re.search(r"\d+%", drawn)
    drawn = _on_a_terminal(["restore", "latest", "--target", str(tmp_path / "dest")],
                           repo_env)
    assert re.search(r"/\s?12\d\.\d MB", drawn) and "ETA" in drawn, drawn[-1500:]


def test_first_pass_counts_what_the_backup_will_read(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "old.bin").write_bytes(b"o" * 1000)
    (tmp_path / "a" / "skip.tmp").write_bytes(b"s" * 50)
    os.symlink("old.bin", tmp_path / "a" / "link")
    cut = time.time_ns()
    time.sleep(0.02)
    (tmp_path / "a" / "new.bin").write_bytes(b"n" * 300)
    totals: list[int] = []
    for since in (None, cut):
        scan = FirstPass([str(tmp_path / "a")], ["*.tmp"], since, totals.append)
        scan.start()
        scan.join(timeout=30)
    assert totals == [1300, 300]  # full: every file; incremental: changed since the parent


def test_bar_total_set_late_and_never_below_what_was_done() -> None:
    prog = Progress(console=Console(file=io.StringIO(), force_terminal=True))
    task = prog.add_task("backup", total=None)
    bar = ByteProgress(prog, task)
    bar(400)
    bar.set_total(1000)
    assert prog.tasks[0].total == 1000 and prog.tasks[0].completed == 400
    bar(900)  # the estimate ran short: the total follows
    assert prog.tasks[0].total == prog.tasks[0].completed == 1300
    bar.set_total(10)
    assert prog.tasks[0].total == 1300
