"""The CLI end to end: `strongroom backup postgres` (password from PGPASSWORD, never shown)
and `strongroom restore SNAP --target DIR` of a physical full, verified against the
backup-time checksums."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import pg_cluster as pgc


def test_cli_physical_full_and_restore(plain_cluster: pgc.Cluster, pg_root: Path) -> None:
    c = plain_cluster
    c.pgbench("-i", "-s", "1", "-q", "postgres")
    url = pgc.make_repo(pg_root)
    env = {"PGPASSWORD": pgc.SUPERUSER_PASSWORD}
    proc = pgc.sr(url, "backup", "postgres", "--dsn", c.nopw_dsn(), "--name", "cli",
                  "--json", env=env)
    out = json.loads(proc.stdout)
    assert out["kind"] == "full" and out["postgres"]["method"] == "physical"
    assert pgc.SUPERUSER_PASSWORD not in proc.stdout + proc.stderr
    dest = pg_root / "cli-restored"
    proc = pgc.sr(url, "restore", out["id"][:12], "--target", str(dest), "--json",
                  "--restore-option", "gx=false")
    report = json.loads(proc.stdout)
    ver = report["verification"]
    assert report["target"]["kind"] == "immediate"
    assert report["pg_verifybackup"] == "backup successfully verified"
    assert ver["checksums_strict"] and ver["checksums_ok"], ver["checksum_problems"]
    assert ver["databases"]["postgres"]["compared"]["tables"] == 4
    assert (dest / "PG_VERSION").exists() and not (dest / "recovery.signal").exists()
    # a second restore into the same directory is refused without --replace
    again = pgc.sr(url, "restore", out["id"][:12], "--target", str(dest), check=False)
    assert again.returncode == 15 and again.stderr.startswith("error: ")
    listed = pgc.sr(url, "snapshots", "--json").stdout
    assert pgc.SUPERUSER_PASSWORD not in listed


def test_cli_pg_restore_immediate(plain_cluster: pgc.Cluster, pg_root: Path) -> None:
    c = plain_cluster
    c.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    c.sql("INSERT INTO t SELECT g, g::text FROM generate_series(1, 1000) g")
    url = pgc.make_repo(pg_root)
    env = {"PGPASSWORD": pgc.SUPERUSER_PASSWORD}
    pgc.sr(url, "backup", "postgres", "--dsn", c.nopw_dsn(), "--name", "one", env=env)
    dest = pg_root / "one-restored"
    proc = pgc.sr(url, "pg", "restore", str(dest), "--name", "one", "--immediate", "--json")
    report = json.loads(proc.stdout)
    ver = report["verification"]
    assert report["new_timeline"] == 2 and ver["amcheck"]["ok"]
    assert ver["databases"]["postgres"]["compared"]["ok"]
    gx = ver["databases"]["postgres"]["great_expectations"]
    assert gx["success"] and gx["evaluated"] == 3  # row count, columns, not-null id
    assert pgc.SUPERUSER_PASSWORD not in proc.stdout + proc.stderr
