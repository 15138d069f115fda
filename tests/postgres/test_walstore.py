"""The WAL archive: wal-push/wal-fetch as archive and restore commands, idempotence, refusal
to overwrite, compaction, timeline paths and gap detection across a fork."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strongroom.errors import IntegrityError
from strongroom.repository import Repository
from strongroom.sources.postgres import walnames as wn
from strongroom.sources.postgres import walstore
from tests.support import pg_cluster as pgc

SEG = 1 << 20


def seg(tli: int, segno: int) -> str:
    return wn.segment_name(tli, segno, SEG)


def write(dirpath: Path, name: str, fill: bytes) -> Path:
    path = dirpath / name
    path.write_bytes(fill * (SEG // len(fill)) if wn.classify(name) == "segment" else fill)
    return path


def test_push_fetch_cli_idempotent_and_refuses_overwrite(pg_root: Path) -> None:
    url = pgc.make_repo(pg_root)
    src = pg_root / "pg_wal"
    src.mkdir()
    first = write(src, seg(1, 5), os.urandom(4096))
    pgc.sr(url, "pg", "wal-push", str(first), "--name", "db")
    pgc.sr(url, "pg", "wal-push", str(first), "--name", "db")  # retried by PostgreSQL: fine
    dest = pg_root / "RECOVERYXLOG"
    pgc.sr(url, "pg", "wal-fetch", seg(1, 5), str(dest), "--name", "db")
    assert dest.read_bytes() == first.read_bytes()
    missing = pgc.sr(url, "pg", "wal-fetch", seg(1, 6), str(dest), "--name", "db", check=False)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    other = write(pg_root, seg(1, 5), b"x")
    proc = pgc.sr(url, "pg", "wal-push", str(other), "--name", "db", check=False)
    assert proc.returncode == IntegrityError.exit_code
    assert proc.stderr.startswith("error: WAL file 000000010000000000000005 is already "
                                  "archived with different contents")
    repo = pgc.open_repo(url)
    snaps = repo.list_snapshots("db-wal")
    assert len(snaps) == 1 and snaps[0].source_kind == "postgres-wal"
    # encrypted like every other blob: the plaintext is nowhere in the repository files
    needle = first.read_bytes()[:64]
    for dirpath, _dirs, files in os.walk(url):
        for f in files:
            assert needle not in Path(dirpath, f).read_bytes()


def test_compaction_keeps_the_catalogue(pg_root: Path) -> None:
    repo = Repository.init(str(pg_root / "repo"), password="x")
    src = pg_root / "w"
    src.mkdir()
    for n in range(1, 8):
        walstore.push(repo, "db", [write(src, seg(1, n), os.urandom(1024))], seg_size=SEG)
    before = walstore.WalCatalog.load(repo, "db")
    assert len(before.snapshots) == 7
    merged = walstore.compact(repo, "db", at_least=2)
    assert merged is not None and merged.stats.bytes_new < 64 << 10  # nothing re-uploaded
    repo2 = Repository.open(str(pg_root / "repo"), password="x")
    after = walstore.WalCatalog.load(repo2, "db")
    assert len(after.snapshots) == 1
    assert {k: v.sha256 for k, v in after.files.items()} == \
        {k: v.sha256 for k, v in before.files.items()}
    dest = pg_root / "out"
    assert walstore.fetch(after, seg(1, 3), dest)
    assert dest.read_bytes() == (src / seg(1, 3)).read_bytes()


def test_partial_serves_as_segment_and_timeline_gap(pg_root: Path) -> None:
    repo = Repository.init(str(pg_root / "repo"), password="x")
    src = pg_root / "w"
    src.mkdir()
    files = [write(src, seg(1, n), os.urandom(1024)) for n in (1, 2, 3)]
    # timeline 2 forked at segment 3; its copy of segment 3 and segment 4 exist
    files.append(write(src, "00000002.history", b"1\t0/380000\tafter a restore\n"))
    files += [write(src, seg(2, n), os.urandom(1024)) for n in (3, 4)]
    partial = src / f"{seg(2, 5)}.partial"
    partial.write_bytes(os.urandom(SEG))
    files.append(partial)
    walstore.push(repo, "db", files, seg_size=SEG)
    cat = walstore.WalCatalog.load(repo, "db")
    path = wn.timeline_path(2, cat.histories())
    assert path == [(1, 0x380000), (2, 1 << 64)]
    assert walstore.missing_segments(cat, SEG, None, path, SEG)[0] == []
    assert cat.lookup(seg(2, 5)).name.endswith(".partial")  # type: ignore[union-attr]
    # timeline 1 alone lacks segment 4 once it is followed past the fork
    missing, _ = walstore.missing_segments(cat, SEG, 5 * SEG, wn.timeline_path(1, {}), SEG)
    assert missing == [seg(1, 4)]


@pytest.mark.parametrize("lsn,text", [(0x16B374D848, "16/B374D848"), (0, "0/0")])
def test_lsn_round_trip(lsn: int, text: str) -> None:
    assert wn.format_lsn(lsn) == text and wn.parse_lsn(text) == lsn


def test_archive_command_as_server_user(pg_root: Path) -> None:
    """archive_command = strongroom pg wal-push, run by the server as its own OS user."""
    if not pgc.server_user_can_run_strongroom():
        pytest.skip("the server's OS user cannot run this Python (e.g. it lives under /root)")
    from tests.postgres.helpers import wait_archived

    url = pgc.make_repo(pg_root)
    pgc.chown_tree(Path(url), pgc.server_user_kwargs())
    c = pgc.initdb(pg_root / "archived", archive_name="arch", repo_url=url)
    try:
        c.sql("CREATE TABLE t AS SELECT generate_series(1, 10000) AS x")
        lsn = c.sql("SELECT pg_switch_wal()::text")[0][0]
        wait_archived(url, "arch", lsn, timeout=120)
    finally:
        pgc.stop(c)


def test_receiver_stores_partial_periodically_and_reports_lag(
        plain_cluster: pgc.Cluster, pg_root: Path) -> None:
    """--partial-interval: the segment being written reaches the repository before it
    completes; the status report carries the lag figures."""
    import threading
    import time

    from strongroom.sources.postgres.receiver import Receiver

    repo = pgc.open_repo(pgc.make_repo(pg_root))
    seen: list[dict[str, object]] = []
    rec = Receiver(repo, plain_cluster.dsn(pgc.REPL_USER), "live", pg_root / "spool",
                   status_interval=0.3, partial_interval=0.5, emit=seen.append)
    thread = threading.Thread(target=rec.run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not any(s.get("received_lsn") for s in seen) and time.monotonic() < deadline:
            time.sleep(0.1)
        plain_cluster.sql("CREATE TABLE p AS SELECT generate_series(1, 1000) AS x")
        while rec.partials_stored == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        rec.stop()
        thread.join(60)
    assert rec.partials_stored >= 1
    catalog = walstore.WalCatalog.load(pgc.open_repo(str(pg_root / "repo")), "live")
    assert any(n.endswith(".partial") for n in catalog.files)
    last = seen[-1]
    assert last["server"] == "up" and "receive_lag_bytes" in last and not last["streaming"]


def test_wal_expire_keeps_what_the_oldest_backup_needs(pg_root: Path) -> None:
    repo = Repository.init(str(pg_root / "repo"), password="x")
    src = pg_root / "w"
    src.mkdir()
    for n in range(1, 8):
        walstore.push(repo, "db", [write(src, seg(1, n), os.urandom(1024))], seg_size=SEG)
    walstore.push(repo, "db", [write(src, "00000002.history", b"1\t0/100000\tx\n")],
                  seg_size=SEG)
    with repo.writer("db", "postgres") as w:  # a base backup that starts in segment 4
        w.add_bytes("backup_manifest", b"{}")
        w.set_meta({"postgres": {"method": "physical", "start_lsn": "0/400028",
                                 "wal_segment_size": SEG, "timeline": 1}})
        w.commit()
    report = walstore.expire(repo, "db")
    assert report["oldest_needed"] == seg(1, 4)
    cat = walstore.WalCatalog.load(Repository.open(str(pg_root / "repo"), password="x"), "db")
    assert sorted(cat.files) == sorted(["00000002.history"] + [seg(1, n) for n in range(4, 8)])
    assert len(cat.snapshots) == 1
