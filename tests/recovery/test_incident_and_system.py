"""recover-incident: the newest recovery point before the incident, proven untouched, a
forensic copy of the tampered state first, key slots added since listed for revocation.
recover-system: a dry-run diff of content, mode, owner and extended attributes, then applied
in place and checked by a second diff."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime

import pytest

from strongroom.errors import ConfigError
from tests.prefect.conftest import backup_one, make_tree, save_local_target, tree_listing


def _xattr_ok(path) -> bool:
    try:
        os.setxattr(path, "user.test", b"1")
        os.removexattr(path, "user.test")
        return True
    except OSError:
        return False


def test_recover_system_dry_run_then_apply(prefect_harness, tmp_path, names):  # noqa: F811
    from flows.system import recover_system
    from tests.prefect.conftest import save_files_source

    etc = tmp_path / "etc"
    (etc / "app").mkdir(parents=True)
    (etc / "app" / "app.conf").write_text("port = 8080\n")
    (etc / "app" / "secret.key").write_text("k" * 32)
    os.chmod(etc / "app" / "secret.key", 0o600)
    xattrs = _xattr_ok(etc / "app" / "app.conf")
    if xattrs:
        os.setxattr(etc / "app" / "app.conf", "user.origin", b"config-management")
    src = save_files_source(f"host-{names}", [etc])
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    backup_one("full", src, primary=tgt)
    before = tree_listing(etc)

    (etc / "app" / "app.conf").write_text("port = 6666\n")  # drift
    os.chmod(etc / "app" / "secret.key", 0o644)
    if os.geteuid() == 0:
        os.chown(etc / "app" / "secret.key", 65534, 65534)
    if xattrs:
        os.removexattr(etc / "app" / "app.conf", "user.origin")
    (etc / "app" / "extra.conf").write_text("left alone\n")

    dry = recover_system(src, from_target=tgt)
    changes = {c["path"]: c["changes"] for c in dry["changes"]}
    conf, key = str(etc / "app" / "app.conf"), str(etc / "app" / "secret.key")
    assert any(c.startswith("content") for c in changes[conf])
    assert "mode 0644 -> 0600" in changes[key]
    if os.geteuid() == 0:
        assert any(c.startswith("owner 65534:65534 -> 0:0") for c in changes[key])
    if xattrs:
        assert "extended attributes" in changes[conf]
    assert (etc / "app" / "app.conf").read_text() == "port = 6666\n"  # dry run: untouched

    done = recover_system(src, from_target=tgt, dry_run=False)
    assert done["applied"] == len(dry["changes"]) and done["safety_snapshot"]
    after = tree_listing(etc)
    after.pop("app/extra.conf")
    assert after == before
    assert os.stat(key).st_uid == 0 and (os.stat(key).st_mode & 0o777) == 0o600
    if xattrs:
        assert os.getxattr(conf, "user.origin") == b"config-management"
    assert recover_system(src, from_target=tgt)["changes"] == []
    # the success is written after the apply and the second diff
    assert list(done["stages"]) == ["assess", "prepare", "restore", "apply", "verify",
                                   "post-mortem"]
    text = _artifacts(f"post-mortem-recover-system-host-{names}")[
        f"post-mortem-recover-system-host-{names}"]
    assert "(completed)" in text and "verified by a second diff: nothing left to change" in text
    assert "strongroom.recovery.completed" in _events(f"recover-system-host-{names}",
                                                      "strongroom.recovery.completed")


def test_recover_incident_from_before_with_forensic_copy(prefect_harness, tmp_path,  # noqa: F811
                                                        names):
    from blocks import FilesSource, StrongroomSite
    from blocks.loading import load_target
    from flows.incident import recover_incident
    from flows.limits import ensure_limits

    data = make_tree(tmp_path / "data", files=6)
    FilesSource(source_name=f"keys-{names}", paths=[str(data)], objective_class="security",
                restore_target=str(tmp_path / "restored")).save(f"keys-{names}")
    ensure_limits([f"keys-{names}"])
    tgt = save_local_target(f"vault-{names}", tmp_path / "repo")
    StrongroomSite(sources=[f"files/keys-{names}"], primary=tgt, secondary=[tgt]
                   ).save(f"site-{names}")
    good = backup_one("full", f"files/keys-{names}", primary=tgt)
    expected = tree_listing(data)
    time.sleep(0.05)
    incident = datetime.now(UTC)
    (data / "d0" / "e0" / "f0.bin").write_bytes(b"ransom")  # the attacker's work
    backup_one("incremental", f"files/keys-{names}", primary=tgt)  # backed up after it
    repo = load_target(tgt).open()
    rogue = repo.add_slot("password", b"attacker password", label="rogue")
    make_tree(tmp_path / "restored", files=2)  # what is there now gets a forensic copy

    report = recover_incident(incident, site=f"site-{names}")
    assert report["results"][0]["snapshot"] == good["snapshot"]["id"]
    assert report["untouched"][0]["snapshot"] == good["snapshot"]["id"]
    assert tree_listing(tmp_path / "restored") == expected  # the source path's contents
    assert [s["slot"] for s in report["revoke"]] == [rogue.id]
    forensic = report["forensic"][f"files/keys-{names}"]
    assert forensic and "forensic" not in good["snapshot"]["tags"]
    copy = load_target(tgt).open().find_snapshot(forensic)
    assert copy.tags == ["forensic"] and copy.source_name == f"keys-{names}-forensic"
    assert report["results"][0]["rto_objective_s"] == 3600  # the security class
    assert report["results"][0]["rpo_objective_s"] == 900
    assert any(f"revoke key slot {rogue.id}" in a for a in report["anomalies"])


def _artifacts(prefix: str) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(like_=prefix)))
    return {a.key: a.data for a in found}


def _events(resource: str, wanted: str, timeout: float = 30.0) -> list[str]:
    """Names of the strongroom events about ``resource`` stored by the API, once ``wanted``
    is among them (events reach the API asynchronously)."""
    from prefect.client.orchestration import get_client
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=30)
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            found = client.request("POST", "/events/filter", json={"filter": {
                "resource": {"id": [f"strongroom.{resource}"]}}}).json()
            names = [e["event"] for e in found["events"]]
            if wanted in names or time.monotonic() > deadline:
                return names
            time.sleep(0.5)


def _immutable(path, on: bool) -> bool:
    import subprocess

    return subprocess.run(["chattr", "+i" if on else "-i", str(path)],
                          capture_output=True).returncode == 0


def test_recover_system_stops_at_an_entry_it_cannot_replace(prefect_harness, tmp_path,  # noqa: F811
                                                           names):
    from flows.system import recover_system
    from tests.prefect.conftest import save_files_source

    etc = tmp_path / "etc"
    (etc / "app").mkdir(parents=True)
    for n in ("a", "b", "c"):
        (etc / "app" / f"{n}.conf").write_text(f"{n} = good\n")
    src = save_files_source(f"host-{names}", [etc])
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    backup_one("full", src, primary=tgt)
    for n in ("a", "b", "c"):
        (etc / "app" / f"{n}.conf").write_text(f"{n} = drifted\n")
    (etc / "app" / "new").mkdir()
    if not _immutable(etc / "app" / "b.conf", True):
        pytest.skip("chattr +i is not available here")
    try:
        drifted = tree_listing(etc)
        state = recover_system(src, from_target=tgt, dry_run=False, return_state=True)
        after = tree_listing(etc)
    finally:
        _immutable(etc / "app" / "b.conf", False)
    assert state.is_failed()
    with pytest.raises(Exception) as raised:
        state.result()
    message = str(raised.value)
    assert "\n" not in message and "failed at apply" in message
    assert "b.conf: Operation not permitted" in message and "1 entry applied" in message
    # a.conf was applied; b.conf could not be moved aside, so it holds its old entry; c.conf
    # was never reached; nothing else is left beside them (no staging, no entry aside)
    assert (etc / "app" / "a.conf").read_text() == "a = good\n"
    drifted.pop("app/a.conf"), after.pop("app/a.conf")
    assert after == drifted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["etc", "repo"]
    assert not [p for p in (etc / "app").iterdir() if p.name.startswith(".")]

    found = _artifacts(f"post-mortem-recover-system-host-{names}%")
    assert f"post-mortem-recover-system-host-{names}" not in found  # no success
    (text,) = [v for k, v in found.items() if "-failed-" in k]
    assert "(FAILED at apply)" in text
    assert f"1 entry applied before the failure: `{etc}/app/a.conf`" in text
    assert f"`{etc}/app/b.conf` was not replaced: it holds the old entry" in text
    safety = re.search(r"the safety snapshot `([0-9a-f]{64})`", text).group(1)
    undo = (f"prefect deployment run 'recover-system/recover-system' -p source={src} "
            f"-p snapshot={safety} -p from_target={tgt} -p root=/ -p dry_run=false")
    assert undo in text and f"strongroom restore {safety} --target / --replace" in text
    events = _events(f"recover-system-host-{names}", "strongroom.recovery.failed")
    assert "strongroom.recovery.failed" in events
    assert "strongroom.recovery.completed" not in events

    # the undo it names works: the safety snapshot puts a.conf back as it was
    recover_system(src, from_target=tgt, snapshot=safety, dry_run=False)
    assert (etc / "app" / "a.conf").read_text() == "a = drifted\n"


def test_recover_system_changes_nothing_when_the_safety_snapshot_lacks_an_entry(  # noqa: F811
        prefect_harness, tmp_path, names):
    import socket

    from flows.system import recover_system
    from tests.prefect.conftest import save_files_source

    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "a.conf").write_text("a = good\n")
    (etc / "sock").write_text("a file in the snapshot\n")
    src = save_files_source(f"host-{names}", [etc])
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    backup_one("full", src, primary=tgt)
    (etc / "a.conf").write_text("a = drifted\n")
    (etc / "sock").unlink()
    live = socket.socket(socket.AF_UNIX)  # a backup cannot keep a socket: no undo for it
    live.bind(str(etc / "sock"))
    try:
        state = recover_system(src, from_target=tgt, dry_run=False, return_state=True)
        assert state.is_failed()
        assert (etc / "a.conf").read_text() == "a = drifted\n"  # nothing was changed
        assert (etc / "sock").is_socket()
        assert sorted(p.name for p in etc.iterdir()) == ["a.conf", "sock"]
    finally:
        live.close()
    found = _artifacts(f"post-mortem-recover-system-host-{names}%")
    (text,) = [v for k, v in found.items() if "-failed-" in k]
    assert "(FAILED at prepare)" in text and "lacks 1 of the entries" in text
    assert "nothing was changed" in text


def test_recover_incident_checks_every_source_before_touching_any(prefect_harness,  # noqa: F811
                                                                 tmp_path, names):
    from blocks import FilesSource, StrongroomSite
    from blocks.loading import load_target
    from flows.incident import recover_incident
    from flows.limits import ensure_limits

    refs = []
    for n in ("one", "two"):
        make_tree(tmp_path / f"data-{n}", files=4)
        FilesSource(source_name=f"{n}-{names}", paths=[str(tmp_path / f"data-{n}")],
                    objective_class="security",
                    restore_target=str(tmp_path / f"live-{n}")).save(f"{n}-{names}")
        refs.append(f"files/{n}-{names}")
    ensure_limits([f"one-{names}", f"two-{names}"])
    tgt = save_local_target(f"vault-{names}", tmp_path / "repo")
    StrongroomSite(sources=refs, primary=tgt, secondary=[tgt]).save(f"site-{names}")
    backup_one("full", refs[0], primary=tgt)
    time.sleep(0.05)
    incident = datetime.now(UTC)
    backup_one("full", refs[1], primary=tgt)  # source two has nothing from before it
    make_tree(tmp_path / "live-one", files=3)
    found_there = tree_listing(tmp_path / "live-one")

    state = recover_incident(incident, site=f"site-{names}", return_state=True)
    assert state.is_failed()
    assert tree_listing(tmp_path / "live-one") == found_there  # byte for byte untouched
    text, = [v for k, v in _artifacts(f"post-mortem-recover-incident-site-{names}%").items()
             if "-failed-" in k]
    assert "(FAILED at assess)" in text and f"{refs[1]}: no snapshot" in text
    assert "nothing was changed" in text
    snaps = load_target(tgt).open().list_snapshots()
    assert not [s for s in snaps if "forensic" in s.tags]  # the copies come after the checks


def test_forensic_copy_refuses_a_target_its_kind_cannot_read(tmp_path):
    from pydantic import SecretStr

    from blocks import S3BucketSource, S3Credentials
    from tasks.forensic import copy_target

    block = S3BucketSource(source_name="media", bucket="media", prefix="uploads/",
                           credentials=S3Credentials(endpoint_url="http://127.0.0.1:9",
                                                     access_key_id=SecretStr("k"),
                                                     secret_access_key=SecretStr("s")))
    with pytest.raises(ConfigError, match="cannot take a forensic copy of ftp://elsewhere/"):
        copy_target(None, block, "ftp://elsewhere/uploads", "forensic")
