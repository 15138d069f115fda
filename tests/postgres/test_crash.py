"""kill -9 the primary under pgbench load with the WAL receiver running, wipe its data
directory, restore to latest from the repository and count committed transactions lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from strongroom.sources.postgres.cluster import kill_hard
from strongroom.sources.postgres.pgbin import binary
from strongroom.sources.postgres.physical import backup_full
from strongroom.sources.postgres.restore import restore_physical
from tests.postgres.helpers import receiver, stop_restored
from tests.support import pg_cluster as pgc


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["async", "sync"])
def test_kill9_under_load_restore_latest(pg_root: Path, record_property: object,
                                         mode: str) -> None:
    """async: the receiver streams as fast as it can (goal: nothing older than 1 s lost);
    sync: synchronous_standby_names = 'pg_receivewal', commits wait for the receiver's flush
    (no acknowledged commit may be lost)."""
    c = pgc.initdb(pg_root / "primary")
    url = pgc.make_repo(pg_root)
    try:
        c.pgbench("-i", "-s", "2", "-q", "postgres")
        c.sql("CREATE TABLE commits (id bigint PRIMARY KEY, at timestamptz NOT NULL)")
        with receiver(c, url, pg_root) as rec:
            if mode == "sync":
                c.sql("ALTER SYSTEM SET synchronous_standby_names = 'pg_receivewal'")
                c.sql("SELECT pg_reload_conf()")
            repo = pgc.open_repo(url)
            backup_full(repo, c.dsn(), "main")
            acked: list[tuple[int, float]] = []
            stop = threading.Event()

            def committer() -> None:
                try:
                    with psycopg.connect(c.server.conninfo(), autocommit=True) as conn:
                        i = 0
                        while not stop.is_set():
                            i += 1
                            conn.execute("INSERT INTO commits VALUES (%s, clock_timestamp())",
                                         (i,))
                            acked.append((i, time.time()))
                            time.sleep(0.002)
                except psycopg.Error:
                    return

            bench = subprocess.Popen(
                [binary("pgbench", pgc.VERSION), "-h", str(c.server.sockdir), "-p",
                 str(c.port), "-U", "postgres", "-c", "2", "-j", "1", "-T", "60", "-R", "300",
                 "postgres"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            thread = threading.Thread(target=committer)
            thread.start()
            try:
                time.sleep(5)
                lag = rec.status()
                kill_hard(c.server)
                killed_at = time.time()
                thread.join(30)
                bench.wait(60)
            finally:
                stop.set()
                if bench.poll() is None:
                    bench.kill()
                    bench.wait()
            shutil.rmtree(c.datadir)  # the primary is gone for good
            st = rec.wait(lambda s: s.get("partials_stored", 0) >= 1 and not s["streaming"],
                          timeout=60, what="partial segment stored after the crash")
        repo = pgc.open_repo(url)
        report = restore_physical(repo, None, pg_root / "restored", name="main",
                                  options={"keep_running": True, "gx": "false"})
        try:
            srv = report["server"]
            with psycopg.connect(host=srv["socket_dir"], port=srv["port"], user="postgres",
                                 dbname="postgres", autocommit=True) as conn:
                have = {r[0] for r in conn.execute("SELECT id FROM commits").fetchall()}
                history = conn.execute("SELECT count(*) FROM pgbench_history").fetchone()[0]
        finally:
            stop_restored(report)
    finally:
        pgc.stop(c)
    lost = [(i, t) for i, t in acked if i not in have]
    oldest_lost_age = max((killed_at - t for _, t in lost), default=0.0)
    summary = {"mode": mode, "acknowledged_commits": len(acked), "lost_commits": len(lost),
               "oldest_lost_age_s": round(oldest_lost_age, 3),
               "pgbench_history_rows_restored": history,
               "receiver_lag_before_crash": {k: lag.get(k) for k in (
                   "receive_lag_bytes", "archive_lag_bytes")},
               "receiver_after": {k: st.get(k) for k in ("segments_stored",
                                                         "partials_stored")},
               "recovery_seconds": report["recovery_seconds"]}
    print("crash test:", json.dumps(summary))
    record_property("crash_summary", json.dumps(summary))  # type: ignore[operator]
    assert len(acked) > 100
    assert max(i for i in have) > 0
    assert oldest_lost_age <= 1.0, summary
    if mode == "sync":
        assert lost == [], summary
