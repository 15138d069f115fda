"""A recovery's restore target for an S3 source, against moto's S3 server: the safety snapshot
is of the bucket and prefix a restore overwrites (never the block's own), restoring it puts
every object back as it was, and the checks before a restore refuse a target of the wrong kind
or one holding objects without replace."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import pytest

from strongroom.errors import ConfigError, SourceError, TargetNotEmpty
from strongroom.repository import Repository
from strongroom.sources import registry
from tests.support.moto_server import s3_client

s3_kind = registry.get("s3")


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(str(tmp_path / "repo"), password="s3-target-tests")


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    # only the block's own endpoint may lead anywhere
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    return s3_client(moto_endpoint)


def block(endpoint: str, bucket: str, prefix: str = "") -> dict:
    """An S3 bucket source block's settings (credentials flat, as the engine gets them)."""
    return {"bucket": bucket, "prefix": prefix, "versions": False, "endpoint_url": endpoint,
            "region": "us-east-1", "access_key_id": "test", "secret_access_key": "test"}


def new_bucket(s3) -> str:
    name = f"t-{secrets.token_hex(5)}"
    s3.create_bucket(Bucket=name)
    return name


def objects(s3, bucket: str, prefix: str = "") -> dict[str, tuple]:
    """Every object under the prefix: content hash, content type, metadata and tags."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            got = s3.get_object(Bucket=bucket, Key=o["Key"])
            tags = s3.get_object_tagging(Bucket=bucket, Key=o["Key"])["TagSet"]
            out[o["Key"]] = (hashlib.sha256(got["Body"].read()).hexdigest(),
                             got["ContentType"], got["Metadata"],
                             sorted((t["Key"], t["Value"]) for t in tags))
    return out


def put_all(s3, bucket: str, prefix: str, label: str) -> None:
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"{prefix}shared/{i}", Body=f"{label} {i}".encode(),
                      ContentType="text/plain", Metadata={"who": label},
                      Tagging=f"owner={label}")
    s3.put_object(Bucket=bucket, Key=f"{prefix}only-{label}", Body=secrets.token_bytes(70_000))


def test_replacing_another_bucket_keeps_a_safety_snapshot_of_it(repo, s3, moto_endpoint
                                                                 ) -> None:
    own, other = new_bucket(s3), new_bucket(s3)
    put_all(s3, own, "data/", "source")
    put_all(s3, other, "live/", "target")
    before = objects(s3, other)
    settings = block(moto_endpoint, own, "data/")
    snap = s3_kind.backup(repo, name="media", kind="full", tags=[], settings=settings)
    target = f"s3://{other}/live/"

    safety = s3_kind.safety_backup(repo, name="media", target=target, replace=True,
                                   settings=settings)
    assert safety is not None and safety.source_name == "media-safety"
    assert sorted(safety.tags) == ["pre-restore", "safety"]
    assert (safety.meta["bucket"], safety.meta["prefix"]) == (other, "live/")
    assert safety.meta["objects"] == len(before)

    options = {"endpoint": moto_endpoint, "access_key_id": "test", "secret_access_key": "test"}
    s3_kind.restore(repo, snap, target, replace=True, include=[], options=options)
    assert {k: v for k, v in objects(s3, other).items() if k in before} != before

    s3_kind.restore(repo, safety, target, replace=True, include=[], options=options)
    after = objects(s3, other)
    assert {k: after[k] for k in before} == before  # object for object, as it was
    # what the first restore added (keys the target never had) is left, as restores leave it
    assert set(after) - set(before) == {"live/only-source"}
    assert objects(s3, own)["data/shared/0"][2] == {"who": "source"}  # the block's: untouched


def test_another_prefix_of_the_blocks_bucket_is_the_one_kept(repo, s3, moto_endpoint
                                                              ) -> None:
    own = new_bucket(s3)
    put_all(s3, own, "data/", "source")
    put_all(s3, own, "staging/", "staging")
    settings = block(moto_endpoint, own, "data/")
    s3_kind.backup(repo, name="media", kind="snapshot", tags=[], settings=settings)
    first = s3_kind.safety_backup(repo, name="media", target=f"s3://{own}/staging/",
                                  replace=True, settings=settings)
    assert first is not None and first.meta["prefix"] == "staging/"
    assert first.meta["objects"] == 6
    # a later recovery into another target: a safety snapshot of that one, not refused for
    # following a snapshot of another prefix
    other = new_bucket(s3)
    put_all(s3, other, "", "other")
    second = s3_kind.safety_backup(repo, name="media", target=f"s3://{other}", replace=True,
                                   settings=settings)
    assert second is not None and (second.meta["bucket"], second.meta["prefix"]) == (other, "")
    assert second.kind == "full"


def test_an_empty_or_missing_target_needs_no_safety_snapshot(repo, s3, moto_endpoint) -> None:
    own, empty = new_bucket(s3), new_bucket(s3)
    put_all(s3, own, "", "source")
    settings = block(moto_endpoint, own)
    assert s3_kind.safety_backup(repo, name="media", target=f"s3://{empty}/x/", replace=True,
                                 settings=settings) is None
    assert s3_kind.safety_backup(repo, name="media", target="s3://no-such-bucket-here/",
                                 replace=True, settings=settings) is None
    notes = s3_kind.check_target("s3://no-such-bucket-here/", settings=settings, replace=False,
                                 size=1)
    assert any("create_bucket=yes" in n for n in notes)
    assert repo.list_snapshots() == []


def test_a_target_s3_cannot_read_is_refused_before_anything_is_written(
        repo, s3, moto_endpoint) -> None:
    own = new_bucket(s3)
    put_all(s3, own, "", "source")
    settings = block(moto_endpoint, own)
    for wrong in ("redis://127.0.0.1:6379", "/srv/restore", "s3://", "bolt://h/neo4j"):
        with pytest.raises(ConfigError, match="cannot read .* to keep a safety copy"):
            s3_kind.safety_backup(repo, name="media", target=wrong, replace=True,
                                  settings=settings)
        with pytest.raises(ConfigError, match="an s3 source cannot restore into"):
            s3_kind.check_target(wrong, settings=settings, replace=True, size=1)
    assert repo.list_snapshots() == []


def test_objects_in_the_target_without_replace_are_refused(repo, s3, moto_endpoint) -> None:
    own, other = new_bucket(s3), new_bucket(s3)
    put_all(s3, other, "live/", "target")
    settings = block(moto_endpoint, own)
    with pytest.raises(TargetNotEmpty, match=f"s3://{other}/live/ is not empty"):
        s3_kind.check_target(f"s3://{other}/live/", settings=settings, replace=False, size=1)
    assert s3_kind.check_target(f"s3://{other}/elsewhere/", settings=settings, replace=False,
                                size=1)
    notes = s3_kind.check_target(f"s3://{other}/live/", settings=settings, replace=True, size=1)
    assert any("overwritten" in n for n in notes)


def test_a_snapshot_that_left_objects_out_is_not_a_safety_copy(repo) -> None:
    """An archived object S3 would not hand out, or one deleted while it was read: the safety
    snapshot is incomplete and the recovery must not overwrite on its word."""
    assert s3_kind.snapshot_gaps(_snap({"skipped_archived": 1, "skipped_keys": ["a"],
                                        "vanished": 0}))
    assert s3_kind.snapshot_gaps(_snap({"skipped_archived": 0, "vanished": 2}))
    assert s3_kind.snapshot_gaps(_snap({"skipped_archived": 0, "vanished": 0})) == []


def test_an_unreachable_target_service_is_refused(repo, s3, moto_endpoint) -> None:
    from tests.support.moto_server import free_port

    settings = block(f"http://127.0.0.1:{free_port()}", "bucket")
    with pytest.raises(SourceError, match="cannot reach S3 endpoint"):
        s3_kind.check_target("s3://bucket/x/", settings=settings, replace=True, size=1)


def test_in_place_target_is_the_blocks_bucket_and_prefix() -> None:
    assert s3_kind.in_place_target({"bucket": "media", "prefix": "data/"}) == "s3://media/data/"
    assert s3_kind.in_place_target({"bucket": "media", "prefix": ""}) == "s3://media/"


def _snap(meta: dict):
    from datetime import UTC, datetime

    from strongroom.repository import Snapshot

    return Snapshot(time=datetime.now(UTC), host="h", source_name="s", source_kind="s3",
                    tree="00", meta=meta)
