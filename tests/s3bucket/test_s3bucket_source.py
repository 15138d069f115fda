"""S3 bucket source against moto's S3 server, driven through both the minio SDK and boto3."""

from __future__ import annotations

import hashlib
import io
import secrets
import urllib.request
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from minio import Minio
from minio.commonconfig import Tags

from strongroom.errors import (
    ConfigError,
    IntegrityError,
    SourceError,
    SourceUnreachable,
    TargetNotEmpty,
)
from strongroom.repository import Repository
from strongroom.sources import registry
from strongroom.sources.s3.backup import backup_bucket
from strongroom.sources.s3.client import errors
from strongroom.sources.s3.restore import restore_bucket
from tests.support.moto_server import free_port, s3_client

PW = "s3-tests"


@pytest.fixture(autouse=True)
def endpoint_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The source finds the endpoint like every AWS tool: AWS_ENDPOINT_URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(str(tmp_path / "repo"), password=PW)


@pytest.fixture
def s3(moto_endpoint: str):
    return s3_client(moto_endpoint)


@pytest.fixture
def mc(moto_endpoint: str) -> Minio:
    return Minio(moto_endpoint.removeprefix("http://"), access_key="test", secret_key="test",
                 secure=False, region="us-east-1")


def new_bucket(s3, versioned: bool = False) -> str:
    name = f"b-{secrets.token_hex(5)}"
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def put(mc: Minio, bucket: str, key: str, data: bytes, **tags: str) -> None:
    t = Tags.new_object_tags()
    t.update(tags)
    mc.put_object(bucket, key, io.BytesIO(data), len(data), content_type="application/x-test",
                  metadata={"owner": "alice", "n": str(len(data))}, tags=t if tags else None)


