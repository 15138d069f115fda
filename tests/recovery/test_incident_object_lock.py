"""recover-incident from an immutable tier on moto S3 (server mode): the secondary keeps S3
Object Lock in COMPLIANCE mode, the flow picks it by itself, proves the recovery point's lock
still in force and its blobs unchanged, and restores from it; a blob overwritten on the
locked bucket (a new object version: the lock keeps the old one, not the key) is caught by the
checksums and nothing is overwritten."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

import pytest

from strongroom.errors import IntegrityError
from tests.prefect.conftest import backup_one, make_tree, save_local_target, tree_listing


def _site(names, tmp_path, endpoint, tag):
    from blocks import FilesSource, RepositoryKey, RepositoryTarget, StrongroomSite
    from flows.limits import ensure_limits

    data = make_tree(tmp_path / f"data-{tag}", files=5)
    name = f"vault{tag}-{names}"
    FilesSource(source_name=name, paths=[str(data)], objective_class="security",
                restore_target=str(tmp_path / f"restored-{tag}")).save(name)
    ensure_limits([name])
    primary = save_local_target(f"local{tag}-{names}", tmp_path / f"repo-{tag}")
    bucket = f"locked-{secrets.token_hex(5)}"  # created by init, with Object Lock enabled
    RepositoryTarget(url=f"s3://{bucket}/secondary", role="secondary",
                     key=RepositoryKey(password="locked tier"),
                     options={"endpoint": endpoint, "object_lock_mode": "COMPLIANCE",
                              "object_lock_days": "1"}).save(f"worm{tag}-{names}")
    StrongroomSite(sources=[f"files/{name}"], primary=primary,
                   secondary=[f"worm{tag}-{names}"]).save(f"site{tag}-{names}")
    good = backup_one("full", f"files/{name}", primary=primary,
                      replicas=[f"worm{tag}-{names}"])
    expected = tree_listing(data)
    time.sleep(0.05)
    incident = datetime.now(UTC)
    (data / "d0" / "e0" / "f0.bin").write_bytes(b"encrypted by the attacker")
    backup_one("incremental", f"files/{name}", primary=primary,  # backed up after it
               replicas=[f"worm{tag}-{names}"])
    return {"data": data, "name": name, "bucket": bucket, "good": good,
            "incident": incident, "tier": f"worm{tag}-{names}", "site": f"site{tag}-{names}",
            "expected": expected}


def test_incident_restores_from_the_object_locked_tier_and_refuses_tampered_packs(
        prefect_harness, tmp_path, names, moto_endpoint):  # noqa: F811
    from blocks.loading import load_target
    from flows.incident import recover_incident
    from tests.support.moto_server import s3_client

    s = _site(names, tmp_path, moto_endpoint, "a")
    copies = sorted(load_target(s["tier"]).open().list_snapshots(s["name"]),
                    key=lambda c: c.time)
    assert len(copies) == 2 and copies[0].time < s["incident"] < copies[1].time
    snap = copies[0].id  # the copy of the last backup before the incident
    head = s3_client(moto_endpoint).head_object(Bucket=s["bucket"],
                                                Key=f"secondary/snapshots/{snap}")
    assert head["ObjectLockMode"] == "COMPLIANCE"  # the tier really is immutable

    report = recover_incident(s["incident"], site=s["site"])
    assert report["from"] == s["tier"] and report["object_lock"] is True
    untouched = report["untouched"][0]
    assert untouched["snapshot"] == snap
    assert untouched["object_lock"].startswith("COMPLIANCE until ")
    restored = tree_listing(tmp_path / "restored-a")  # the source path's contents
    assert restored == s["expected"]  # as before the attacker's write
    assert any("object lock: COMPLIANCE until" in a for a in report["anomalies"])
    assert report["results"][0]["rto_objective_s"] == 3600  # the security class

    # a new version over each pack on the locked bucket (allowed: the lock keeps the old
    # versions, not the key): the checksums catch it and nothing is overwritten
    s3 = s3_client(moto_endpoint)
    for obj in s3.list_objects_v2(Bucket=s["bucket"], Prefix="secondary/data/")["Contents"]:
        body = s3.get_object(Bucket=s["bucket"], Key=obj["Key"])["Body"].read()
        s3.put_object(Bucket=s["bucket"], Key=obj["Key"], Body=body[:-16] + bytes(16))
    (s["data"] / "d0" / "e0" / "f0.bin").write_bytes(b"encrypted again")
    state = recover_incident(s["incident"], site=s["site"], return_state=True)
    assert state.is_failed()
    with pytest.raises(IntegrityError, match="contents do not match its name .damaged."):
        state.result()
    assert tree_listing(tmp_path / "restored-a") == s["expected"]
