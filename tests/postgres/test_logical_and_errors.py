"""Logical backup restored into a differently named database with identical checksums; a gap
in the WAL archive named before any restore; clear errors for bad servers and credentials."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from strongroom.errors import (
    ConfigError,
    IntegrityError,
    SourceError,
    SourceUnreachable,
    TargetNotEmpty,
)
from strongroom.sources import registry
from strongroom.sources.postgres import walstore
from strongroom.sources.postgres.conn import Dsn
from strongroom.sources.postgres.logical import backup_logical
from strongroom.sources.postgres.physical import backup_full
from strongroom.sources.postgres.restore import restore_physical
from strongroom.sources.postgres.tablestats import table_stats
from strongroom.sources.postgres.walcheck import verify_archive
from tests.postgres.helpers import drop_wal_file, receiver, wait_archived
from tests.support import pg_cluster as pgc


def test_logical_restore_into_other_database(plain_cluster: pgc.Cluster, pg_root: Path
                                             ) -> None:
    c = plain_cluster
    c.sql("CREATE DATABASE shop")
    c.pgbench("-i", "-s", "1", "-q", "shop")
    c.sql("CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric, tags text[], "
          "body jsonb)", dbname="shop")
    c.sql("INSERT INTO items SELECT g, 'item ' || g, g * 1.5, ARRAY['a', g::text], "
          "jsonb_build_object('g', g) FROM generate_series(1, 5000) g", dbname="shop")
    repo = pgc.open_repo(pgc.make_repo(pg_root))
    snap = backup_logical(repo, c.dsn(), "shop-logical", dbs=["shop"], jobs=2)
    assert snap.meta["postgres"]["databases"]["shop"]["tables"]["public.items"]["rows"] == 5000
    restore = registry.get("postgres").restore
    target = c.dsn(dbname="shop_copy")
    report = restore(repo, snap, target, replace=False, include=[], options={"jobs": "2"})
    assert report["verified"]
    ver = report["verification"]
    assert ver["compared"]["ok"] and ver["compared"]["tables"] == 5
    assert ver["great_expectations"]["success"]
    with c.connect("shop") as a, c.connect("shop_copy") as b:
        assert table_stats(a) == table_stats(b)
    with pytest.raises(TargetNotEmpty, match="already exists"):
        restore(repo, snap, target, replace=False, include=[], options={})
    c.sql("DELETE FROM items WHERE id < 10", dbname="shop_copy")
    report = restore(repo, snap, target, replace=True, include=[], options={"gx": "false"})
    assert report["verification"]["compared"]["ok"]
    assert c.sql("SELECT count(*) FROM items", dbname="shop_copy")[0][0] == 5000


def test_wal_gap_found_before_restore(plain_cluster: pgc.Cluster, pg_root: Path) -> None:
    c = plain_cluster
    url = pgc.make_repo(pg_root)
    with receiver(c, url, pg_root, name="gap"):
        repo = pgc.open_repo(url)
        backup_full(repo, c.dsn(), "gap", wal="none")
        for _ in range(4):
            c.sql("CREATE TABLE IF NOT EXISTS g AS SELECT 1 AS x")
            c.sql("INSERT INTO g SELECT generate_series(1, 20000)")
            lsn = c.sql("SELECT pg_switch_wal()::text")[0][0]
        wait_archived(url, "gap", lsn)
    repo = pgc.open_repo(url)
    assert verify_archive(repo, "gap")["missing"] == []
    catalog = walstore.WalCatalog.load(repo, "gap")
    segs = sorted(catalog.segments().values())
    victim = segs[len(segs) // 2]
    drop_wal_file(repo, "gap", victim)
    repo = pgc.open_repo(url)
    report = verify_archive(repo, "gap")
    assert report["missing"] == [victim]
    proc = pgc.sr(url, "pg", "verify-wal", "--name", "gap", check=False)
    assert proc.returncode == IntegrityError.exit_code
    assert f"segment {victim} is missing" in proc.stderr and "Traceback" not in proc.stderr
    dest = pg_root / "gap-restore"
    with pytest.raises(IntegrityError, match=f"segment {victim} is missing"):
        restore_physical(repo, None, dest, name="gap", options={})
    assert not dest.exists()  # found before anything was written


def test_wrong_password(plain_cluster: pgc.Cluster, pg_root: Path) -> None:
    repo = pgc.open_repo(pgc.make_repo(pg_root))
    dsn = plain_cluster.dsn(password="not-the-password")
    with pytest.raises(SourceError, match="authentication failed") as exc:
        backup_full(repo, dsn, "x")
    assert not isinstance(exc.value, SourceUnreachable)  # waiting does not cure it
    assert "not-the-password" not in str(exc.value)
    env = {"PGPASSWORD": "not-the-password"}
    proc = pgc.sr(str(pg_root / "repo"), "backup", "postgres", "--dsn",
                  plain_cluster.nopw_dsn(), "--name", "x", check=False, env=env)
    assert proc.returncode == SourceError.exit_code
    assert proc.stderr.startswith("error: authentication failed for PostgreSQL postgres@")
    assert "not-the-password" not in proc.stderr + proc.stdout


def test_unreachable_server(pg_root: Path) -> None:
    from strongroom.sources.postgres.cluster import free_port

    repo = pgc.open_repo(pgc.make_repo(pg_root))
    dsn = f"host=127.0.0.1 port={free_port()} user=postgres password=x connect_timeout=3"
    t0 = time.monotonic()
    with pytest.raises(SourceUnreachable, match="cannot reach PostgreSQL at postgres@127.0.0.1"):
        backup_full(repo, dsn, "x")
    with pytest.raises(SourceUnreachable, match="cannot reach"):
        backup_logical(repo, dsn, "x")
    assert time.monotonic() - t0 < 30
    assert repo.list_snapshots() == []


def test_server_without_replica_wal_level(pg_root: Path) -> None:
    c = pgc.initdb(pg_root / "minimal", wal_level="minimal")
    try:
        repo = pgc.open_repo(pgc.make_repo(pg_root))
        with pytest.raises(SourceError, match="wal_level=minimal.*need wal_level=replica"):
            backup_full(repo, c.dsn(), "x")
        from strongroom.sources.postgres.receiver import Receiver

        with pytest.raises(SourceError, match="wal_level=minimal"):
            Receiver(repo, c.dsn(), "x", pg_root / "spool").run()
        # logical backups still work on such a server
        snap = backup_logical(repo, c.dsn(), "x-logical", dbs=["postgres"])
        assert snap.meta["postgres"]["method"] == "logical"
    finally:
        pgc.stop(c)


def test_dsn_password_never_on_command_line() -> None:
    dsn = Dsn.parse("host=h port=1 user=u password=s3cret dbname=d")
    assert "s3cret" not in dsn.conninfo and "s3cret" not in repr(dsn)
    assert dsn.env({})["PGPASSWORD"] == "s3cret"


def test_source_backup_from_block_settings(plain_cluster: pgc.Cluster, pg_root: Path) -> None:
    """The registry's postgres source backs up from the Prefect block's settings."""
    source = registry.get("postgres")
    repo = pgc.open_repo(pgc.make_repo(pg_root))
    kw = {"host": "127.0.0.1", "port": plain_cluster.port, "user": "postgres",
          "password": pgc.SUPERUSER_PASSWORD, "database": None, "method": "physical"}
    hourly = source.backup(repo, name="blk", kind="snapshot", tags=["hourly"],
                           settings={**kw, "snapshot_method": "logical"})
    assert hourly.kind == "snapshot" and hourly.meta["postgres"]["method"] == "logical"
    full = source.backup(repo, name="blk-phys", kind="full", tags=[],
                         settings={**kw, "snapshot_method": None})
    assert full.meta["postgres"]["method"] == "physical"
    with pytest.raises(ConfigError, match="unknown postgres restore option 'taget_time'"):
        source.restore(repo, full, str(pg_root / "never"), replace=False, include=[],
                       options={"taget_time": "2024-01-01"})
    assert not (pg_root / "never").exists()
