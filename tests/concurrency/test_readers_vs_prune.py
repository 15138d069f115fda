"""Readers (restore, verify, backup) racing forget + prune never fail and never report damage.

Each run builds a small history, then lets a pruner forget and prune (grace 0, repacking, so
index files are rewritten and packs deleted under the readers) while readers restore kept
snapshots, verify the repository and back up. Runs: STRONGROOM_RACE_RUNS (FORMAT.md,
"Concurrency", says why this holds).
"""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from strongroom.errors import LockedError
from strongroom.policy.retention import RetentionPolicy
from strongroom.repository.forget import forget, plan_for
from strongroom.repository.prune import prune
from strongroom.repository.verify import verify
from tests.concurrency.conftest import RACE_RUNS
from tests.tiers.helpers import backup, new_repo, open_repo, random_files, read_all

PRUNES = 4  # prunes (each sweeping) per run


def _race(url: str, opts: dict[str, Any], seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    repo = new_repo(url, options=opts, pack_target=96 * 1024)
    kept: list[tuple[str, dict[str, bytes]]] = []
    for i in range(3):
        files = random_files(seed * 100 + i, count=4, size=40_000)
        kept.append((backup(repo, files, source="keep").id, files))
        backup(repo, random_files(-seed * 100 - i, count=4, size=40_000), source="churn")
    # a kept snapshot sharing data with churn ones: its packs get repacked under the readers
    mixed = {**random_files(-seed * 100, count=2, size=40_000),
             **random_files(seed * 100 + 7, count=2, size=40_000)}
    kept.append((backup(repo, mixed, source="keep").id, mixed))
    stop = threading.Event()
    failures: list[str] = []
    stats = {"prunes": 0, "deleted": 0, "rewritten": 0, "restores": 0, "verifies": 0,
             "backups": 0}

    def pruner() -> None:
        deadline = time.monotonic() + 240  # a loaded machine is slow, never stuck
        try:
            while stats["prunes"] < PRUNES and time.monotonic() < deadline:
                r = open_repo(url, options=opts)
                forget(r, plan_for(r, RetentionPolicy(keep_last=1), source_name="churn"))
                report = prune(r, grace=timedelta(0), repack_threshold=0.1, lock_wait_s=30)
                stats["prunes"] += report.swept
                stats["deleted"] += report.deleted_packs
                stats["rewritten"] += report.index_files_rewritten
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(f"prune: {exc!r}")
        finally:
            stop.set()

    def restorer() -> None:
        r = open_repo(url, options=opts)  # one long-lived repository: its index goes stale
        while not stop.is_set():
            snap_id, files = rng.choice(kept)
            try:
                if read_all(r, r.find_snapshot(snap_id)) != files:
                    failures.append(f"restore of {snap_id[:8]} came back different")
            except Exception as exc:  # noqa: BLE001
                failures.append(f"restore of {snap_id[:8]}: {exc!r}")
            stats["restores"] += 1

    def verifier() -> None:
        while not stop.is_set():
            try:
                report = verify(open_repo(url, options=opts))
                failures.extend(f"verify: {e}" for e in report.errors)
            except Exception as exc:  # noqa: BLE001
                failures.append(f"verify: {exc!r}")
            stats["verifies"] += 1

    def backups() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            files = random_files(-seed * 100 - 50 - i, count=4, size=40_000)
            try:
                backup(open_repo(url, options=opts), files, source="churn")
                stats["backups"] += 1
            except LockedError:
                pass  # the sweep's exclusive lock: a scheduler retries later
            except Exception as exc:  # noqa: BLE001
                failures.append(f"backup: {exc!r}")
            time.sleep(rng.uniform(0.05, 0.3))  # room for the sweep's exclusive lock

    threads = [threading.Thread(target=f) for f in (pruner, restorer, verifier, backups)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not failures, failures[:5]
    final = open_repo(url, options=opts)
    for snap_id, files in kept:
        assert read_all(final, final.find_snapshot(snap_id)) == files
    check = verify(final, read_data=True)
    assert check.ok, check.errors
    return stats


@pytest.mark.parametrize("run", range(RACE_RUNS))
def test_restore_verify_and_backup_racing_forget_and_prune(target, run: int) -> None:
    url, opts = target
    stats = _race(url, opts, seed=run + 1)
    print("race stats", stats)
    assert stats["prunes"] == PRUNES, stats  # every prune swept: deletions under the readers
    assert stats["deleted"] > 0 and stats["restores"] >= 1 and stats["verifies"] >= 1, stats
