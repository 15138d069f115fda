"""A physical restore over an existing data directory: restored and verified beside it, then
swapped in, the old directory kept (``kept``) and put back on demand; a failure before the swap
leaves the old directory byte for byte as it was; a crashed server's stale postmaster.pid is no
obstacle, a running server is."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongroom.errors import IntegrityError, SourceError, StrongroomError, TargetNotEmpty
from strongroom.sources import registry
from strongroom.sources.postgres.cluster import kill_hard, read_pidfile
from strongroom.sources.postgres.pgbin import chown_tree, server_user_kwargs
from strongroom.sources.postgres.physical import backup_full
from strongroom.sources.swap import put_back, stamp
from tasks import runbook
from tests.support import pg_cluster as pgc

PG = registry.get("postgres")


@pytest.fixture
def primary(pg_root: Path) -> Iterator[dict[str, Any]]:
    """A cluster with rows 'before' in a full backup and a row 'after' committed later."""
    url = pgc.make_repo(pg_root)
    c = pgc.initdb(pg_root / "c")
    try:
        c.sql("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)")
        c.sql("INSERT INTO t SELECT g, 'before' FROM generate_series(1, 100) g")
        snap = backup_full(pgc.open_repo(url), c.dsn(), "main")
        c.sql("INSERT INTO t VALUES (1000, 'after')")
        yield {"root": pg_root, "url": url, "cluster": c, "snap": snap}
    finally:
        pgc.stop(c)


def rows(c: pgc.Cluster) -> dict[str, int]:
    return dict(c.sql("SELECT v, count(*)::int FROM t GROUP BY v"))


def tree_hash(path: Path) -> str:
    """Names, modes, link targets and contents of everything under ``path``."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = Path(root) / name
            st = full.lstat()
            h.update(f"{full.relative_to(path)}\0{st.st_mode:o}\0".encode())
            if full.is_symlink():
                h.update(os.readlink(full).encode())
            elif full.is_file():
                h.update(full.read_bytes())
    return h.hexdigest()


def beside(datadir: Path) -> list[str]:
    return sorted(p.name for p in datadir.parent.iterdir() if p.name != datadir.name
                  and datadir.name in p.name)


def restore(primary: dict[str, Any], **options: Any) -> dict[str, Any]:
    return PG.restore(pgc.open_repo(primary["url"]), primary["snap"],
                      str(primary["cluster"].datadir), replace=True, include=[],
                      options={"gx": "false", **options})


def test_crashed_server_is_replaced_and_stop_reports_the_stale_pid(
        primary: dict[str, Any]) -> None:
    c: pgc.Cluster = primary["cluster"]
    pid = c.server.pid()
    kill_hard(c.server)
    deadline = time.monotonic() + 30
    while read_pidfile(c.datadir).live and time.monotonic() < deadline:
        time.sleep(0.1)
    assert read_pidfile(c.datadir).stale
    said = runbook.stop_service("pg_ctl", str(c.datadir))
    assert said == f"no server running: stale postmaster.pid of a crashed server (pid {pid})"
    notes = PG.check_target(str(c.datadir), settings={"method": "physical"}, replace=True,
                            size=primary["snap"].stats.bytes_total)
    assert any("stale postmaster.pid" in n for n in notes), notes

    report = restore(primary)
    assert report["verified"] and "stale postmaster.pid" in report["crashed_server"]
    kept = Path(report["kept"])
    assert kept.name.startswith("data.before-restore-") and (kept / "postmaster.pid").exists()
    assert not (c.datadir / "postmaster.pid").exists()
    # a new socket directory: the crashed postmaster's socket lock stays while its process
    # has not been reaped (a zombie here), and PostgreSQL takes that for a running server
    sock = primary["root"] / "sock2"
    sock.mkdir(mode=0o700)
    chown_tree(sock, server_user_kwargs())
    c.server = dataclasses.replace(c.server, sockdir=sock)
    c.server.start(timeout=60)
    assert rows(c) == {"before": 100}


