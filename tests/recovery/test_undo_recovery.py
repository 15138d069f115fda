"""Recoveries that cannot make things worse, through the flows: in place by default, every
target checked before any service is stopped, failures reported with what was changed, and
``undo-recovery`` putting the pre-recovery state back byte for byte (key for key)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.prefect.conftest import (
    backup_one,
    make_tree,
    save_files_source,
    save_local_target,
    tree_listing,
)


def _artifact(key: str):
    from prefect.artifacts import Artifact

    return Artifact.get(key)


def _redis_values(client) -> dict:
    """Every key of one db by type and value (a DUMP's bytes depend on insertion order)."""
    out = {}
    for key in client.keys("*"):
        kind = client.type(key)
        value = {b"string": lambda k: client.get(k),
                 b"list": lambda k: client.lrange(k, 0, -1),
                 b"set": lambda k: sorted(client.smembers(k)),
                 b"zset": lambda k: client.zrange(k, 0, -1, withscores=True),
                 b"hash": lambda k: sorted(client.hgetall(k).items()),
                 }.get(kind, lambda k: client.dump(k))(key)
        out[key] = (kind, value, client.pttl(key) > 0)
    return out


def _damage_biggest_pack(repo: Path) -> None:
    pack = max((p for p in (repo / "data").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))


def test_in_place_recovery_then_undo_puts_the_live_tree_back(prefect_harness, tmp_path, names):
    from flows.recovery import recover_files
    from flows.undo import undo_recovery

    live = make_tree(tmp_path / "srv" / "app", files=12)
    src = save_files_source(f"app-{names}", [live])
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    backup_one("full", src, primary=tgt)
    backed_up = tree_listing(live)
    (live / "d0" / "e0" / "f0.bin").write_bytes(b"changed since the backup")
    (live / "written-after.txt").write_text("the operator may want this back")
    before = tree_listing(live)

    refused = recover_files(src, from_target=tgt, return_state=True)
    assert refused.is_failed() and "not empty" in refused.message
    assert tree_listing(live) == before

    report = recover_files(src, from_target=tgt, replace=True, fresh_backup=False)
    assert tree_listing(live) == backed_up  # in place: the path itself, not nested below it
    kept = report["results"][0]["kept"]
    assert kept and tree_listing(Path(kept)) == before
    key = report["artifact_key"]
    pm = _artifact(key).data
    assert "## Undo" in pm and f"post_mortem={key}" in pm and kept in pm

    undone = undo_recovery(key)
    assert tree_listing(live) == before
    assert undone["put_back"] and not undone["restored"]


def test_a_damaged_pack_fails_the_recovery_and_leaves_the_target(prefect_harness, tmp_path,
                                                                 names):
    from prefect.variables import Variable

    from flows.recovery import recover_files
    from tasks.runbook import RUNBOOK_VARIABLE

    live = make_tree(tmp_path / "live", files=10)
    src = save_files_source(f"dmg-{names}", [live])
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    backup_one("full", src, primary=tgt)
    (live / "new-since.txt").write_text("intact on disk before the recovery")
    before = tree_listing(live)
    _damage_biggest_pack(tmp_path / "repo")
    service = tmp_path / "service"
    Variable.set(RUNBOOK_VARIABLE, {src: {"stop_service": f"touch {service}.stopped",
                                          "start_service": f"touch {service}.started"}},
                 overwrite=True)
    try:
        state = recover_files(src, from_target=tgt, replace=True, return_state=True)
    finally:
        Variable.set(RUNBOOK_VARIABLE, {}, overwrite=True)
    assert state.is_failed()
    assert tree_listing(live) == before
    # stopped, nothing overwritten: started again
    assert Path(f"{service}.stopped").exists() and Path(f"{service}.started").exists()
    assert sorted(p.name for p in live.parent.iterdir()
                  if not p.name.startswith("service")) == ["live", "repo"]


def test_a_target_of_the_wrong_kind_stops_before_the_service_is_stopped(
        prefect_harness, tmp_path, names):
    from pydantic import SecretStr

    from blocks import RedisSource
    from flows.recovery import recover_database

    marker = tmp_path / "service-stopped"
    RedisSource(source_name=f"cache-{names}", port=1, password=SecretStr("x")
                ).save(f"cache-{names}")
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    state = recover_database(f"redis/cache-{names}", target=str(tmp_path / "a-directory"),
                             from_target=tgt, replace=True, snapshot="00000000",
                             stop_service=f"touch {marker}", return_state=True)
    assert state.is_failed()
    assert not marker.exists()


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server not installed")
def test_redis_recovery_keeps_a_safety_snapshot_and_undo_restores_it(prefect_harness, tmp_path,
                                                                     names):
    from pydantic import SecretStr

    from blocks import RedisSource
    from flows.limits import ensure_limits
    from flows.recovery import recover_database
    from flows.undo import undo_recovery
    from tests.support.redis_server import PASSWORD, fill, redis_server

    with redis_server(tmp_path / "redis", password=PASSWORD) as proc:
        fill(proc.client, n=80)
        name = f"cache-{names}"
        RedisSource(source_name=name, port=proc.port, username="default",
                    password=SecretStr(PASSWORD)).save(name)
        ensure_limits([name])
        tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
        c0 = proc.client(0)
        c0.set("session:revoked", "attacker-token")  # in the backup, deleted since
        backup_one("snapshot", f"redis/{name}", primary=tgt)
        c0.delete("session:revoked", "str:1")
        c0.set("written-after-the-backup", "keep me")
        before = _redis_values(c0)

        report = recover_database(f"redis/{name}", from_target=tgt, replace=True,
                                  fresh_backup=False)  # in place: the block's server
        assert c0.get("session:revoked") == b"attacker-token"
        assert report["results"][0]["safety_snapshot"]

        undo_recovery(report["artifact_key"])
        assert _redis_values(c0) == before


def test_a_transient_storage_error_mid_restore_is_retried_cleanly(prefect_harness, tmp_path,
                                                                  names, monkeypatch):
    """The restore task's retry starts over in a fresh staging directory: it never trips
    over the first attempt's partial copy, and the target changes once, checked."""
    from flows.recovery import recover_files
    from strongroom.errors import StorageError
    from strongroom.storage.local import LocalBackend

    live = make_tree(tmp_path / "live", files=30)
    src = save_files_source(f"flaky-{names}", [live])
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    backup_one("full", src, primary=tgt)
    backed_up = tree_listing(live)
    (live / "since.txt").write_text("newer than the backup")
    before = tree_listing(live)

    real = LocalBackend.get_range
    calls = {"n": 0}

    def flaky(self, key, offset, length):
        if key.startswith("data/"):
            calls["n"] += 1
            if calls["n"] == 5:
                raise StorageError(f"reading {key} failed: timed out")
        return real(self, key, offset, length)

    monkeypatch.setattr(LocalBackend, "get_range", flaky)
    report = recover_files(src, from_target=tgt, replace=True, fresh_backup=False)
    assert calls["n"] > 5  # it failed once, mid-restore, and went on
    assert tree_listing(live) == backed_up
    assert tree_listing(Path(report["results"][0]["kept"])) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".live")) == []
