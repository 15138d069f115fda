"""Measure the RPO of continuous WAL replication on a real PostgreSQL 15.

For each scenario: a base backup, the supervised receiver (flows.replication.Supervised around
strongroom's Receiver, as the wal-replication flow runs it), pgbench load plus a writer that
commits numbered rows and remembers the last one the server acknowledged; then ``kill -9`` of
the postmaster. The cluster is restored from the repository to the end of the archived WAL and
the rows that are missing are the data lost: counted, and in seconds (acknowledged commit time
of the last row minus that of the last restored row).

Scenarios: asynchronous (the server does not wait for the receiver), synchronous (the receiver
is the synchronous standby: ``synchronous_standby_names = pg_receivewal``), and each of those
with the receiver's pg_receivewal killed (-9) mid-load and restarted by the supervisor.

    python -m bench.rpo_replication            # prints one line per scenario
    python -m bench.rpo_replication --runs 3 --only async

A run that loses rows also prints what the archive held (last complete segment, the
``.partial``), the LSN of the last acknowledged row and where the restore's replay ended, so a
loss can be told apart from a measurement error.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from flows.replication import Supervised
from strongroom.sources.postgres.pgbin import binary
from strongroom.sources.postgres.physical import backup_full
from strongroom.sources.postgres.receiver import Receiver
from strongroom.sources.postgres.restore import restore_physical
from tests.support import pg_cluster as pgc

LOAD_S = float(os.environ.get("RPO_LOAD_S", "12"))


def writer(cluster: pgc.Cluster, acked: dict[str, Any], stop: threading.Event) -> None:
    """Commit numbered rows one by one; remember the last acknowledged (id, time)."""
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute("INSERT INTO ticks (at) VALUES (clock_timestamp()) "
                                   "RETURNING id, at, pg_current_wal_insert_lsn()::text"
                                   ).fetchone()
                acked["id"], acked["at"], acked["lsn"] = row
    except psycopg.Error:
        pass  # the server was killed


def receivewal_pids(spool: Path) -> list[int]:
    """This scenario's pg_receivewal (never another test's: the pattern names our spool)."""
    out = subprocess.run(["pgrep", "-f", f"pg_receivewal .*-D {spool} "], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def archive_state(url: str, seg: int) -> dict[str, Any]:
    """What the archive holds at the end: newest complete segment, the partials."""
    from strongroom.sources.postgres import walnames as wn
    from strongroom.sources.postgres.walstore import WalCatalog

    catalog = WalCatalog.load(pgc.open_repo(url), "main")
    segs = sorted(n for n in catalog.files if wn.classify(n) == "segment")
    return {"wal_snapshots": len(catalog.snapshots), "segments": len(segs),
            "last_segment": segs[-1] if segs else None,
            "partials": sorted(n for n in catalog.files if n.endswith(".partial"))[-3:],
            "seg_size": seg}


def scenario(root: Path, sync: bool, kill_receiver: bool) -> dict[str, Any]:
    url = pgc.make_repo(root)
    cluster = pgc.initdb(root / "primary")
    cluster.sql("CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz NOT NULL)")
    cluster.pgbench("-i", "-s", "2", "-q", "postgres")
    repo = pgc.open_repo(url)
    dsn = cluster.dsn()
    sup = Supervised(lambda: Receiver(pgc.open_repo(url), dsn, "main", root / "spool",
                                      status_interval=1.0, partial_interval=5.0))
    sup.start()
    supervising = threading.Event()
    events: list[str] = []

    def supervise() -> None:  # as the wal-replication flow does between its health checks
        while not supervising.wait(0.5):
            if (what := sup.check()) is not None:
                events.append(what)

    checker = threading.Thread(target=supervise, daemon=True)
    checker.start()
    deadline = time.monotonic() + 60
    while not sup.receiver.last_status.get("streaming") and time.monotonic() < deadline:
        time.sleep(0.2)
    if sync:  # only now: with no standby connected every commit would wait
        cluster.sql("ALTER SYSTEM SET synchronous_standby_names = 'pg_receivewal'")
        cluster.sql("SELECT pg_reload_conf()")
        time.sleep(1)
        assert cluster.sql("SELECT sync_state FROM pg_stat_replication") == [("sync",)]
    backup_full(repo, dsn, "main")
    acked: dict[str, Any] = {}
    stop = threading.Event()
    w = threading.Thread(target=writer, args=(cluster, acked, stop))
    w.start()
    bench = subprocess.Popen([str(binary("pgbench", pgc.VERSION)), "-h",
                              str(cluster.server.sockdir), "-p", str(cluster.port), "-U",
                              "postgres", "-c", "4", "-T", str(int(LOAD_S * 2)), "postgres"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             **cluster.server.user_kwargs)
    time.sleep(LOAD_S / 2)
    killed_receiver = 0
    if kill_receiver:
        for pid in receivewal_pids(root / "spool"):
            os.kill(pid, signal.SIGKILL)
            killed_receiver += 1
    time.sleep(LOAD_S / 2)
    pid = cluster.server.pid()
    os.kill(pid, signal.SIGKILL)  # the incident
    killed_at = time.monotonic()
    stop.set()
    w.join(30)
    bench.wait(60)
    time.sleep(3)  # the receiver notices the lost stream and stores the open segment
    supervising.set()
    checker.join(5)
    final = sup.stop()
    subprocess.run(["pkill", "-9", "-f", f"postgres -D {cluster.datadir}"], check=False)
    for leftover in ("postmaster.pid",):
        (cluster.datadir / leftover).unlink(missing_ok=True)
    report = restore_physical(pgc.open_repo(url), None, root / "restored", name="main",
                              options={"target": "latest", "keep_running": True,
                                       "verify": "false"})
    server = report["server"]
    with psycopg.connect(f"host={server['socket_dir']} port={server['port']} user=postgres "
                         "dbname=postgres") as conn:
        got = conn.execute("SELECT coalesce(max(id), 0), max(at) FROM ticks").fetchone()
    subprocess.run([str(binary("pg_ctl", pgc.VERSION)), "stop", "-D", str(root / "restored"),
                    "-m", "immediate"], capture_output=True, **cluster.server.user_kwargs)
    # a commit in flight at the kill may be durable but never acknowledged: restored, not lost
    lost_rows = max(0, int(acked.get("id", 0)) - int(got[0]))
    unacked = max(0, int(got[0]) - int(acked.get("id", 0)))
    lost_s = (acked["at"] - got[1]).total_seconds() if got[1] and lost_rows > 0 else 0.0
    diagnosis = {}
    if lost_rows:
        diagnosis = {"acked_lsn": acked.get("lsn"), "replay_ended": report.get("promoted_lsn"),
                     "wal_check": report.get("wal_check"), "final_status": final,
                     "archive": archive_state(url, int(sup.receiver.seg_size))}
    return {"mode": "synchronous" if sync else "asynchronous",
            "receiver_killed": killed_receiver, "acked_rows": int(acked.get("id", 0)),
            "restored_rows": int(got[0]), "lost_rows": lost_rows,
            "unacknowledged_restored": unacked, "lost_s": round(lost_s, 3),
            "restarts": sup.restarts, "receiver_errors": final.get("errors"),
            "receiver_failure": sup.failure, "supervisor": events[-3:],
            "restore_s": report.get("duration_s"),
            "after_kill_s": round(time.monotonic() - killed_at, 1), **diagnosis}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1, help="runs of each scenario")
    ap.add_argument("--only", choices=("async", "sync"), help="only this mode")
    ap.add_argument("--receiver-kill", choices=("no", "yes", "both"), default="both")
    args = ap.parse_args()
    modes = {"async": (False,), "sync": (True,)}.get(args.only or "", (False, True))
    kills = {"no": (False,), "yes": (True,)}.get(args.receiver_kill, (False, True))
    for _ in range(args.runs):
        for sync in modes:
            for kill_receiver in kills:
                with pgc.workdir() as root:
                    print(scenario(root, sync, kill_receiver), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
