"""Physical full + continuous WAL, then point-in-time restores to time, LSN, xid and restore
point (first commit there, second not), latest, an incremental, and the clear errors."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from strongroom.errors import SnapshotNotFound, TargetNotEmpty
from strongroom.sources import registry
from strongroom.sources.postgres import walstore
from strongroom.sources.postgres.physical import backup_full, backup_wal_seal
from strongroom.sources.postgres.restore import restore_physical
from tests.postgres.helpers import receiver, restored_labels, stop_restored, wait_archived
from tests.support import pg_cluster as pgc

LABELS = ["a1", "b1", "a2", "b2", "a3", "b3", "a4", "b4"]


@pytest.fixture(scope="module")
def env() -> Iterator[dict[str, Any]]:
    with pgc.workdir() as root:
        url = pgc.make_repo(root)
        cluster = pgc.initdb(root / "primary")
        try:
            cluster.pgbench("-i", "-s", "2", "-q", "postgres")
            cluster.sql("CREATE TABLE marks (id serial PRIMARY KEY, label text NOT NULL, "
                        "at timestamptz NOT NULL DEFAULT clock_timestamp())")
            with receiver(cluster, url, root) as rec:
                repo = pgc.open_repo(url)
                full = backup_full(repo, cluster.dsn(), "main")
                full2 = backup_full(repo, cluster.dsn(), "main")
                marks = make_marks(cluster)
                lsn = cluster.sql("SELECT pg_switch_wal()::text")[0][0]
                wait_archived(url, "main", lsn)
                yield {"root": root, "url": url, "cluster": cluster, "full": full,
                       "full2": full2, "marks": marks, "receiver": rec}
        finally:
            pgc.stop(cluster)


def make_marks(c: pgc.Cluster) -> dict[str, str]:
    """Pairs of commits with a target between them."""
    def mark(label: str) -> None:
        c.sql("INSERT INTO marks (label) VALUES (%s)", params=(label,))

    out: dict[str, str] = {}
    mark("a1")
    time.sleep(0.3)
    out["time"] = c.sql("SELECT clock_timestamp()")[0][0].isoformat()
    time.sleep(0.3)
    mark("b1")
    mark("a2")
    out["lsn"] = c.sql("SELECT pg_current_wal_lsn()::text")[0][0]
    mark("b2")
    with c.connect() as conn, conn.transaction():
        conn.execute("INSERT INTO marks (label) VALUES ('a3')")
        out["xid"] = str(conn.execute("SELECT txid_current()").fetchone()[0])
    mark("b3")
    mark("a4")
    c.sql("SELECT pg_create_restore_point('before_b4')")
    out["name"] = "before_b4"
    mark("b4")
    return out


def restore(env: dict[str, Any], dest: str, **options: Any) -> dict[str, Any]:
    repo = pgc.open_repo(env["url"])
    return restore_physical(repo, None, env["root"] / dest, name="main",
                            options={"keep_running": True, **options})


@pytest.mark.parametrize("kind,upto", [("time", "a1"), ("lsn", "a2"), ("xid", "a3"),
                                       ("name", "a4")])
def test_pitr_first_commit_there_second_not(env: dict[str, Any], kind: str, upto: str) -> None:
    report = restore(env, f"pitr-{kind}", **{f"target_{kind}": env["marks"][kind]},
                     gx=(kind == "time"))
    try:
        labels = restored_labels(report)
    finally:
        stop_restored(report)
    want = set(LABELS[: LABELS.index(upto) + 1])
    assert labels == want, (kind, sorted(labels))
    assert report["pg_verifybackup"] == "backup successfully verified"
    ver = report["verification"]
    assert ver["amcheck"]["ok"]
    assert report["new_timeline"] == 2
    if kind == "time":
        gx = ver["databases"]["postgres"]["great_expectations"]
        assert gx["evaluated"] > 0
        # pgbench tables are unchanged since the backup: their expectations hold
        assert not [f for f in gx["failed"] if f["table"].startswith("public.pgbench")]


def test_restore_latest_and_timeline(env: dict[str, Any]) -> None:
    report = restore(env, "latest", gx=False)
    try:
        labels = restored_labels(report)
    finally:
        stop_restored(report)
    assert labels == set(LABELS)
    # the base was chosen automatically: the newest full
    assert report["snapshot"] == env["full2"].id


def test_second_full_dedupes(env: dict[str, Any]) -> None:
    first, second = env["full"].stats, env["full2"].stats
    assert second.bytes_read > 20 << 20
    assert second.bytes_new < 0.5 * second.bytes_read, second
    meta = env["full"].meta["postgres"]
    for key in ("start_lsn", "stop_lsn", "timeline", "system_id", "stop_time"):
        assert meta[key]
    assert first.bytes_stored < first.bytes_read  # compressed


def test_incremental_restores_on_its_own(env: dict[str, Any]) -> None:
    repo = pgc.open_repo(env["url"])
    cluster = env["cluster"]
    cluster.sql("INSERT INTO marks (label) VALUES ('inc')")
    inc = backup_wal_seal(repo, cluster.dsn(), "main", "incremental")
    assert inc.kind == "incremental" and inc.parent == env["full2"].id
    assert inc.stats.bytes_new < 1 << 20  # base reused, WAL already stored
    report = registry.get("postgres").restore(repo, inc, str(env["root"] / "inc"),
                                              replace=False, include=[],
                                              options={"keep_running": True, "gx": False})
    try:
        labels = restored_labels(report)
    finally:
        stop_restored(report)
    assert "inc" in labels and set(LABELS) <= labels


def test_target_before_oldest_backup(env: dict[str, Any]) -> None:
    repo = pgc.open_repo(env["url"])
    early = datetime.fromisoformat(env["full"].meta["postgres"]["stop_time"]) - timedelta(
        hours=1)
    with pytest.raises(SnapshotNotFound, match="before the oldest backup"):
        restore_physical(repo, None, env["root"] / "never", name="main",
                         options={"target_time": early.isoformat()})
    assert not (env["root"] / "never").exists()
    proc = pgc.sr(env["url"], "pg", "restore", str(env["root"] / "never"), "--name", "main",
                  "--target-lsn", "0/1", check=False)
    assert proc.returncode == SnapshotNotFound.exit_code
    assert proc.stderr.startswith("error: recovery target LSN 0/1 is before the oldest")
    assert "Traceback" not in proc.stderr


def test_target_never_reached_is_a_clear_error(env: dict[str, Any]) -> None:
    from strongroom.errors import SourceError

    repo = pgc.open_repo(env["url"])
    with pytest.raises(SourceError, match="recovery ended before configured recovery target"):
        restore_physical(repo, None, env["root"] / "unreached", name="main",
                         options={"target_xid": "3999999999", "keep_running": True})
    assert not (env["root"] / "unreached" / "postmaster.pid").exists()  # server stopped


def test_non_empty_target_refused(env: dict[str, Any]) -> None:
    dest: Path = env["root"] / "busy"
    dest.mkdir()
    (dest / "something").write_text("x")
    repo = pgc.open_repo(env["url"])
    with pytest.raises(TargetNotEmpty):
        restore_physical(repo, None, dest, name="main", options={})
    shutil.rmtree(dest)


def test_verify_wal_complete(env: dict[str, Any]) -> None:
    proc = pgc.sr(env["url"], "pg", "verify-wal", "--name", "main")
    assert "is complete" in proc.stdout


def test_differential_parent_is_latest_full(env: dict[str, Any]) -> None:
    repo = pgc.open_repo(env["url"])
    diff = backup_wal_seal(repo, env["cluster"].dsn(), "main", "differential")
    assert diff.kind == "differential" and diff.parent == env["full2"].id
    assert diff.meta["postgres"]["base_snapshot"] == env["full2"].id


def test_timeline_history_followed_after_failover(env: dict[str, Any]) -> None:
    """Restore to a1 and promote (timeline 2), make it the new primary streaming into the same
    archive, commit 't2' there; a later restore to latest follows timeline 2: a1 and t2, no
    b1. (Runs last: it forks the archive.)"""
    from strongroom.sources.postgres.cluster import Server

    report = restore(env, "failover", target_time=env["marks"]["time"], gx=False,
                     failover=True)
    assert "00000002.history" in report["failover"]["archived"]
    srv = report["server"]
    new = Server(Path(report["datadir"]), srv["port"], Path(srv["socket_dir"]))
    fake = pgc.Cluster(env["root"], new)
    try:
        assert report["new_timeline"] == 2
        side = env["root"] / "failover-receiver"
        side.mkdir()
        sock_dsn = f"host={srv['socket_dir']} port={srv['port']} user={pgc.REPL_USER}"
        with receiver(fake, env["url"], side, name="main", dsn=sock_dsn):
            fake.sql("INSERT INTO marks (label) VALUES ('t2')")
            lsn = fake.sql("SELECT pg_switch_wal()::text")[0][0]
            wait_archived(env["url"], "main", lsn, tli=2)
    finally:
        stop_restored(report)
    repo = pgc.open_repo(env["url"])
    assert "00000002.history" in walstore.WalCatalog.load(repo, "main").files
    again = restore(env, "after-failover", gx=False)
    try:
        labels = restored_labels(again)
    finally:
        stop_restored(again)
    assert again["timeline"] == 2 and again["new_timeline"] == 3
    assert labels == {"a1", "t2"}, sorted(labels)
