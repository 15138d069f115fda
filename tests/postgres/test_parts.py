"""The base tar cut into parts at content-aligned points, stored in parallel, read back whole."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from strongroom.repository import Repository
from strongroom.sources.postgres import parts
from strongroom.sources.postgres.tarsniff import TarSniffer

PART = 256 << 10


def make_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def store(repo: Repository, blob: bytes) -> tuple[object, TarSniffer, int]:
    sniff = TarSniffer(io.BytesIO(blob), ("backup_manifest",), split=PART)
    with repo.writer("pg", "postgres") as w:
        n = parts.store_parts(w, sniff, jobs=3, part_size=PART)
        snap = w.commit()
    return snap, sniff, n


def test_parts_round_trip_and_dedupe(tmp_path: Path) -> None:
    repo = Repository.init(str(tmp_path / "repo"), password="x")
    files = {f"base/1/{i}": os.urandom(n) for i, n in enumerate(
        [10, 300 << 10, 5, 1 << 20, 70 << 10, 2 << 20, 0, 123457])}
    files["backup_manifest"] = b'{"PostgreSQL-Backup-Manifest-Version": 1}'
    blob = make_tar(files)
    snap, sniff, n = store(repo, blob)
    assert n > 3 and sniff.members["backup_manifest"] == files["backup_manifest"]
    with parts.open_base(repo, snap, ahead=2) as fh:
        assert fh.read() == blob
    # a file grows at the front: every part after it is cut at the same content again
    files["base/1/0"] = os.urandom(5000)
    snap2, _, _ = store(repo, make_tar(files))
    assert snap2.stats.bytes_new < 0.25 * snap2.stats.bytes_read, snap2.stats


def test_base_chunks_stream_the_tar_and_stop_when_closed(tmp_path: Path) -> None:
    repo = Repository.init(str(tmp_path / "repo"), password="x")
    blob = make_tar({f"base/1/{i}": os.urandom(200 << 10) for i in range(12)})
    snap, _, n = store(repo, blob)
    assert n > 3
    assert b"".join(parts.base_chunks(repo, snap, ahead=2)) == blob
    chunks = parts.base_chunks(repo, snap, ahead=2)
    assert blob.startswith(next(chunks))
    chunks.close()  # a restore that failed half-way: no error, nothing left running
    assert b"".join(parts.base_chunks(repo, snap, ahead=3)) == blob
