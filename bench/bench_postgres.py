"""PostgreSQL benchmark: strongroom vs pgBackRest (Debian) vs pg_dump/pg_restore, same cluster,
same run. Not a test, not in CI.

Data: pgbench at --scale (default 50, ~770 MB) plus a table of --random-mb (default 1024) of
poorly compressible text (base64 of random bytes). Measured per tool: full backup time, restore
time including WAL replay until the server accepts connections, stored size.
    python3 bench/bench_postgres.py [--scale 50] [--random-mb 1024] [--jobs 2] [--quick]
        [--rounds 3] [--old-tree DIR] [--physical-only] [--workdir DIR]
With --rounds N the physical backups and restores run N times, tools alternating, and the table
gives medians; --old-tree adds the strongroom code of another checkout (e.g. a git worktree of
main) as "old", run the same way (a child Python per run, timed inside it). --workdir keeps the
loaded cluster there and reuses it on the next run (quick iterations; delete it when done).
Prints a table and writes bench/work/postgres-results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


CHILD = r"""
import json, os, shutil, sys, time
from pathlib import Path
tree, op, repo_url, arg = sys.argv[1:5]
sys.path.insert(0, tree)
os.environ.setdefault("STRONGROOM_ARGON2_MEMORY_KIB", "65536")
from strongroom.repository import Repository
from strongroom.sources.postgres.cluster import Server
repo = Repository.open(repo_url, password=os.environ["BENCH_PW"])
if op == "backup":
    from strongroom.sources.postgres.physical import backup_full
    t = time.perf_counter()
    snap = backup_full(repo, arg, "main", checksums=False)
    print(json.dumps({"s": time.perf_counter() - t, "snap": snap.id}))
else:
    from strongroom.sources.postgres.restore import restore_physical
    snap = repo.find_snapshot(op)
    t = time.perf_counter()
    rep = restore_physical(repo, snap, arg, options={"target": "immediate", "verify": "false",
                                                      "keep_running": True})
    s = time.perf_counter() - t
    Server(Path(arg), rep["server"]["port"], Path(rep["server"]["socket_dir"])).stop()
    shutil.rmtree(rep["server"]["work_dir"], ignore_errors=True)
    print(json.dumps({"s": s}))
