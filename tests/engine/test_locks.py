"""A damaged lock file (valid JSON, wrong shape) is ignored like an unreadable one; it must
not make every backup fail with an unexpected exception."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


@pytest.mark.parametrize("content", ["[]", '"lock"', "{}", '{"time": "x"}', '{"time": null}',
                                     "", "{"])
def test_damaged_lock_file_does_not_block_backups(cli, repo_env, tmp_path: Path,
                                                  content: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    cli("init")
    locks = Path(repo_env["STRONGROOM_REPOSITORY"]) / "locks"
    locks.mkdir(exist_ok=True)
    (locks / ("0" * 32)).write_text(content)
    proc = cli("backup", "files", str(src), check=False)
    assert proc.returncode == 0, proc.stderr


# ---- leases and dead holders ------------------------------------------------------------

def _write_lock(backend, **info) -> str:
    import json
    import secrets

    key = f"locks/{secrets.token_hex(16)}"
    backend.put(key, json.dumps(info).encode())
    return key


def _age(backend, key: str, seconds: float) -> None:
    """Date a local lock file's last write ``seconds`` back (its age by the storage's clock)."""
    path = backend.root / key
    then = path.stat().st_mtime - seconds
    os.utime(path, (then, then))


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no such process (pids are not reused this fast)


def test_exclusive_lock_of_a_dead_local_process_blocks_nobody(tmp_path: Path) -> None:
    import socket
    import time

    from strongroom.hostid import boot_id
    from strongroom.repository import locks
    from strongroom.storage.local import LocalBackend

    backend = LocalBackend(tmp_path / "r")
    key = _write_lock(backend, exclusive=True, host=socket.gethostname(), pid=_dead_pid(),
                      pidns=locks._pid_namespace(), boot_id=boot_id(), purpose="prune sweep",
                      time=time.time(), lease=300)
    started = time.monotonic()
    lock = locks.RepositoryLock.acquire(backend, exclusive=False, wait_s=600)
    assert time.monotonic() - started < 5
    assert not backend.exists(key)  # tidied away
    lock.release()


def test_lock_of_another_host_blocks_until_its_lease_runs_out(tmp_path: Path) -> None:
    import time

    from strongroom.errors import LockedError
    from strongroom.repository import locks
    from strongroom.storage.local import LocalBackend

    backend = LocalBackend(tmp_path / "r")
    key = _write_lock(backend, exclusive=True, host="elsewhere", pid=1, purpose="prune sweep",
                      time=time.time(), lease=300)
    with pytest.raises(LockedError, match="exclusively by prune sweep on elsewhere"):
        locks.RepositoryLock.acquire(backend, exclusive=False)
    backend.delete(key)
    key = _write_lock(backend, exclusive=True, host="elsewhere", pid=1, purpose="prune sweep",
                      time=time.time(), lease=300)
    _age(backend, key, 301)  # last renewed 301 s ago by the storage's clock
    locks.RepositoryLock.acquire(backend, exclusive=True).release()
    # a lock of an older version (no lease) is stale after STALE_AFTER
    key = _write_lock(backend, exclusive=True, host="elsewhere", pid=1, time=time.time())
    _age(backend, key, 600)
    with pytest.raises(LockedError):
        locks.RepositoryLock.acquire(backend, exclusive=False)


def test_heartbeat_renews_the_lease_while_held(tmp_path: Path, monkeypatch) -> None:
    import json
    import time

    from strongroom.errors import LockedError
    from strongroom.repository import locks
    from strongroom.storage.local import LocalBackend

    monkeypatch.setattr(locks, "LEASE", 5.0)  # a heartbeat every second
    backend = LocalBackend(tmp_path / "r")
    lock = locks.RepositoryLock.acquire(backend, exclusive=True, purpose="prune sweep")
    seen = [json.loads(backend.get(lock.key))["time"]]
    deadline = time.monotonic() + 60  # generous: a loaded machine delays the thread
    while len(seen) < 3 and time.monotonic() < deadline:  # two heartbeats renewed it
        time.sleep(0.1)
        now = json.loads(backend.get(lock.key))["time"]
        if now != seen[-1]:
            seen.append(now)
    assert len(seen) == 3 and seen == sorted(seen), seen
    [(_key, info)] = locks.read_locks(backend)
    assert info["lease"] == 5.0 and not locks.is_gone(info)
    lock.ensure_held()
    with pytest.raises(LockedError):  # another host's taker still sees it held
        locks.RepositoryLock.acquire(backend, exclusive=False)
    lock.release()
    assert not backend.exists(lock.key)
    with pytest.raises(LockedError, match="lost the repository lock"):
        lock.ensure_held()


def test_a_lock_of_another_pid_namespace_is_not_judged_by_pid(tmp_path: Path) -> None:
    import socket
    import time

    from strongroom.hostid import boot_id
    from strongroom.repository import locks

    info = {"exclusive": True, "host": socket.gethostname(), "pid": _dead_pid(),
            "pidns": "pid:[1]", "boot_id": boot_id(), "time": time.time(), "lease": 300,
            "age": 0.0}
    assert not locks.is_gone(info)  # same host name, another container: wait for the lease


def test_a_lock_never_released_by_its_holder_is_deleted_at_exit(tmp_path: Path) -> None:
    """Ctrl-C between taking a lock and the ``try`` that releases it: no lock file stays."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from strongroom.repository.locks import RepositoryLock\n"
            "from strongroom.storage.local import LocalBackend\n"
            "RepositoryLock.acquire(LocalBackend(sys.argv[1]), exclusive=True)\n"
            "raise KeyboardInterrupt\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr
    assert (tmp_path / "r" / "locks").is_dir()
    assert not list((tmp_path / "r" / "locks").iterdir())


