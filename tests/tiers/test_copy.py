"""Copy between repositories with different keys: identical restores, incremental, resumable."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from strongroom.errors import StorageError
from strongroom.repository.copy import copy_snapshots, find_copy
from strongroom.repository.verify import verify
from tests.tiers.helpers import backup, new_repo, open_repo, random_files, read_all

OTHER = "secondary password"


def _history(repo):
    a = random_files(1, count=6)
    b = {**a, "dir0/new.bin": random_files(2)["dir0/f00.bin"]}
    s1 = backup(repo, a, source="app")
    s2 = backup(repo, b, source="app", kind="incremental", parent=s1)
    s3 = backup(repo, random_files(3, count=3), source="db", tags=("monthly",))
    return [(s1, a), (s2, b), (s3, random_files(3, count=3))]


def test_copy_to_s3_restores_identically_and_survives_losing_the_primary(
        tmp_path: Path, moto_endpoint: str, s3_bucket: str) -> None:
    primary_url = str(tmp_path / "primary")
    primary = new_repo(primary_url)
    hist = _history(primary)
    s3_url = f"s3://{s3_bucket}/secondary"
    opts = {"endpoint": moto_endpoint}
    secondary = new_repo(s3_url, password=OTHER, options=opts)
    assert secondary.id_key != primary.id_key
    result = copy_snapshots(primary, secondary)
    assert sorted(result["copied"]) == sorted(s.id for s, _ in hist)
    assert result["blobs_copied"] > 0 and result["bytes_uploaded"] > 0
    # Nothing new: nothing copied, nothing uploaded.
    again = copy_snapshots(open_repo(primary_url), open_repo(s3_url, OTHER, opts))
    assert again["copied"] == [] and again["bytes_uploaded"] == 0
    # One more backup: only its new data goes over.
    extra = {**hist[1][1], "dir1/late.bin": random_files(4)["dir0/f00.bin"]}
    s4 = backup(open_repo(primary_url), extra, source="app")
    inc = copy_snapshots(open_repo(primary_url), open_repo(s3_url, OTHER, opts), [s4.id[:10]])
    assert inc["copied"] == [s4.id]
    assert inc["bytes_uploaded"] < len(random_files(4)["dir0/f00.bin"]) * 1.1 + 8192
    hist.append((s4, extra))

    shutil.rmtree(primary_url)  # the primary is gone entirely
    fresh = open_repo(s3_url, OTHER, opts)
    for snap, files in hist:
        copy = find_copy(fresh, snap.id)
        assert copy.id != snap.id  # re-encrypted under another key: another manifest
        assert (copy.source_name, copy.kind, copy.tags, copy.time, copy.checksum) == \
            (snap.source_name, snap.kind, snap.tags, snap.time, snap.checksum)
        assert read_all(fresh, copy) == files
    check = verify(fresh, read_data=True)
    assert check.ok and not check.garbage, check.as_dict()
    s2_copy, s1_copy = find_copy(fresh, hist[1][0].id), find_copy(fresh, hist[0][0].id)
    assert s2_copy.parent == s1_copy.id


def test_interrupted_copy_resumes_without_resending(tmp_path: Path) -> None:
    src = new_repo(str(tmp_path / "src"))
    files = random_files(7, count=12, size=200_000)
    snap = backup(src, files)
    dst_url = str(tmp_path / "dst")
    dst = new_repo(dst_url, password=OTHER, pack_target=128 * 1024)
    real_put, puts = dst.backend.put, []

    def flaky_put(key, data):
        if key.startswith("data/"):
            puts.append(key)
            if len(puts) == 8:
                raise StorageError("network went away")
        real_put(key, data)

    dst.backend.put = flaky_put
    with pytest.raises(StorageError):
        copy_snapshots(src, dst)
    assert not open_repo(dst_url, OTHER).list_snapshots()
    dst = open_repo(dst_url, OTHER)
    first_blobs = len(dst.index.blobs)
    assert first_blobs > 0  # some work survived the interruption
    result = copy_snapshots(open_repo(str(tmp_path / "src")), dst)
    assert result["copied"] == [snap.id]
    assert result["blobs_reused"] >= first_blobs - 1
    fresh = open_repo(dst_url, OTHER)
    assert read_all(fresh, find_copy(fresh, snap.id)) == files
    assert verify(fresh, read_data=True).ok


def test_copy_from_a_damaged_source_fails_cleanly(tmp_path: Path) -> None:
    src = new_repo(str(tmp_path / "src"))
    snap = backup(src, random_files(8, count=2))
    for key, _ in src.backend.list("data/"):
        path = Path(src.backend.url) / key
        raw = bytearray(path.read_bytes())
        raw[40] ^= 0xFF
        path.write_bytes(bytes(raw))
    dst = new_repo(str(tmp_path / "dst"), password=OTHER)
    with pytest.raises(Exception) as err:
        copy_snapshots(open_repo(str(tmp_path / "src")), dst)
    assert type(err.value).__name__ == "IntegrityError" and "damaged" in str(err.value)
    assert not dst.list_snapshots()
    assert snap.id not in [s.id for s in dst.list_snapshots()]


def test_copy_same_repository_refused(tmp_path: Path) -> None:
    repo = new_repo(str(tmp_path / "r"))
    with pytest.raises(Exception, match="same repository"):
        copy_snapshots(repo, open_repo(str(tmp_path / "r")))


def test_kill_9_during_copy_then_resume(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    src_url, dst_url = str(tmp_path / "src"), str(tmp_path / "dst")
    src = new_repo(src_url)
    files = random_files(21, count=14, size=200_000)
    snap = backup(src, files)
    new_repo(dst_url, password=OTHER, pack_target=128 * 1024)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "tests.tiers.copy_child", src_url, dst_url,
                             OTHER, "0.1"], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(Path(dst_url, "index").glob("*"))) < 2:
        time.sleep(0.05)  # wait for two checkpoints, then kill
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    dst = open_repo(dst_url, OTHER)
    assert not dst.list_snapshots()
    assert verify(dst).ok  # leftovers are garbage, never damage
    result = copy_snapshots(open_repo(src_url), dst)
    assert result["copied"] == [snap.id] and result["blobs_reused"] > 0
    fresh = open_repo(dst_url, OTHER)
    assert read_all(fresh, find_copy(fresh, snap.id)) == files
    assert verify(fresh, read_data=True).ok