"""


def child(tree: Path, *args: str) -> dict[str, Any]:
    """Run one strongroom backup or restore with the code of ``tree``, timed inside."""
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tree), *args], capture_output=True,
                          text=True, timeout=7200, cwd="/",
                          env={**os.environ, "BENCH_PW": PW})
    if proc.returncode != 0:
        raise SystemExit(f"strongroom ({tree}) {args[0]} failed: {proc.stderr.strip()[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def settle() -> None:
    """Write back what the previous step left dirty, so no run pays for another's pages."""
    os.sync()


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def load(a: argparse.Namespace, root: Path) -> tuple[pgc.Cluster, Path]:
    """Create the cluster and its data under ``root``, or start the one a previous run with
    the same --workdir left there."""
    pgbr_conf = root / "pgbackrest.conf"
    state = root / "state.json"
    if state.exists():
        st = json.loads(state.read_text())
        server = Server(root / "primary" / "data", int(st["port"]), root / "primary" / "sock",
                        logfile=root / "primary" / "server.log")
        server.start(timeout=600)
        c = pgc.Cluster(root / "primary", server)
        c.sql(f"ALTER ROLE postgres PASSWORD '{pgc.SUPERUSER_PASSWORD}'")  # new per process
        return c, pgbr_conf
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
    as_pg(["pgbackrest", f"--config={pgbr_conf}", "--stanza=bench", "stanza-create"])
    print(f"loading pgbench -s {a.scale} and {a.random_mb} MB of random text ...")
    c.pgbench("-i", "-s", str(a.scale), "-q", "postgres", timeout=3600)
    c.sql("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    rows = a.random_mb * 1024 // 1
    c.sql("CREATE TABLE rnd (id bigint PRIMARY KEY, body text)")
    c.sql(f"INSERT INTO rnd SELECT g, encode(gen_random_bytes(768), 'base64') "
          f"FROM generate_series(1, {rows}) g")
    c.sql("CHECKPOINT")
    state.write_text(json.dumps({"port": c.port, "scale": a.scale, "random_mb": a.random_mb}))
    return c, pgbr_conf


def pgbr_restore(root: Path, conf: str, tag: str) -> float:
    dest = root / f"pgbr-restored-{tag}"
    dest.mkdir(mode=0o700)
    chown_tree(dest, server_user_kwargs())
    sock = root / f"pgbr-sock-{tag}"
    sock.mkdir()
    chown_tree(sock, server_user_kwargs())
    settle()
    t0 = time.perf_counter()
    as_pg(["pgbackrest", conf, "--stanza=bench", f"--pg1-path={dest}",
           "--type=immediate", "--target-action=promote", "restore"])
    srv = Server(dest, free_port(), sock, logfile=root / "pgbr-restored.log",
                 options={"archive_mode": "off"})
    srv.start(timeout=1800)
    srv.wait_ready(timeout=1800)
    took = time.perf_counter() - t0
    srv.stop()
    shutil.rmtree(dest)
    shutil.rmtree(sock)
    return took


def physical_rounds(a: argparse.Namespace, root: Path, c: pgc.Cluster, conf: str,
                    trees: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Backups then restores, ``a.rounds`` times each, the tools' order rotating per round."""
    names = [f"strongroom physical{' (' + k + ')' if len(trees) > 1 else ''}" for k in trees]
    tools = [*zip(names, trees.values(), strict=True), ("pgbackrest", None)]
    res: dict[str, dict[str, Any]] = {n: {"backup": [], "restore": []} for n, _ in tools}
    snaps: dict[str, tuple[str, str]] = {}
    for r in range(a.rounds):
        for name, tree in tools[r % len(tools):] + tools[:r % len(tools)]:
            settle()
            if tree is None:
                t, _ = timed(as_pg, ["pgbackrest", conf, "--stanza=bench", "--type=full",
                                     "backup"])
                newest = max((root / "pgbr-repo" / "backup" / "bench").glob("*F"))
                res[name]["stored_mb"] = du(newest) / 1e6  # the repository keeps two
            else:
                url = str(root / f"sr-repo-{names.index(name)}-{r}")
                Repository.init(url, password=PW).close()
                out = child(tree, "backup", url, c.dsn())
                t = out["s"]
                old = snaps.get(name)
                snaps[name] = (url, out["snap"])
                res[name]["stored_mb"] = du(Path(url)) / 1e6
                if old:
                    shutil.rmtree(old[0])
            res[name]["backup"].append(t)
            print(f"round {r + 1} {name} backup {t:.1f} s", flush=True)
    for r in range(a.rounds):
        for name, tree in tools[r % len(tools):] + tools[:r % len(tools)]:
            if tree is None:
                t = pgbr_restore(root, conf, str(r))
            else:
                url, snap_id = snaps[name]
                dest = root / f"sr-restored-{r}"
                settle()
                t = child(tree, snap_id, url, str(dest))["s"]
                shutil.rmtree(dest)
            res[name]["restore"].append(t)
            print(f"round {r + 1} {name} restore {t:.1f} s", flush=True)
    for name, _ in tools:
        res[name]["backup_s"] = median(res[name]["backup"])
        res[name]["restore_s"] = median(res[name]["restore"])
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=50)
    ap.add_argument("--random-mb", type=int, default=1024)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="scale 5, 100 MB: check the script")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--old-tree", type=Path, help="another checkout's strongroom, as 'old'")
    ap.add_argument("--physical-only", action="store_true", help="skip pg_dump and logical")
    ap.add_argument("--workdir", type=Path, help="keep (or reuse) the loaded cluster here")
    a = ap.parse_args()
    if a.quick:
        a.scale, a.random_mb = 5, 100
    here = Path(__file__).resolve().parent.parent
    trees = {"new": here, **({"old": a.old_tree.resolve()} if a.old_tree else {})}
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        if a.workdir:
            a.workdir.mkdir(parents=True, exist_ok=True)
            chown_tree(a.workdir, server_user_kwargs())
            root = a.workdir.resolve()
        else:
            root = stack.enter_context(pgc.workdir())
        c, pgbr_conf = load(a, root)
        conf = f"--config={pgbr_conf}"
        try:
            wait_archiver(c)
            size = c.sql("SELECT pg_database_size('postgres')")[0][0]
            print(f"database size {size / 1e6:.0f} MB", flush=True)
            results.update(physical_rounds(a, root, c, conf, trees))
            if not a.physical_only:
                results.update(verified_and_logical(a, root, c))
        finally:
            pgc.stop(c)
    base = results["pgbackrest"]
    print(f"\n{'tool':28} {'backup s':>9} {'restore s':>10} {'stored MB':>10}  vs pgBackRest")
    for tool, r in results.items():
        print(f"{tool:28} {r['backup_s']:9.1f} {r['restore_s']:10.1f} {r['stored_mb']:10.0f}  "
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
        {"scale": a.scale, "random_mb": a.random_mb, "jobs": a.jobs, "rounds": a.rounds,
         "results": results}, indent=2))


def verified_and_logical(a: argparse.Namespace, root: Path,
                         c: pgc.Cluster) -> dict[str, dict[str, Any]]:
    """One run each: a verified physical restore, pg_dump/pg_restore, strongroom logical."""
    results: dict[str, dict[str, Any]] = {}
    repo = Repository.init(str(root / "sr-repo-v"), password=PW)
    snap = backup_full(repo, c.dsn(), "main", checksums=False)
    t, _ = timed(restore_physical, repo, snap, root / "sr-verified",
                 options={"target": "immediate", "gx": "false"})
    results["strongroom physical verified"] = {"backup_s": float("nan"), "restore_s": t,
                                               "stored_mb": float("nan")}
    shutil.rmtree(root / "sr-verified")
    dump = root / "dump"
    t, _ = timed(run, [binary("pg_dump"), "-d", c.server.conninfo(), "-Fd", "-j",
                       str(a.jobs), "-f", str(dump)], timeout=7200)
    results["pg_dump -Fd"] = {"backup_s": t, "stored_mb": du(dump) / 1e6}
    c.sql("CREATE DATABASE dump_copy")
    t, _ = timed(run, [binary("pg_restore"), "-d", c.server.conninfo("dump_copy"),
                       "-j", str(a.jobs), str(dump)], timeout=7200)
    results["pg_dump -Fd"]["restore_s"] = t
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
    return results


if __name__ == "__main__":
    main()