def state(s3, bucket: str, prefix: str) -> dict[str, dict]:
    """Everything a restore must carry, by key relative to the prefix (read with boto3)."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            got = s3.get_object(Bucket=bucket, Key=o["Key"])
            tags = s3.get_object_tagging(Bucket=bucket, Key=o["Key"])["TagSet"]
            out[o["Key"][len(prefix):]] = {
                "sha256": hashlib.sha256(got["Body"].read()).hexdigest(),
                "size": o["Size"], "type": got["ContentType"], "meta": got["Metadata"],
                "cache": got.get("CacheControl"),
                "tags": {t["Key"]: t["Value"] for t in tags}}
    return out


KEYS = {
    "data/empty": b"",
    "data/small.txt": b"hello\n",
    "data/données/été ☀.txt": "unicode ünïcode".encode() * 100,
    "data/日本/ファイル": b"x" * 70_000,
    "data/a": b"file a",
    "data/a/b": b"file a/b (a is also an object)",
    "data/trailing/": b"",
}


def fill(mc: Minio, s3, bucket: str) -> None:
    for key, data in KEYS.items():
        put(mc, bucket, key, data, team="ops", env="prod" if len(data) % 2 else "dev")
    s3.put_object(Bucket=bucket, Key="data/dots/../odd", Body=b"dot dot key")  # minio refuses
    s3.put_object(Bucket=bucket, Key="data/random.bin", Body=secrets.token_bytes(3_000_000),
                  CacheControl="max-age=60", ContentType="application/octet-stream",
                  Metadata={"origin": "boto3"})
    put(mc, bucket, "outside/prefix", b"not backed up")


def test_roundtrip_into_another_bucket_keeps_metadata_and_tags(repo, s3, mc) -> None:
    src = new_bucket(s3)
    fill(mc, s3, src)
    snap = backup_bucket(repo, src, "bucket", prefix="data/")
    assert snap.meta["objects"] == len(KEYS) + 2 and snap.meta["downloaded"] == len(KEYS) + 2
    dst = new_bucket(s3)
    report = restore_bucket(repo, snap, f"s3://{dst}/restored/", replace=False, include=[],
                            options={})
    assert report["verified"] == "sha256" and report["objects"] == len(KEYS) + 2
    assert state(s3, dst, "restored/") == state(s3, src, "data/")
    stat = mc.stat_object(dst, "restored/données/été ☀.txt")  # and through the minio SDK
    assert stat.content_type == "application/x-test"
    assert stat.metadata["x-amz-meta-owner"] == "alice"
    assert dict(mc.get_object_tags(dst, "restored/a/b")) == {"team": "ops", "env": "dev"}
    assert s3.head_object(Bucket=dst, Key="restored/random.bin")["CacheControl"] == "max-age=60"


def test_incremental_lists_against_parent_and_reuses_nodes(repo, s3, mc) -> None:
    src = new_bucket(s3)
    fill(mc, s3, src)
    full = backup_bucket(repo, src, "bucket", prefix="data/")
    put(mc, src, "data/small.txt", b"changed\n")
    put(mc, src, "data/new", b"brand new")
    s3.delete_object(Bucket=src, Key="data/a")
    s3.put_object_tagging(Bucket=src, Key="data/a/b",
                          Tagging={"TagSet": [{"Key": "team", "Value": "dev"}]})
    inc = backup_bucket(repo, src, "bucket", prefix="data/", kind="incremental")
    assert inc.kind == "incremental" and inc.parent == full.id
    assert inc.meta["downloaded"] == 2 and inc.meta["reused"] == len(KEYS)
    assert inc.stats.bytes_read < 100_000  # the 3 MB object was not read again
    dst = new_bucket(s3)
    restore_bucket(repo, inc, f"s3://{dst}/", replace=False, include=[], options={})
    assert state(s3, dst, "") == state(s3, src, "data/")
    assert state(s3, dst, "")["a/b"]["tags"] == {"team": "dev"}


def test_every_version_and_delete_marker(repo, s3, mc) -> None:
    src = new_bucket(s3, versioned=True)
    for i in range(3):
        put(mc, src, "v/doc", f"version {i}".encode(), rev=str(i))
    put(mc, src, "v/gone", b"deleted later")
    s3.delete_object(Bucket=src, Key="v/gone")
    snap = backup_bucket(repo, src, "versioned", prefix="v/", versions=True)
    assert snap.meta["objects"] == 4 and snap.meta["delete_markers"] == 1
    dst = new_bucket(s3, versioned=True)
    report = restore_bucket(repo, snap, f"s3://{dst}/v/", replace=False, include=[],
                            options={"versions": "all"})
    assert report["versions_written"] == 5 and report["objects"] == 1
    listed = s3.list_object_versions(Bucket=dst, Prefix="v/")
    doc = [v for v in listed["Versions"] if v["Key"] == "v/doc"][::-1]  # listed newest first
    bodies = [s3.get_object(Bucket=dst, Key="v/doc", VersionId=v["VersionId"])["Body"].read()
              for v in doc]
    assert bodies == [b"version 0", b"version 1", b"version 2"]
    assert [m["Key"] for m in listed["DeleteMarkers"] if m["IsLatest"]] == ["v/gone"]
    latest = new_bucket(s3)
    restore_bucket(repo, snap, f"s3://{latest}/", replace=False, include=[], options={})
    assert {k: v["tags"] for k, v in state(s3, latest, "").items()} == {"doc": {"rev": "2"}}


def test_non_empty_target_needs_replace(repo, s3, mc) -> None:
    src = new_bucket(s3)
    fill(mc, s3, src)
    snap = backup_bucket(repo, src, "bucket", prefix="data/")
    put(mc, src, "data/small.txt", b"edited after the backup")
    with pytest.raises(TargetNotEmpty, match=f"s3://{src}/data/ is not empty"):
        restore_bucket(repo, snap, f"s3://{src}/data/", replace=False, include=[], options={})
    assert mc.get_object(src, "data/small.txt").read() == b"edited after the backup"
    put(mc, src, "data/extra", b"not in the snapshot")
    report = restore_bucket(repo, snap, f"s3://{src}/data/", replace=True, include=[],
                            options={"verify": "quick"})
    assert report["other_objects"] == 1 and report["verified"] == "sizes"
    assert mc.get_object(src, "data/small.txt").read() == b"hello\n"


def test_corrupted_snapshot_writes_nothing_wrong(repo, s3, mc, tmp_path: Path) -> None:
    src = new_bucket(s3)
    s3.put_object(Bucket=src, Key="big", Body=secrets.token_bytes(20 << 20))
    snap = backup_bucket(repo, src, "bucket")
    for pack in (tmp_path / "repo" / "data").rglob("*"):
        if pack.is_file() and pack.stat().st_size > 1 << 20:
            data = bytearray(pack.read_bytes())
            data[len(data) // 2] ^= 1
            pack.write_bytes(bytes(data))
    fresh = Repository.open(str(tmp_path / "repo"), password=PW)
    dst = new_bucket(s3)
    with pytest.raises(IntegrityError):
        restore_bucket(fresh, fresh.find_snapshot(snap.id), f"s3://{dst}/", replace=False,
                       include=[], options={"part_size_mib": "5"})
    assert s3.list_objects_v2(Bucket=dst).get("KeyCount", 0) == 0
    assert not s3.list_multipart_uploads(Bucket=dst).get("Uploads")


def test_unreachable_endpoint_and_missing_bucket(repo, moto_endpoint) -> None:
    """Unreachable is transient (a retry may cure it); a missing bucket is not."""
    with pytest.raises(SourceUnreachable, match="cannot reach S3 endpoint http://127.0.0.1:"):
        backup_bucket(repo, "any", "x", endpoint=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SourceError, match="no such bucket 'nope-missing'") as exc:
        backup_bucket(repo, "nope-missing", "x", endpoint=moto_endpoint)
    assert not isinstance(exc.value, SourceUnreachable)
    assert repo.list_snapshots() == []


def test_bad_credentials_are_refused(repo, s3, moto_endpoint) -> None:
    """moto accepts any key unless IAM checks are switched on (process-wide, so briefly)."""
    bucket = new_bucket(s3)

    def auth_after(count: str) -> None:
        req = urllib.request.Request(f"{moto_endpoint}/moto-api/reset-auth",
                                     data=count.encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(req, timeout=10).read()

    auth_after("0")
    try:
        with pytest.raises(SourceError, match="denied") as exc:
            backup_bucket(repo, bucket, "x", endpoint=moto_endpoint)
    finally:
        auth_after("inf")
    assert "test" not in str(exc.value).replace("test-", "")
    assert repo.list_snapshots() == []


class _Repeat(io.RawIOBase):
    """``size`` bytes made of one random MiB repeated: cheap to make, dedupes to ~1 MiB."""

    def __init__(self, size: int) -> None:
        self.block = secrets.token_bytes(1 << 20)
        self.left = size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self.left, len(self.block) - self.pos)
        buf[:n] = self.block[self.pos:self.pos + n]
        self.pos = (self.pos + n) % len(self.block)
        self.left -= n
        return n


@pytest.mark.slow
def test_object_over_100_mib_goes_multipart(repo, s3) -> None:
    src = new_bucket(s3)
    size = (101 << 20) + 12345
    s3.upload_fileobj(io.BufferedReader(_Repeat(size)), src, "huge.bin",
                      ExtraArgs={"Metadata": {"kind": "huge"}},
                      Config=TransferConfig(multipart_threshold=16 << 20,
                                            multipart_chunksize=16 << 20))
    put_small = b"tiny"
    s3.put_object(Bucket=src, Key="tiny", Body=put_small)
    snap = backup_bucket(repo, src, "huge")
    assert snap.meta["bytes"] == size + 4
    assert snap.stats.bytes_new < 8 << 20  # the repeated MiB deduplicates
    report = restore_bucket(repo, snap, f"s3://{src}/copy/", replace=True, include=["huge"],
                            options={})
    assert report["multipart"] == 1 and report["objects"] == 1
    head = s3.head_object(Bucket=src, Key="copy/huge.bin")
    assert head["ContentLength"] == size and head["Metadata"] == {"kind": "huge"}
    assert head["ETag"].endswith('-7"')  # 101 MiB in 16 MiB parts


def test_source_contract(repo, s3, moto_endpoint, monkeypatch) -> None:
    """What a Prefect S3 bucket source block calls through the registry: the block's fields
    as settings (explicit endpoint and credentials), restore options, progress in bytes."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    source = registry.get("s3")
    assert (source.kind, source.default_class, source.progress_unit) == ("s3", "files", "bytes")
    src = new_bucket(s3)
    s3.put_object(Bucket=src, Key="k/1", Body=b"one")
    settings = {"bucket": src, "prefix": "k/", "endpoint_url": moto_endpoint,
                "region": "us-east-1", "access_key_id": "test", "secret_access_key": "test",
                "versions": False}
    snap = source.backup(repo, name="blk", kind="snapshot", tags=[], settings=settings)
    assert snap.meta["objects"] == 1 and snap.source_kind == "s3"
    again = source.backup(repo, name="blk", kind="incremental", tags=["t"], settings=settings)
    assert again.parent == snap.id and again.meta["reused"] == 1 and again.tags == ["t"]
    dst = new_bucket(s3)
    done: list[float] = []
    report = source.restore(repo, again, f"s3://{dst}/", replace=False, include=[],
                            options={"endpoint_url": moto_endpoint}, progress=done.append)
    assert report["objects"] == 1 and s3.get_object(Bucket=dst, Key="1")["Body"].read() == b"one"
    assert sum(done) == 3
    assert source.verify_restored(repo, again, f"s3://{dst}/", include=[],
                                  report=report)["objects"] == 1
    with pytest.raises(ConfigError, match="unknown s3 restore option"):
        source.restore(repo, again, f"s3://{dst}/", replace=True, include=[],
                       options={"verfy": "quick"})
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SourceUnreachable):
        source.backup(repo, name="blk", kind="incremental", tags=[],
                      settings={**settings, "endpoint_url": None})


