"""An S3 drill against moto's S3 server through the Prefect harness: the bucket restored into
the prefix drill/ of a new scratch bucket beside it, verified byte for byte, the scratch bucket
deleted; the source bucket never written."""

from __future__ import annotations

import secrets

from tests.prefect.conftest import backup_one, save_local_target
from tests.support.moto_server import moto_server, s3_client


def test_s3_drill_restores_into_a_scratch_bucket(prefect_harness, tmp_path, names, monkeypatch):
    from pydantic import SecretStr

    from blocks import S3BucketSource, S3Credentials
    from flows.drills import drill
    from flows.limits import ensure_limits

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with moto_server() as endpoint:
        s3 = s3_client(endpoint)
        bucket = f"media-{names}"
        s3.create_bucket(Bucket=bucket)
        for i in range(8):
            s3.put_object(Bucket=bucket, Key=f"uploads/{i}.bin", Body=secrets.token_bytes(3000))
        S3BucketSource(source_name=bucket, bucket=bucket, credentials=S3Credentials(
            endpoint_url=endpoint, region="us-east-1", access_key_id=SecretStr("test"),
            secret_access_key=SecretStr("test"))).save(bucket, overwrite=True)
        ensure_limits([bucket])
        target = save_local_target(f"t-{names}", tmp_path / "repo")
        backup_one("full", f"s3/{bucket}", primary=target)
        before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}

        record = drill(f"s3/{bucket}", from_target=target, objectives=None)

        assert record["ok"] and record["verified"] and record["kind"] == "s3"
        # the drill's scratch bucket is gone (other tests share this moto server's buckets)
        assert not [b["Name"] for b in s3.list_buckets()["Buckets"]
                    if b["Name"].startswith(f"{bucket}-drill-")]
        after = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
        assert after == before
