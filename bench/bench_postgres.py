"""PostgreSQL benchmark: strongroom vs pgBackRest (Debian) vs pg_dump/pg_restore, same cluster,
same run. Not a test, not in CI.

Data: pgbench at --scale (default 50, ~770 MB) plus a table of --random-mb (default 1024) of
poorly compressible text (base64 of random bytes). Measured per tool: full backup time, restore
time including WAL replay until the server accepts connections, stored size.
    python3 bench/bench_postgres.py [--scale 50] [--random-mb 1024] [--jobs 2] [--quick]
Prints a table and writes bench/work/postgres-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("STRONGROOM_ARGON2_MEMORY_KIB", "65536")

from strongroom.repository import Repository  # noqa: E402
from strongroom.sources.postgres.cluster import Server, free_port  # noqa: E402
from strongroom.sources.postgres.logical import backup_logical, restore_logical  # noqa: E402
from strongroom.sources.postgres.pgbin import (  # noqa: E402
    binary,
    chown_tree,
    run,
    server_user_kwargs,
)
from strongroom.sources.postgres.physical import backup_full  # noqa: E402
from strongroom.sources.postgres.restore import restore_physical  # noqa: E402
from tests.support import pg_cluster as pgc  # noqa: E402

PW = "bench-password"


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def timed(fn, *a, **kw):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn(*a, **kw)
    return time.perf_counter() - t, out


def as_pg(args: list[str], timeout: float = 7200) -> None:
    run(args, timeout=timeout, **server_user_kwargs())


def wait_archiver(c: pgc.Cluster, timeout: float = 1800) -> None:
    """Let archive_command catch up, so the pgBackRest backup is not charged for the load."""
    seg = c.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = c.sql("SELECT last_archived_wal FROM pg_stat_archiver")[0][0]
        if last and last >= seg:
            return
        time.sleep(1)
    raise SystemExit("archiver did not catch up")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=50)
    ap.add_argument("--random-mb", type=int, default=1024)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="scale 5, 100 MB: check the script")
    a = ap.parse_args()
    if a.quick:
        a.scale, a.random_mb = 5, 100
    results: dict[str, dict[str, float]] = {}
    with pgc.workdir() as root:
        pgbr_conf = root / "pgbackrest.conf"
        pgbr_repo = root / "pgbr-repo"
        pgbr_repo.mkdir()
        c = pgc.initdb(root / "primary", seg_mb=16, settings={
            "archive_mode": "on", "fsync": "on", "max_wal_size": "2GB",
            "archive_command": f"'pgbackrest --config={pgbr_conf} --stanza=bench "
                               "archive-push %p'"})
        pgbr_conf.write_text(
            "[global]\n"
            f"repo1-path={pgbr_repo}\nrepo1-retention-full=2\nlog-path={root}\n"
            f"lock-path={root}/pgbr-lock\nspool-path={root}\nstart-fast=y\n"
            f"compress-type=zst\ncompress-level=3\nprocess-max={a.jobs}\n"
            "log-level-console=warn\nlog-level-file=off\n\n"
            f"[bench]\npg1-path={c.datadir}\npg1-port={c.port}\npg1-socket-path="
            f"{c.server.sockdir}\n")
        chown_tree(root, server_user_kwargs())
        conf = f"--config={pgbr_conf}"
        try:
            as_pg(["pgbackrest", conf, "--stanza=bench", "stanza-create"])
            print(f"loading pgbench -s {a.scale} and {a.random_mb} MB of random text ...")
            c.pgbench("-i", "-s", str(a.scale), "-q", "postgres", timeout=3600)
            c.sql("CREATE EXTENSION IF NOT EXISTS pgcrypto")
            rows = a.random_mb * 1024 // 1
            c.sql("CREATE TABLE rnd (id bigint PRIMARY KEY, body text)")
            c.sql(f"INSERT INTO rnd SELECT g, encode(gen_random_bytes(768), 'base64') "
                  f"FROM generate_series(1, {rows}) g")
            c.sql("CHECKPOINT")
            wait_archiver(c)
            size = c.sql("SELECT pg_database_size('postgres')")[0][0]
            print(f"database size {size / 1e6:.0f} MB")

            # strongroom physical
            repo = Repository.init(str(root / "sr-repo"), password=PW)
            t, snap = timed(backup_full, repo, c.dsn(), "main", checksums=False)
            results["strongroom physical"] = {"backup_s": t, "stored_mb":
                                              du(root / "sr-repo") / 1e6}
            # timed like pgBackRest's: until the promoted server accepts connections
            t, rep = timed(restore_physical, repo, snap, root / "sr-restored",
                           options={"target": "immediate", "verify": "false",
                                    "keep_running": True})
            results["strongroom physical"]["restore_s"] = t
            Server(root / "sr-restored", rep["server"]["port"],
                   Path(rep["server"]["socket_dir"])).stop()
            shutil.rmtree(rep["server"]["work_dir"], ignore_errors=True)
            t, rep = timed(restore_physical, repo, snap, root / "sr-verified",
                           options={"target": "immediate", "gx": "false"})
            results["strongroom physical"]["restore_verified_s"] = t
            shutil.rmtree(root / "sr-verified")
            shutil.rmtree(root / "sr-restored")

            # pgBackRest
            t, _ = timed(as_pg, ["pgbackrest", conf, "--stanza=bench", "--type=full",
                                 "backup"])
            results["pgbackrest"] = {"backup_s": t, "stored_mb": du(pgbr_repo / "backup") / 1e6}
            dest = root / "pgbr-restored"
            dest.mkdir(mode=0o700)
            chown_tree(dest, server_user_kwargs())
            t0 = time.perf_counter()
            as_pg(["pgbackrest", conf, "--stanza=bench", f"--pg1-path={dest}",
                   "--type=immediate", "--target-action=promote", "restore"])
            sock = root / "pgbr-sock"
            sock.mkdir()
            chown_tree(sock, server_user_kwargs())
            srv = Server(dest, free_port(), sock, logfile=root / "pgbr-restored.log",
                         options={"archive_mode": "off"})
            srv.start(timeout=1800)
            srv.wait_ready(timeout=1800)
            results["pgbackrest"]["restore_s"] = time.perf_counter() - t0
            srv.stop()

            # pg_dump / pg_restore (directory format, -j)
            dump = root / "dump"
            t, _ = timed(run, [binary("pg_dump"), "-d", c.server.conninfo(), "-Fd", "-j",
                               str(a.jobs), "-f", str(dump)], timeout=7200)
            results["pg_dump -Fd"] = {"backup_s": t, "stored_mb": du(dump) / 1e6}
            c.sql("CREATE DATABASE dump_copy")
            t, _ = timed(run, [binary("pg_restore"), "-d", c.server.conninfo("dump_copy"),
                               "-j", str(a.jobs), str(dump)], timeout=7200)
            results["pg_dump -Fd"]["restore_s"] = t

            # strongroom logical
            t, lsnap = timed(backup_logical, repo, c.dsn(), "main-logical", dbs=["postgres"],
                             jobs=a.jobs)
            results["strongroom logical"] = {"backup_s": t, "stored_mb":
                                             lsnap.stats.bytes_stored / 1e6}
            t, _ = timed(restore_logical, repo, lsnap, c.dsn(dbname="sr_copy"),
                         options={"jobs": str(a.jobs), "verify": "false"})
            results["strongroom logical"]["restore_s"] = t
            t, _ = timed(restore_logical, repo, lsnap, c.dsn(dbname="sr_copy2"),
                         options={"jobs": str(a.jobs), "gx": "false"})
            results["strongroom logical"]["restore_verified_s"] = t
        finally:
            pgc.stop(c)
    base = results["pgbackrest"]
    print(f"\n{'tool':22} {'backup s':>9} {'restore s':>10} {'stored MB':>10}  vs pgBackRest")
    for tool, r in results.items():
        print(f"{tool:22} {r['backup_s']:9.1f} {r['restore_s']:10.1f} {r['stored_mb']:10.0f}  "
              f"backup x{r['backup_s'] / base['backup_s']:.2f} restore "
              f"x{r['restore_s'] / base['restore_s']:.2f} size "
              f"x{r['stored_mb'] / base['stored_mb']:.2f}")
    for tool, r in results.items():
        if "restore_verified_s" in r:
            print(f"{tool}: restore with verification (amcheck, per-table checksums, "
                  f"pg_verifybackup for physical) {r['restore_verified_s']:.1f} s")
    out = Path(__file__).resolve().parent / "work"
    out.mkdir(exist_ok=True)
    (out / "postgres-results.json").write_text(json.dumps(
        {"scale": a.scale, "random_mb": a.random_mb, "jobs": a.jobs, "results": results},
        indent=2))


if __name__ == "__main__":
    main()
