"""Locks on a real fleet: clocks ten minutes apart (tests/support/skewed_clock shifts one
process's wall clock; the storage keeps the true one), a backup paused past its lease, a
suspend, a dead lock of a host whose clock ran ahead, cloned hosts sharing a name. In every
case either the operation fails loudly with nothing written, or the repository verifies and
every snapshot reported saved restores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from strongroom.repository.verify import verify
from tests.concurrency.held_backup import all_files, reused_files
from tests.tiers.helpers import PASSWORD, backup, new_repo, open_repo, read_all

ROOT = Path(__file__).resolve().parents[2]
SKEWED = ROOT / "tests" / "support" / "skewed_clock"


def _env(opts: dict[str, Any], skew: float = 0, **extra: str) -> dict[str, str]:
    """The environment of a process on another host: its wall clock ``skew`` seconds off."""
    env = dict(os.environ, STRONGROOM_PASSWORD=PASSWORD, **extra)
    if opts.get("endpoint"):
        env["AWS_ENDPOINT_URL"] = opts["endpoint"]
    if skew:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SKEWED), str(ROOT),
                                                          env.get("PYTHONPATH")]))
        env["STRONGROOM_TEST_CLOCK_SKEW"] = str(skew)
    return env


def _forgotten_history(url: str, opts: dict[str, Any]) -> str:
    """A repository with one kept snapshot and the packs of a forgotten one (which the held
    backup deduplicates against); returns the kept snapshot's id."""
    repo = new_repo(url, options=opts, pack_target=128 * 1024)
    kept = backup(repo, {"keep/a.bin": os.urandom(150_000)}, source="keep")
    gone = backup(repo, reused_files(), source="old")
    repo.remove_snapshot(gone)
    return kept.id