def test_verification_catches_a_changed_object(repo, s3, mc, monkeypatch) -> None:
    """Same size, other bytes: only the re-read SHA-256 (verify=full) can see it."""
    import strongroom.sources.s3.restore as mod

    src = new_bucket(s3)
    fill(mc, s3, src)
    snap = backup_bucket(repo, src, "bucket", prefix="data/")
    real_put = mod._Restore.put

    def put_then_damage(self, e, key):
        real_put(self, e, key)
        if key.endswith("small.txt"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"HELLO\n")

    monkeypatch.setattr(mod._Restore, "put", put_then_damage)
    dst = new_bucket(s3)
    with pytest.raises(IntegrityError, match=r"s3://.*/small.txt has SHA-256"):
        restore_bucket(repo, snap, f"s3://{dst}/", replace=False, include=[], options={})


@pytest.mark.parametrize("fault", [
    EndpointConnectionError(endpoint_url="http://e"), ConnectTimeoutError(endpoint_url="http://e"),
    ReadTimeoutError(endpoint_url="http://e"), ConnectionClosedError(endpoint_url="http://e"),
    ClientError({"Error": {"Code": "SlowDown", "Message": "reduce your rate"}}, "GetObject"),
    ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "x"}}, "ListObjectsV2"),
], ids=type)
def test_an_endpoint_down_or_lost_is_unreachable(fault) -> None:
    """Retries test the type: down, timed out, cut off or overloaded is SourceUnreachable."""
    with pytest.raises(SourceUnreachable) as exc, errors("backup", "http://e", "b"):
        raise fault
    msg = str(exc.value)
    assert "\n" not in msg and ("http://e" in msg or "'b'" in msg)


@pytest.mark.parametrize("code", ["AccessDenied", "NoSuchBucket", "InvalidObjectState"])
def test_a_refusal_is_not_unreachable(code: str) -> None:
    with pytest.raises(SourceError) as exc, errors("backup", "http://e", "b"):
        raise ClientError({"Error": {"Code": code, "Message": "no"}}, "GetObject")
    assert not isinstance(exc.value, SourceUnreachable)
