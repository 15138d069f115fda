"""recover-incident: the newest recovery point before the incident, proven untouched, a
forensic copy of the tampered state first, key slots added since listed for revocation.
recover-system: a dry-run diff of content, mode, owner and extended attributes, then applied
in place and checked by a second diff."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

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
    assert tree_listing(tmp_path / "restored" / str(data).lstrip("/")) == expected
    assert [s["slot"] for s in report["revoke"]] == [rogue.id]
    forensic = report["forensic"][f"files/keys-{names}"]
    assert forensic and "forensic" not in good["snapshot"]["tags"]
    assert report["results"][0]["rto_objective_s"] == 3600  # the security class
    assert report["results"][0]["rpo_objective_s"] == 900
    assert any(f"revoke key slot {rogue.id}" in a for a in report["anomalies"])
