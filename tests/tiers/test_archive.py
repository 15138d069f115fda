"""Archive tier on moto S3: storage classes, Object Lock, legal hold, staging before restore."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import pytest

from strongroom.errors import ConfigError, StorageError
from strongroom.policy.retention import RetentionPolicy
from strongroom.repository.copy import copy_snapshots, find_copy
from strongroom.repository.forget import forget, plan_for
from strongroom.repository.presence import stored_packs
from strongroom.repository.prune import prune
from strongroom.repository.staging import stage_snapshot
from strongroom.storage.archive import ArchiveS3Backend
from tests.support.moto_server import s3_client
from tests.tiers.helpers import (
    backup,
    leftover_pack,
    new_repo,
    open_repo,
    random_files,
    read_all,
)

ARCHIVE_PW = "archive password"


@pytest.fixture
def archive(moto_endpoint: str) -> tuple[str, dict[str, str]]:
    bucket = f"archive-{secrets.token_hex(5)}"  # created by init, with Object Lock enabled
    return f"s3://{bucket}/tertiary", {
        "endpoint": moto_endpoint, "storage_class": "DEEP_ARCHIVE",
        "object_lock_mode": "COMPLIANCE", "object_lock_days": "30"}


def test_archive_copy_locks_stages_and_restores(tmp_path: Path, moto_endpoint: str,
                                                archive) -> None:
    url, opts = archive
    primary = new_repo(str(tmp_path / "p"))
    files = random_files(11, count=5)
    snap = backup(primary, files, source="db")
    tertiary = new_repo(url, password=ARCHIVE_PW, options=opts)
    assert isinstance(tertiary.backend, ArchiveS3Backend)
    result = copy_snapshots(primary, tertiary)
    assert result["copied"] == [snap.id]

    s3 = s3_client(moto_endpoint)
    bucket, prefix = url[5:].split("/", 1)
    classes: dict[str, set[str]] = {}
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        key = obj["Key"][len(prefix) + 1:]
        info = s3.head_object(Bucket=bucket, Key=obj["Key"])
        classes.setdefault(key.split("/")[0], set()).add(info.get("StorageClass", "STANDARD"))
        if key.split("/")[0] in ("data", "index", "snapshots", "audit"):
            assert info["ObjectLockMode"] == "COMPLIANCE", key
            assert info["ObjectLockRetainUntilDate"] is not None
        else:
            assert "ObjectLockMode" not in info, key
    assert classes["data"] == {"DEEP_ARCHIVE", "STANDARD"}  # data archived, trees listable
    assert classes["index"] == {"STANDARD"} and classes["snapshots"] == {"STANDARD"}

    fresh = open_repo(url, ARCHIVE_PW, opts)
    copy = find_copy(fresh, snap.id)
    assert [p for p, n in fresh.reader(copy).walk() if n.type == "file"]  # listing works
    with pytest.raises(StorageError, match="not staged"):
        read_all(fresh, copy)
    report = stage_snapshot(fresh, copy, retrieval_tier="Bulk")
    assert report.requested and "DEEP_ARCHIVE" in report.estimate()
    assert "24 h to 48 h" in report.estimate()
    again = stage_snapshot(fresh, copy, wait_s=5, poll_s=0.1)  # moto restores at once
    assert not again.requested
    assert read_all(open_repo(url, ARCHIVE_PW, opts), copy) == files

    # Opened later without the archive options (a hand-run copy), it still archives and locks:
    # the settings given at init are kept in the repository.
    plain = open_repo(url, ARCHIVE_PW, {"endpoint": moto_endpoint})
    assert isinstance(plain.backend, ArchiveS3Backend)
    before = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    backup(plain, random_files(17, count=2), source="late")
    new = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
           if o["Key"] not in before and o["Key"][len(prefix) + 1:].startswith("data/")]
    heads = [s3.head_object(Bucket=bucket, Key=k) for k in new]
    assert heads and all(h["ObjectLockMode"] == "COMPLIANCE" for h in heads)
    assert all(h.get("StorageClass") == "DEEP_ARCHIVE" for h in heads)


@pytest.mark.parametrize("with_options", [True, False])
def test_prune_and_forget_never_remove_locked_objects(tmp_path: Path, archive,
                                                      with_options: bool) -> None:
    url, opts = archive
    tertiary = new_repo(url, password=ARCHIVE_PW, options={**opts, "storage_class": "STANDARD"})
    backup(tertiary, random_files(12, count=3), source="db")
    backup(tertiary, random_files(13, count=3), source="db")
    # Opened without the archive options the protection still holds: it is read from S3.
    repo = open_repo(url, ARCHIVE_PW, opts if with_options else {"endpoint": opts["endpoint"]})
    plan = plan_for(repo, RetentionPolicy(keep_last=1))
    dry = forget(repo, plan, dry_run=True)  # the dry run already says the lock keeps it
    assert list(dry.protected) == [plan.forget[0].id] and "would be kept" in dry.skipped[0]
    fr = forget(repo, plan)
    assert not fr.removed and len(fr.skipped) == 1
    assert "object lock COMPLIANCE until" in fr.skipped[0]
    leftover_pack(tertiary, random_files(15)["dir0/f00.bin"])  # an interrupted backup's pack
    packs = stored_packs(repo.backend)
    report = prune(repo, grace=timedelta(0))
    assert report.deleted_packs == 0 and report.marked_packs == 0
    assert stored_packs(repo.backend) == packs
    assert len(report.skipped) == 1
    assert "object lock COMPLIANCE until" in report.skipped[0]
    assert "never removed" in report.skipped[0]
    if with_options:
        with pytest.raises(StorageError, match="refusing to delete .*object lock COMPLIANCE"):
            repo.backend.delete(next(iter(repo.backend.list("data/")))[0])


def test_legal_hold_and_prune_says_why(tmp_path: Path, moto_endpoint: str) -> None:
    bucket = f"hold-{secrets.token_hex(5)}"
    url = f"s3://{bucket}/repo"
    opts = {"endpoint": moto_endpoint, "storage_class": "GLACIER", "legal_hold": "true"}
    repo = new_repo(url, options=opts)
    leftover_pack(repo, random_files(14)["dir0/f00.bin"])  # an interrupted backup's pack
    info = s3_client(moto_endpoint).head_object(
        Bucket=bucket, Key="repo/" + next(iter(repo.backend.list("data/")))[0])
    assert info["ObjectLockLegalHoldStatus"] == "ON" and info["StorageClass"] == "GLACIER"
    report = prune(open_repo(url, options={"endpoint": moto_endpoint}), grace=timedelta(0))
    assert report.deleted_packs == 0 and report.marked_packs == 0
    assert any("legal hold is on" in s and "never removed" in s for s in report.skipped)


def test_lock_without_bucket_object_lock_and_unknown_class_are_refused(
        moto_endpoint: str, s3_bucket: str) -> None:
    """S3 answers a bare 'InvalidRequest' to lock headers on a bucket created without Object
    Lock, and an unknown storage class used to be dropped (data silently STANDARD)."""
    url, endpoint = f"s3://{s3_bucket}/locked", {"endpoint": moto_endpoint}
    with pytest.raises(ConfigError, match="does not have Object Lock enabled"):
        new_repo(url, options={**endpoint, "object_lock_mode": "GOVERNANCE",
                               "object_lock_days": "1"})
    assert "Contents" not in s3_client(moto_endpoint).list_objects_v2(Bucket=s3_bucket)
    new_repo(url, options=endpoint)
    held = open_repo(url, options={**endpoint, "legal_hold": "true"})
    with pytest.raises(ConfigError, match="does not have Object Lock enabled"):
        backup(held, random_files(16, count=1))
    for bad in ("GLACIERX", "STANDARD_IA"):
        with pytest.raises(ConfigError, match="storage_class must be GLACIER, DEEP_ARCHIVE"):
            open_repo(url, options={**endpoint, "storage_class": bad})