def test_a_heartbeat_under_way_never_writes_the_lock_again_after_release(
        tmp_path: Path, monkeypatch) -> None:
    import threading
    import time

    from strongroom.repository import locks
    from strongroom.storage.local import LocalBackend

    in_beat = threading.Event()

    class SlowStorage(LocalBackend):  # a renewal that takes a while (a slow object store)
        def put(self, key: str, data: bytes | memoryview) -> None:
            if threading.current_thread().name == "lock-lease":
                in_beat.set()
                time.sleep(0.3)
            super().put(key, data)

    monkeypatch.setattr(locks, "LEASE", 0.5)  # a heartbeat every 0.1 s
    backend = SlowStorage(tmp_path / "r")
    lock = locks.RepositoryLock.acquire(backend, exclusive=True)
    assert in_beat.wait(30)
    lock.release()  # while the renewal sleeps before writing
    time.sleep(0.5)
    assert not list(backend.list("locks/"))


def test_a_forked_child_exiting_never_deletes_its_parents_lock(tmp_path: Path) -> None:
    """A backup's forked reader workers inherit the registry of held locks: not the locks."""
    from strongroom.repository import locks
    from strongroom.storage.local import LocalBackend

    backend = LocalBackend(tmp_path / "r")
    lock = locks.RepositoryLock.acquire(backend, exclusive=False)
    try:
        pid = os.fork()
        if pid == 0:  # what the child's exit hook would release: nothing
            os._exit(0 if not locks._HELD else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0  # the child held no lock
        assert backend.exists(lock.key)
    finally:
        lock.release()
    assert not backend.exists(lock.key)


def test_a_late_answer_never_writes_a_removed_lock_back(tmp_path: Path, monkeypatch) -> None:
    """The renewal's existence check answers late (a slow request, a freeze mid-request);
    meanwhile another host removed the lock. The stale 'it exists' must not resurrect it."""
    import threading
    import time

    from strongroom.errors import LockedError
    from strongroom.repository import locks
    from strongroom.storage.local import LocalBackend

    answered = threading.Event()

    class LateAnswers(LocalBackend):
        def exists(self, key: str) -> bool:
            there = super().exists(key)
            if key.startswith("locks/") and threading.current_thread().name == "lock-lease":
                self.delete(key)  # another host judged it dead while the answer travelled
                time.sleep(1.5)  # past the lease's 80%
                answered.set()
            return there

    monkeypatch.setattr(locks, "LEASE", 1.0)
    backend = LateAnswers(tmp_path / "r")
    lock = locks.RepositoryLock.acquire(backend, exclusive=False)
    try:
        assert answered.wait(30)
        time.sleep(0.3)
        assert not backend.exists(lock.key)  # not written back
        with pytest.raises(LockedError, match="lost the repository lock"):
            lock.ensure_held()
    finally:
        lock.release()


@pytest.mark.parametrize("meanwhile", ["forget", "prune"])
def test_a_snapshot_landing_after_its_lock_was_lost(tmp_path: Path, monkeypatch,
                                                    meanwhile: str) -> None:
    """A pause right after the manifest's write, past the lease. A forget meanwhile counts the
    new snapshot as the newest and forgets the earlier one: the new one, intact, stands. A
    prune meanwhile deletes a pack it names: it is withdrawn and the backup fails."""
    import io

    from strongroom.policy.retention import RetentionPolicy
    from strongroom.repository import Repository, locks
    from strongroom.repository.forget import forget, plan_for
    from strongroom.repository.format import pack_key
    from strongroom.repository.presence import PacksVanished
    from tests.tiers.helpers import backup, new_repo, read_all

    repo = new_repo(str(tmp_path / "r"))
    shared = b"shared data " * 5000
    kept = backup(repo, {"a": shared})
    other = Repository.open(repo.url, password="tiers test password")  # another host
    paused = [0.0]
    real = locks.boottime
    monkeypatch.setattr(locks, "boottime", lambda: real() + paused[0])
    save = Repository.save_snapshot

    def save_then_pause(self, snap):
        saved = save(self, snap)
        if self is repo:
            paused[0] = 10 * locks.LEASE  # frozen right after the write
            if meanwhile == "forget":
                forget(other, plan_for(other, RetentionPolicy(keep_last=1)))
            else:  # a prune that listed the snapshots before this one landed
                loc = other.index.get(next(iter(other.index.blobs)))
                other.backend.delete(pack_key(loc.pack))
        return saved

    monkeypatch.setattr(Repository, "save_snapshot", save_then_pause)
    with repo.writer(source_name="app", source_kind="files") as w:
        w.add_stream("a", io.BytesIO(shared))
        w.add_stream("b", io.BytesIO(b"later"))
        if meanwhile == "prune":
            with pytest.raises(PacksVanished, match="withdrawn, nothing saved"):
                w.commit()
        else:
            made = w.commit()
    monkeypatch.undo()
    left = Repository.open(repo.url, password="tiers test password").list_snapshots()
    if meanwhile == "prune":
        assert [s.id for s in left] == [kept.id]
    else:
        assert [s.id for s in left] == [made.id]
        assert read_all(repo, made) == {"a": shared, "b": b"later"}