@pytest.mark.parametrize("failure", ["damaged pack", "recovery target never reached"])
def test_failed_restore_leaves_the_data_directory_untouched(primary: dict[str, Any],
                                                             failure: str) -> None:
    c: pgc.Cluster = primary["cluster"]
    c.server.stop("fast")
    before = tree_hash(c.datadir)
    options: dict[str, Any] = {}
    if failure == "damaged pack":
        packs = [p for p in (Path(primary["url"]) / "data").rglob("*") if p.is_file()]
        biggest = max(packs, key=lambda p: p.stat().st_size)
        with open(biggest, "r+b") as fh:
            fh.seek(biggest.stat().st_size // 2)
            chunk = fh.read(64)
            fh.seek(-len(chunk), 1)
            fh.write(bytes(b ^ 0xFF for b in chunk))
    else:
        options = {"target_xid": "3999999999"}
    with pytest.raises(StrongroomError) as exc:
        restore(primary, **options)
    message = str(exc.value)
    if failure == "damaged pack":
        assert isinstance(exc.value, IntegrityError) and "is damaged" in message
    else:
        assert isinstance(exc.value, SourceError) and "recovery ended before" in message
    assert f"{c.datadir} was left as it was" in message and "\n" not in message
    assert tree_hash(c.datadir) == before
    assert beside(c.datadir) == [], "staging or kept directory left beside the target"
    c.server.start(timeout=60)
    assert rows(c) == {"before": 100, "after": 1}


def test_replace_restore_keeps_the_old_directory_and_puts_it_back(
        primary: dict[str, Any]) -> None:
    c: pgc.Cluster = primary["cluster"]
    c.server.stop("fast")
    old = tree_hash(c.datadir)
    report = restore(primary, keep_running=True)
    try:
        assert report["datadir"] == str(c.datadir)
        assert read_pidfile(c.datadir).live  # restarted on the final directory
        srv = report["server"]
        import psycopg

        with psycopg.connect(host=srv["socket_dir"], port=srv["port"], user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            got = dict(conn.execute("SELECT v, count(*)::int FROM t GROUP BY v").fetchall())
        assert got == {"before": 100}
    finally:
        runbook.stop_kept_server(report)
    assert not read_pidfile(c.datadir).present
    kept = Path(report["kept"])
    assert kept.name.startswith("data.before-restore-") and tree_hash(kept) == old
    undone = put_back(c.datadir, kept, stamp())
    assert undone is not None and undone.name.startswith("data.undone-")
    c.server.start(timeout=60)
    assert rows(c) == {"before": 100, "after": 1}


def test_running_server_is_refused_even_with_replace(primary: dict[str, Any]) -> None:
    c: pgc.Cluster = primary["cluster"]
    with pytest.raises(TargetNotEmpty, match="has a running server .*stop it first"):
        PG.check_target(str(c.datadir), settings={}, replace=False, size=1)
    notes = PG.check_target(str(c.datadir), settings={}, replace=True, size=1)
    assert any("stop command must stop it" in n for n in notes), notes
    with pytest.raises(TargetNotEmpty, match="stop it first"):
        restore(primary)
    assert beside(c.datadir) == []
    assert rows(c) == {"before": 100, "after": 1}


def test_pid_of_another_process_is_a_stale_pid_file(primary: dict[str, Any],
                                                     pg_root: Path) -> None:
    fake = pg_root / "crashed"
    fake.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        for pid in (sleeper.pid, primary["cluster"].server.pid()):  # another cluster's too
            (fake / "postmaster.pid").write_text(f"{pid}\n{fake}\n")
            state = read_pidfile(fake)
            assert state.stale, pid
            assert runbook.stop_service("pg_ctl", str(fake)) == (
                f"no server running: stale postmaster.pid of a crashed server (pid {pid})")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert read_pidfile(primary["cluster"].datadir).live
