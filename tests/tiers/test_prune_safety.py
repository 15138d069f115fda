"""Prune racing backups never loses data a snapshot uses; kill -9 mid-prune leaves no damage."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from strongroom.errors import LockedError
from strongroom.policy.retention import RetentionPolicy
from strongroom.repository.forget import forget, plan_for
from strongroom.repository.presence import stored_packs
from strongroom.repository.prune import prune
from strongroom.repository.verify import verify
from tests.tiers.helpers import backup, new_repo, open_repo, random_files, read_all
from tests.tiers.helpers import open_repo as _open

ROOT = Path(__file__).resolve().parents[2]


def _retrying(fn, *args, **kwargs):
    """Backups meet prune's short exclusive sweep now and then: retry like a scheduler would."""
    for _ in range(200):
        try:
            return fn(*args, **kwargs)
        except LockedError:
            time.sleep(random.uniform(0.01, 0.1))
    raise AssertionError("never got the lock")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    if request.param == "local":
        return str(tmp_path / "r"), {}
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/r", {"endpoint": request.getfixturevalue("moto_endpoint")}


def test_prune_during_concurrent_backups_never_removes_used_data(target) -> None:
    url, opts = target
    new_repo(url, options=opts)
    rounds = 30 if not opts else 10

    def open_repo(u: str):
        return _open(u, options=opts)

    done = threading.Event()
    kept: list[tuple[str, dict[str, bytes]]] = []
    failures: list[str] = []
    stats = {"prunes": 0, "deleted": 0, "rescued": 0, "repacked": 0}

    def backups() -> None:
        try:
            for i in range(rounds):
                files = random_files(1000 + i, count=4, size=60_000)
                junk = {f"junk/{k}": v for k, v in random_files(-i, count=4, size=60_000).items()}
                _retrying(lambda f={**files, **junk}: backup(open_repo(url), f, source="churn"))
                # The "keep" source re-uses the previous churn data, which prune is busy
                # marking and deleting: dedup against doomed packs is the dangerous case.
                prev = random_files(1000 + max(0, i - 1), count=4, size=60_000)
                snap = _retrying(lambda f=prev: backup(open_repo(url), f, source="keep"))
                fresh = open_repo(url)
                if read_all(fresh, fresh.find_snapshot(snap.id)) != prev:
                    failures.append(f"round {i}: snapshot {snap.short_id} restored wrong")
                kept.append((snap.id, prev))
                time.sleep(random.uniform(0, 0.05))  # let prune phases fall between rounds
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(f"backup thread: {exc!r}")
        finally:
            done.set()

    def pruner() -> None:
        rng = random.Random(5)
        try:
            # At least three prunes whatever the timing: the backups may finish first.
            while not done.is_set() or stats["prunes"] < 3:
                repo = open_repo(url)
                forget(repo, plan_for(repo, RetentionPolicy(keep_last=1), source_name="churn"))
                report = prune(repo, grace=timedelta(0), repack_threshold=0.3, lock_wait_s=30,
                               on_delete=lambda _p: time.sleep(rng.uniform(0, 0.01)))
                stats["prunes"] += 1
                stats["deleted"] += report.deleted_packs
                stats["rescued"] += len(report.rescued)
                stats["repacked"] += report.repacked_packs
                time.sleep(rng.uniform(0, 0.05))
        except Exception as exc:  # noqa: BLE001
            failures.append(f"prune thread: {exc!r}")

    threads = [threading.Thread(target=backups), threading.Thread(target=pruner)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not failures, failures
    print("concurrency stats", stats)  # deletions/rescues during the race depend on timing
    assert stats["prunes"] >= 3, stats
    # Every churn snapshot but the last is forgotten: its junk must be deleted, during the
    # race or now (which of the two depends on timing, that it happens does not).
    repo = open_repo(url)
    forget(repo, plan_for(repo, RetentionPolicy(keep_last=1), source_name="churn"))
    final = prune(repo, grace=timedelta(0), repack_threshold=0.3)
    assert final.swept or not final.marked_packs, final
    assert stats["deleted"] + final.deleted_packs > 0, (stats, final)
    fresh = open_repo(url)
    for snap_id, files in kept:
        assert read_all(fresh, fresh.find_snapshot(snap_id)) == files
    check = verify(fresh, read_data=True)
    assert check.ok, check.errors  # unused blobs may remain in packs under the threshold


def _history(url: str) -> list[tuple[str, dict[str, bytes]]]:
    repo = new_repo(url, pack_target=128 * 1024)
    out = []
    for i in range(6):
        files = random_files(2000 + i, count=5, size=50_000)
        out.append((backup(repo, files).id, files))
    # Share some data between kept snapshots so repack has partly used packs to work on.
    mixed = {**random_files(2000, count=2, size=50_000), **random_files(2005, count=5,
                                                                           size=50_000)}
    out.append((backup(repo, mixed).id, mixed))
    forget(repo, plan_for(repo, RetentionPolicy(keep_last=2)))
    return out[-2:]


@pytest.mark.parametrize("kill_at", [1, 3, "timer"])
def test_kill_9_during_prune_leaves_a_clean_repository(tmp_path: Path, kill_at) -> None:
    url = str(tmp_path / "r")
    keep = _history(url)
    packs_before = len(stored_packs(open_repo(url).backend))
    args = [sys.executable, "-m", "tests.tiers.prune_child", url,
            "-1" if kill_at == "timer" else str(kill_at), "0.02"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if kill_at == "timer":
        time.sleep(random.uniform(0.3, 0.9))
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    if kill_at != "timer":
        assert proc.returncode == -signal.SIGKILL
    repo = open_repo(url)
    check = verify(repo, read_data=True)
    assert check.ok, check.errors  # leftovers may be garbage, never damage
    for snap_id, files in keep:
        assert read_all(repo, repo.find_snapshot(snap_id)) == files
    # The next prune resumes: clears the dead process's lock, finishes, leaves no garbage.
    report = prune(open_repo(url), grace=timedelta(0), lock_wait_s=5)
    # the timer may fire after the child's prune finished: then there is nothing left to do
    assert report.swept or (report.marked_packs == 0 and not report.pending), report
    repo = open_repo(url)
    check = verify(repo, read_data=True)
    assert check.ok and not check.garbage, check.as_dict()
    assert len(stored_packs(repo.backend)) < packs_before
    for snap_id, files in keep:
        assert read_all(repo, repo.find_snapshot(snap_id)) == files
