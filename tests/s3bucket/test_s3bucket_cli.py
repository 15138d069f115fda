"""``strongroom backup s3`` and ``strongroom restore --target s3://...`` end to end."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.support.moto_server import free_port, s3_client


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["strongroom", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_backup_incremental_and_restore(moto_endpoint: str, s3_bucket: str,
                                            tmp_path: Path) -> None:
    s3 = s3_client(moto_endpoint)
    for i in range(5):
        s3.put_object(Bucket=s3_bucket, Key=f"p/obj-{i}", Body=os.urandom(1000 * i),
                      Metadata={"i": str(i)})
    env = dict(os.environ, STRONGROOM_REPOSITORY=str(tmp_path / "repo"),
               STRONGROOM_PASSWORD="pw")
    assert run(env, "init").returncode == 0
    base = ["backup", "s3", "--bucket", s3_bucket, "--prefix", "p/", "--endpoint",
            moto_endpoint, "--name", "assets"]
    first = run(env, *base, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["meta"]["objects"] == 5
    s3.put_object(Bucket=s3_bucket, Key="p/obj-9", Body=b"late")
    second = run(env, *base)
    assert second.returncode == 0, second.stderr
    assert "6 objects" in second.stdout and "downloaded 1, reused 5" in second.stdout
    target = f"s3://{s3_bucket}/copy/"
    out = run(env, "restore", "latest", "--target", target, "--restore-option",
              f"endpoint={moto_endpoint}", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["objects"] == 6 and report["verified"] == "sha256"
    again = run(env, "restore", "latest", "--target", target, "--restore-option",
                f"endpoint={moto_endpoint}")
    assert again.returncode == 15 and "is not empty" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    typo = run(env, "restore", "latest", "--target", target, "--replace", "--restore-option",
               f"endpoint={moto_endpoint}", "--restore-option", "verfy=quick")
    assert typo.returncode == 2 and "unknown s3 restore option(s) verfy" in typo.stderr


def test_cli_unreachable_endpoint(tmp_path: Path) -> None:
    env = dict(os.environ, STRONGROOM_REPOSITORY=str(tmp_path / "repo"),
               STRONGROOM_PASSWORD="pw")
    run(env, "init")
    out = run(env, "backup", "s3", "--bucket", "b", "--name", "x", "--endpoint",
              f"http://127.0.0.1:{free_port()}")
    assert out.returncode == 14 and out.stderr.startswith("error: cannot reach S3 endpoint")
    assert len(out.stderr.strip().splitlines()) == 1


def test_cli_archived_objects_are_skipped_and_named(moto_endpoint: str, s3_bucket: str,
                                                    tmp_path: Path) -> None:
    s3 = s3_client(moto_endpoint)
    s3.put_object(Bucket=s3_bucket, Key="hot", Body=b"readable")
    s3.put_object(Bucket=s3_bucket, Key="cold", Body=b"archived", StorageClass="DEEP_ARCHIVE")
    env = dict(os.environ, STRONGROOM_REPOSITORY=str(tmp_path / "repo"),
               STRONGROOM_PASSWORD="pw", AWS_ENDPOINT_URL=moto_endpoint)
    run(env, "init")
    out = run(env, "backup", "s3", "--bucket", s3_bucket, "--name", "mixed")
    assert out.returncode == 3, out.stderr
    assert "warning: archived, not readable: cold" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: snapshot ")
    listing = json.loads(run(env, "snapshots", "--json").stdout)
    assert listing[0]["meta"]["objects"] == 1 and listing[0]["meta"]["skipped_keys"] == ["cold"]


def test_cli_failed_restore_says_what_it_wrote(moto_endpoint: str, s3_bucket: str,
                                               tmp_path: Path) -> None:
    """A damaged snapshot stops the restore with one line that says how many objects are
    already in the target (each complete and verified); the damaged one is not there."""
    s3 = s3_client(moto_endpoint)
    for i in range(5):
        s3.put_object(Bucket=s3_bucket, Key=f"small-{i}", Body=os.urandom(1000))
    s3.put_object(Bucket=s3_bucket, Key="z-big", Body=os.urandom(6 << 20))
    env = dict(os.environ, STRONGROOM_REPOSITORY=str(tmp_path / "repo"),
               STRONGROOM_PASSWORD="pw", AWS_ENDPOINT_URL=moto_endpoint)
    assert run(env, "init").returncode == 0
    out = run(env, "backup", "s3", "--bucket", s3_bucket, "--name", "b")
    assert out.returncode == 0, out.stderr
    pack = max((p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)  # nearly all of it is z-big
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 1
    pack.write_bytes(bytes(data))
    dst = f"{s3_bucket}-restore"
    out = run(env, "restore", "latest", "--target", f"s3://{dst}/", "--restore-option",
              "create_bucket=yes")
    assert out.returncode == 13 and out.stderr.startswith("error: "), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "damaged" in out.stderr
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=dst).get("Contents", [])]
    assert "z-big" not in keys and not s3.list_multipart_uploads(Bucket=dst).get("Uploads")
    assert f"({len(keys)} object(s) were already written under s3://{dst}/; they are " \
           "complete and verified" in out.stderr


def test_cli_refuses_aws_secrets_on_the_command_line(tmp_path: Path) -> None:
    env = dict(os.environ, STRONGROOM_PASSWORD="pw")
    for args in (["init", "-r", "s3://b/r", "-o", "secret_access_key=AKIAsecretvalue"],
                 ["restore", "latest", "-r", str(tmp_path), "--target", "s3://b/",
                  "--restore-option", "aws_secret_access_key=AKIAsecretvalue"]):
        out = run(env, *args)
        assert out.returncode == 2 and out.stderr.startswith("error: option "), out.stderr
        assert "AWS_SECRET_ACCESS_KEY" in out.stderr and "AKIAsecretvalue" not in out.stderr