def _start_backup(url: str, env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.concurrency.held_backup", url],
                            cwd=ROOT, env=env, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "stored", (line, proc.stderr.read() if proc.stderr else "")
    return proc


def _finish_backup(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate("go\n", timeout=300)
    return proc.returncode, out + err


def _cli(url: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``strongroom ARGS --repo URL`` as the host ``env`` describes."""
    return subprocess.run(["strongroom", *args, "--repo", url], env=env, capture_output=True,
                          text=True, timeout=300)


def _prune(url: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _cli(url, env, "prune", "--grace", "0", "--lock-wait", "3")


def _whole(url: str, opts: dict[str, Any], kept: str, code: int, said: str) -> None:
    """Either the backup failed loudly and saved nothing, or it restores; the rest verifies."""
    repo = open_repo(url, options=opts)
    names = {s.source_name: s for s in repo.list_snapshots()}
    if code == 0:
        assert "saved" in said
        assert read_all(repo, names["victim"]) == all_files()
    else:
        assert "error:" in said and "victim" not in names, said
    check = verify(repo, read_data=True)
    assert check.ok, check.errors
    assert repo.find_snapshot(kept).source_name == "keep"


@pytest.mark.parametrize("prune_skew,backup_skew", [(600, 0), (-600, 0), (0, -600), (0, 600)],
                         ids=["prune-ahead", "prune-behind", "backup-behind", "backup-ahead"])
def test_a_live_backup_keeps_its_lock_whatever_the_clocks(
        target, prune_skew: float, backup_skew: float) -> None:
    url, opts = target
    kept = _forgotten_history(url, opts)
    wide = {"STRONGROOM_CLOCK_TOLERANCE": "3600"}  # past the refusal: the lock rules decide
    proc = _start_backup(url, _env(opts, backup_skew, **wide))
    try:
        pruned = _prune(url, _env(opts, prune_skew, **wide))
        assert pruned.returncode == 17, pruned.stdout + pruned.stderr  # locked: deferred
        assert "sweep deferred" in pruned.stderr and "backup victim" in pruned.stderr
    finally:
        code, said = _finish_backup(proc)
    assert code == 0, said
    _whole(url, opts, kept, code, said)


def test_destructive_work_refuses_on_a_skewed_clock(target) -> None:
    url, opts = target
    kept = _forgotten_history(url, opts)
    pruned = _prune(url, _env(opts, 600))
    assert pruned.returncode == 19, pruned.stderr
    assert "clock" in pruned.stderr and "ahead" in pruned.stderr
    backup(open_repo(url, options=opts), {"keep/a.bin": b"newer"}, source="keep")
    forgot = _cli(url, _env(opts, -600), "forget", "--keep-last", "1")
    assert forgot.returncode == 19, forgot.stderr
    assert len(open_repo(url, options=opts).list_snapshots()) == 2
    listed = _cli(url, _env(opts, 600), "snapshots")
    assert listed.returncode == 0 and "ahead of the storage" in listed.stderr
    # a backup on a host ten minutes behind writes no snapshot dated by that clock
    proc = _start_backup(url, _env(opts, -600))
    code, said = _finish_backup(proc)
    assert code == 19, said
    _whole(url, opts, kept, code, said)


def test_a_backup_paused_past_its_lease_saves_nothing(target) -> None:
    url, opts = target
    kept = _forgotten_history(url, opts)
    proc = _start_backup(url, _env(opts, STRONGROOM_LOCK_LEASE="3"))
    proc.send_signal(signal.SIGSTOP)  # a pause: SIGSTOP, a VM frozen, a long GC
    try:
        time.sleep(4.5)  # past the lease by the storage's clock
        pruned = _prune(url, _env(opts))
        assert pruned.returncode == 0, pruned.stderr
    finally:
        proc.send_signal(signal.SIGCONT)
    code, said = _finish_backup(proc)
    assert code == 17 and "lost the repository lock" in said, said
    _whole(url, opts, kept, code, said)


def test_a_sweep_stops_after_a_suspend_longer_than_its_lease(target, monkeypatch) -> None:
    """A suspend stops CLOCK_MONOTONIC but not CLOCK_BOOTTIME: the holder's lease clock jumps
    by the suspended time, and the sweep stops before its first deletion."""
    from datetime import timedelta

    from strongroom.errors import LockedError
    from strongroom.repository import locks, prune

    url, opts = target
    kept = _forgotten_history(url, opts)
    repo = open_repo(url, options=opts)
    suspended = [0.0]
    real = locks.boottime
    monkeypatch.setattr(locks, "boottime", lambda: real() + suspended[0])

    def suspend(_pid: str) -> None:
        suspended[0] = 2 * locks.LEASE  # the machine slept; the lease ran out meanwhile

    before = {k for k, _ in repo.backend.list("data/")}
    with pytest.raises(LockedError, match="lease .* ran out"):
        prune.prune(repo, grace=timedelta(0), lock_wait_s=5, on_delete=suspend)
    assert {k for k, _ in repo.backend.list("data/")} == before  # nothing deleted
    assert read_all(repo, repo.find_snapshot(kept)) and verify(repo, read_data=True).ok


def test_a_dead_lock_of_a_host_whose_clock_ran_ahead_blocks_only_for_its_lease(target) -> None:
    """Its own timestamp is an hour ahead; the storage dates its last write, so it stops
    blocking one lease after that write."""
    from strongroom.repository import locks

    url, opts = target
    repo = new_repo(url, options=opts)
    info = {"exclusive": True, "host": "fast-clock", "host_id": "f" * 16, "boot_id": "x",
            "pid": 4242, "pidns": "", "purpose": "prune sweep", "time": time.time() + 3600,
            "lease": 2.0}
    repo.backend.put("locks/" + "a" * 32, json.dumps(info).encode())
    with pytest.raises(locks.LockedError):
        locks.RepositoryLock.acquire(repo.backend, exclusive=False)
    time.sleep(3.5)  # the lease, by the storage's clock, plus whole-second dates
    started = time.monotonic()
    locks.RepositoryLock.acquire(repo.backend, exclusive=False, wait_s=30).release()
    assert time.monotonic() - started < 5


def test_a_clone_with_the_same_host_name_is_not_judged_dead(target) -> None:
    """Cloned VMs share a host name and a pid namespace id: a live lock of the clone, whose
    pid does not exist here, still blocks until its lease runs out."""
    import socket

    from strongroom.errors import LockedError
    from strongroom.repository import locks

    url, opts = target
    repo = new_repo(url, options=opts)
    info = {"exclusive": True, "host": socket.gethostname(), "host_id": "c" * 16,
            "boot_id": "another-boot", "pid": 2 ** 22 - 7, "pidns": locks._pid_namespace(),
            "purpose": "prune sweep", "time": time.time(), "lease": 300}
    repo.backend.put("locks/" + "b" * 32, json.dumps(info).encode())
    with pytest.raises(LockedError, match="prune sweep"):
        locks.RepositoryLock.acquire(repo.backend, exclusive=False)
    assert repo.backend.exists("locks/" + "b" * 32)


def test_locks_and_snapshots_carry_a_host_id(target, tmp_path: Path, monkeypatch) -> None:
    from strongroom import hostid
    from strongroom.repository import locks

    monkeypatch.setenv("STRONGROOM_STATE_DIR", str(tmp_path / "state"))
    hostid.host_id.cache_clear()
    try:
        url, opts = target
        repo = new_repo(url, options=opts)
        lock = locks.RepositoryLock.acquire(repo.backend, exclusive=False)
        [(_key, info)] = locks.read_locks(repo.backend)
        lock.release()
        snap = backup(repo, {"a": b"x"})
        kept = (tmp_path / "state" / "host-id").read_text().strip()
        assert info["host_id"] == kept == open_repo(url, options=opts).find_snapshot(
            snap.id).host_id
        assert info["boot_id"] == hostid.boot_id() != ""
    finally:
        hostid.host_id.cache_clear()


@pytest.mark.parametrize("skew", [600, -600], ids=["backup-ahead", "backup-behind"])
def test_a_backup_on_a_skewed_host_waits_for_a_live_sweep(target, tmp_path: Path,
                                                         skew: float) -> None:
    """The sweep's lock was renewed seconds ago by the storage's clock: a backup whose clock
    is ten minutes off waits for it and never deletes it."""
    from strongroom.repository import locks

    url, opts = target
    new_repo(url, options=opts)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(1000))
    sweep = locks.RepositoryLock.acquire(open_repo(url, options=opts).backend, exclusive=True,
                                         purpose="prune sweep")
    try:
        proc = _cli(url, _env(opts, skew, STRONGROOM_LOCK_WAIT="3",
                              STRONGROOM_CLOCK_TOLERANCE="3600"), "backup", "files", str(src))
        assert proc.returncode == 17, proc.stdout + proc.stderr
        assert "exclusively by prune sweep" in proc.stderr
        sweep.ensure_held()
        assert sweep.backend.exists(sweep.key)
    finally:
        sweep.release()
    assert not open_repo(url, options=opts).list_snapshots()


def test_an_s3_server_without_a_date_header_is_probed(moto_endpoint: str, s3_bucket: str,
                                                      monkeypatch) -> None:
    """A server or proxy that sends no ``Date``: the clock comes from a probe object's
    ``LastModified``, never from this host's clock, and the probe is removed."""
    from strongroom.storage.s3 import S3Backend

    backend = S3Backend(f"s3://{s3_bucket}/r", endpoint=moto_endpoint)
    listing = backend.client.list_objects_v2

    def no_date(**kw):
        reply = listing(**kw)
        reply["ResponseMetadata"]["HTTPHeaders"].pop("date", None)
        return reply

    monkeypatch.setattr(backend.client, "list_objects_v2", no_date)
    true_now = time.time()
    monkeypatch.setattr(time, "time", lambda: 0.0)  # this host's clock is no guide
    assert abs(backend.clock() - true_now) < 5
    assert not list(backend.list("locks/"))
