"""A stream that returns less than asked for has not ended: pipes, /proc and FUSE files hand
over data in pieces, and every piece must be in the snapshot."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from strongroom.repository import Repository


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


def test_pipe_read_in_small_pieces_is_stored_whole(tmp_path: Path) -> None:
    repo = Repository.init(str(tmp_path / "r"), password="pw")
    for total in (100_000, 3_000_000):  # below and above the minimum chunk size
        data = os.urandom(total)
        rfd, wfd = os.pipe()

        def feed(data: bytes = data, wfd: int = wfd) -> None:
            with open(wfd, "wb", buffering=0) as w:
                for i in range(0, len(data), 1000):
                    w.write(data[i:i + 1000])

        feeder = threading.Thread(target=feed)
        feeder.start()
        with repo.writer("pipe", "files", "full") as w:
            with open(rfd, "rb", buffering=0) as r:  # raw: read() returns what the pipe has
                node = w.add_stream("stream.bin", r)
            snap = w.commit()
        feeder.join()
        assert node.size == total
        assert repo.reader(snap).read_bytes("stream.bin") == data


def test_proc_file_is_backed_up_whole(cli, tmp_path: Path) -> None:
    kallsyms = Path("/proc/kallsyms")  # megabytes, handed out a page or so per read()
    try:
        want = kallsyms.read_bytes()
        fd = os.open(kallsyms, os.O_RDONLY)
        try:
            first = os.read(fd, 256 * 1024)
        finally:
            os.close(fd)
    except OSError:
        pytest.skip("no readable /proc/kallsyms")
    if len(first) == len(want):
        pytest.skip("this kernel returns /proc/kallsyms in one read")
    cli("init")
    cli("backup", "files", str(kallsyms))
    dest = tmp_path / "dest"
    cli("restore", "latest", "--target", str(dest))
    got = (dest / "proc" / "kallsyms").read_bytes()
    assert len(got) == len(want)
    assert hashlib.sha256(got).digest() == hashlib.sha256(want).digest()
