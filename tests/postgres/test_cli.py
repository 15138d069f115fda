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
