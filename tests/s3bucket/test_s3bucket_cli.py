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
