"""Tier flows on a real files source, then recover_files: the restored tree is identical."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.prefect.conftest import (
    backup_one,
    backup_state,
    make_tree,
    save_files_source,
    save_local_target,
    tree_listing,
)


def under(restored: Path, original: Path) -> Path:
    """A recovery puts a one-path source's contents into the target itself, not below its
    absolute path."""
    return restored


def _artifact(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key])))
    return arts[0] if arts else None


def test_full_incremental_then_recover_identical(prefect_harness, tmp_path, names):
    from flows.recovery import recover_files

    data = make_tree(tmp_path / "data")
    src = save_files_source(f"docs-{names}", [data])
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")

    full = backup_one("full", src, primary=tgt)
    assert full["snapshot"]["kind"] == "full"
    assert full["steps"]["checksum"]["files"] == 41
    assert full["steps"]["encrypt check"]["new_blobs"] > 0
    first_state = tree_listing(data)
    between = datetime.now(UTC).isoformat()
    time.sleep(0.05)

    # Change a few files, add one, remove one: the incremental reads only those.
    (data / "d0" / "e0" / "f0.bin").write_bytes(os.urandom(5000))
    (data / "d2" / "new.txt").write_text("added after the full\n")
    (data / "d3" / "e0" / "f3.bin").unlink()
    inc = backup_one("incremental", src, primary=tgt)
    snap = inc["snapshot"]
    assert snap["kind"] == "incremental" and snap["parent"] == full["snapshot"]["id"]
    assert 0 < snap["stats"]["bytes_read"] < full["snapshot"]["stats"]["bytes_read"] / 4
    assert inc["steps"]["verify"]["mode"] == "subset"
    assert inc["steps"]["checksum"]["files"] == 41  # all counted, only the changed re-read
    assert inc["steps"]["checksum"]["files_read"] == 2

    md = _artifact(f"backup-incremental-files-docs-{names}")
    assert md is not None and snap["short_id"] in md.data and "## Targets" in md.data

    out = tmp_path / "restored"
    report = recover_files(src, str(out), from_target=tgt)
    assert tree_listing(under(out, data)) == tree_listing(data)
    assert list(report["stages"]) == ["assess", "prepare", "restore", "verify"]
    assert report["results"][0]["snapshot"] == snap["id"]
    pm = _artifact(f"post-mortem-recover-files-docs-{names}")
    assert pm is not None
    for text in ("## Stages", "measured RTO", "| RTO | ", " of 2 h | met |", "## Anomalies",
                 "| written | ", "verified byte for byte", "backup functionality verified"):
        assert text in pm.data
    progress = _artifact(f"restore-docs-{names}")
    assert progress is not None and progress.type == "progress" and progress.data == 100

    # Point in time: as of just after the full, the full is the recovery point.
    old = tmp_path / "as-of-full"
    report = recover_files(src, str(old), at=between, from_target=tgt)
    assert report["results"][0]["snapshot"] == full["snapshot"]["id"]
    assert "past recoveries" in report["results"][0]["estimate_basis"]
    assert tree_listing(under(old, data)) == first_state


def test_recover_into_non_empty_target_keeps_it_beside(prefect_harness, tmp_path, names):
    from flows.recovery import recover_files

    data = make_tree(tmp_path / "data", files=6)
    src = save_files_source(f"site-{names}", [data])
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    backup_one("full", src, primary=tgt)

    dest = tmp_path / "live"
    dest.mkdir()
    (dest / "stale.txt").write_text("what was there before")
    state = recover_files(src, str(dest), from_target=tgt, return_state=True)
    assert state.is_failed() and "not empty" in state.message

    report = recover_files(src, str(dest), from_target=tgt, replace=True)
    assert not (dest / "stale.txt").exists()
    assert tree_listing(under(dest, data)) == tree_listing(data)
    kept = Path(report["results"][0]["kept"])
    assert kept.name.startswith("live.before-restore-")
    assert (kept / "stale.txt").read_text() == "what was there before"


def test_missing_concurrency_limit_is_a_clear_failure(prefect_harness, tmp_path, names):
    from blocks import FilesSource

    FilesSource(source_name=f"nolimit-{names}", paths=[str(make_tree(tmp_path / "d", 2))]
                ).save(f"nolimit-{names}")
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    state = backup_state("full", f"files/nolimit-{names}", primary=tgt)
    assert state.is_failed()
    assert f"concurrency limit strongroom-source-nolimit-{names} does not exist" in state.message


def test_replicate_then_disaster_recovery_from_secondary(prefect_harness, tmp_path, names):
    """Two sources, one naming a host that has no recovery deployment: the disaster recovery
    runs both recoveries (each its own subflow run) here, from the secondary."""
    import shutil

    from blocks import FilesSource, RepositoryKey, RepositoryTarget, StrongroomSite
    from flows.recovery import disaster_recovery

    data = make_tree(tmp_path / "data", files=12)
    other = make_tree(tmp_path / "other", files=5)
    src = save_files_source(f"dr-{names}", [data])
    src2 = save_files_source(f"dr2-{names}", [other])
    FilesSource(source_name=f"dr2-{names}", paths=[str(other)], runs_on="host-without-workers"
                ).save(f"dr2-{names}", overwrite=True)
    primary = save_local_target(f"primary-{names}", tmp_path / "primary")
    RepositoryTarget(url=str(tmp_path / "secondary"), role="secondary",
                     key=RepositoryKey(password="another key")).save(f"secondary-{names}")
    StrongroomSite(sources=[src, src2], primary=primary, secondary=[f"secondary-{names}"]
                   ).save(f"site-{names}")

    result = backup_one("full", src, primary=primary, replicas=[f"secondary-{names}"])
    backup_one("full", src2, primary=primary, replicas=[f"secondary-{names}"])
    copy = result["replicas"][0]
    assert not copy.get("skipped"), copy
    assert copy["target"].startswith("secondary") and copy["verify"]["blobs_checked"] >= 0
    assert copy["snapshot"] != result["snapshot"]["id"]  # re-encrypted under another key

    shutil.rmtree(tmp_path / "primary")  # the primary site is gone
    report = disaster_recovery(site=f"site-{names}", target_root=str(tmp_path / "dr"))
    assert tree_listing(under(tmp_path / "dr" / f"dr-{names}", data)) == tree_listing(data)
    assert tree_listing(under(tmp_path / "dr" / f"dr2-{names}", other)) == tree_listing(other)
    by_source = {r["source"]: r for r in report["results"]}
    assert by_source[f"dr-{names}"]["snapshot"] == copy["snapshot"]
    assert report["sources"][src2]["runs_on"] is None  # no recover-files@host: ran here
    pm = _artifact(f"post-mortem-disaster-recovery-site-{names}")
    assert pm is not None and f"dr2-{names}" in pm.data
