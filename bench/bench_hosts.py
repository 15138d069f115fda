"""Many hosts benchmark: work-pool backups and concurrent writers into one S3 repository.

Not a test. Two parts, both against moto's S3 server on loopback:
  hosts    a real Prefect server, a process work pool and three workers (one queue per host):
           one host's backup alone, then the three hosts' backups at once (each into a fresh
           repository); wall time from trigger to completion and the flow runs' own durations.
  writers  N engine backups at once (processes, no Prefect), each its own files tree, into one
           repository: per-writer time, failures (lock, index), then a full verify.
Usage:
    python3 bench/bench_hosts.py [--parts hosts,writers] [--mib 16] [--writers 1,10,30]
Prints a table per part and writes bench/work/hosts.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOSTS = ("host-a", "host-b", "host-c")


def make_data(root: Path, mib: float, files: int = 40) -> Path:
    """``mib`` MiB of incompressible data in ``files`` files over a few directories."""
    root.mkdir(parents=True, exist_ok=True)
    size = int(mib * 2**20 / files)
    for i in range(files):
        sub = root / f"d{i % 4}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.bin").write_bytes(os.urandom(size))
    return root


def bench_hosts(work: Path, endpoint: str, mib: float) -> dict[str, Any]:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks.loading import load_target
    from tests.support.moto_server import s3_client
    from tests.workpool.cluster import BUCKET, Cluster, platform_file, wait_runs

    s3_client(endpoint).create_bucket(Bucket=BUCKET)
    trees = {h: make_data(work / h / "data", mib) for h in HOSTS}
    config = platform_file(work / "platform.yaml", endpoint, trees, prefix="together")
    text = config.read_text().replace(  # a second, empty repository for the lone run
        "targets:\n", f"targets:\n  alone:\n    url: s3://{BUCKET}/alone\n    role: tertiary\n"
        f"    key: main\n    endpoint_url: {endpoint}\n    region: us-east-1\n"
        "    access_key_id: test\n    secret_access_key: test\n", 1)
    config.write_text(text)
    cluster = Cluster(work / "cluster")
    try:
        cluster.start_server()
        cluster.deploy(config)
        for h in HOSTS:
            cluster.start_worker(h)
        with temporary_settings({PREFECT_API_URL: cluster.api}):
            cluster.wait_workers()
            for target in ("alone", "primary"):
                load_target(target).open(create=True)

            def run(hosts: tuple[str, ...], primary: str) -> dict[str, Any]:
                started = time.monotonic()
                ids = [run_deployment(f"backup-incremental/daily-incremental@{h}", timeout=0,
                                      parameters={"primary": primary}).id for h in hosts]
                runs = wait_runs(ids, 900)
                wall = time.monotonic() - started
                bad = [r.name for r in runs if not r.state.is_completed()]
                if bad:
                    raise SystemExit(f"backups failed: {bad}")
                durations = [(r.end_time - r.start_time).total_seconds() for r in runs]
                return {"hosts": len(hosts), "wall_s": round(wall, 1),
                        "flow_run_s_max": round(max(durations), 1),
                        "flow_run_s_mean": round(sum(durations) / len(durations), 1)}

            alone = run(("host-a",), "alone")
            together = run(HOSTS, "primary")
    finally:
        cluster.stop()
    return {"mib_per_host": mib, "alone": alone, "together": together}


def _writer(args: tuple[str, str, str, str, Any, Any]) -> dict[str, Any]:
    url, endpoint, name, data, barrier, _ = args
    from strongroom.repository import Repository
    from strongroom.sources import registry

    options = {"endpoint": endpoint, "region": "us-east-1", "access_key_id": "test",
               "secret_access_key": "test"}
    repo = Repository.open(url, password="pw-bench", options=options)  # key unwrap: not timed
    barrier.wait()
    started = time.monotonic()
    try:
        snap = registry.get("files").backup(repo, name=name, kind="full", tags=["bench"],
                                            settings={"paths": [data]})
        return {"ok": True, "s": time.monotonic() - started, "snapshot": snap.id}
    except Exception as exc:  # noqa: BLE001 - a benchmark reports every failure
        return {"ok": False, "s": time.monotonic() - started,
                "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}


def bench_writers(work: Path, endpoint: str, counts: list[int], mib: float) -> list[dict]:
    from strongroom.repository import Repository
    from strongroom.repository.verify import verify
    from tests.support.moto_server import s3_client

    bucket = "writers"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    options = {"endpoint": endpoint, "region": "us-east-1", "access_key_id": "test",
               "secret_access_key": "test"}
    ctx = mp.get_context("fork")
    rows = []
    for n in counts:
        url = f"s3://{bucket}/n{n}"
        Repository.init(url, password="pw-bench", options=options).close()
        trees = [str(make_data(work / f"w{n}" / f"t{i}", mib, files=20)) for i in range(n)]
        barrier = ctx.Manager().Barrier(n)
        started = time.monotonic()
        with ctx.Pool(n) as pool:
            results = pool.map(_writer, [(url, endpoint, f"writer-{i}", trees[i], barrier, None)
                                         for i in range(n)])
        wall = time.monotonic() - started
        repo = Repository.open(url, password="pw-bench", options=options)
        report = verify(repo, read_data=True)
        snaps = len(repo.list_snapshots())
        repo.close()
        times = sorted(r["s"] for r in results)
        rows.append({"writers": n, "wall_s": round(wall, 1),
                     "writer_s_median": round(times[len(times) // 2], 1),
                     "writer_s_max": round(times[-1], 1),
                     "failed": sum(not r["ok"] for r in results),
                     "errors": sorted({r["error"] for r in results if not r["ok"]}),
                     "snapshots": snaps, "verify_ok": report.ok,
                     "verify_errors": report.errors[:3]})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="hosts,writers")
    parser.add_argument("--mib", type=float, default=16.0, help="MiB per host tree")
    parser.add_argument("--writers", default="1,10,30")
    parser.add_argument("--writer-mib", type=float, default=2.0, help="MiB per writer tree")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work")
    args = parser.parse_args()
    import logging

    from tests.support.moto_server import moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    args.work.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=args.work) as tmp, moto_server() as endpoint:
        if "hosts" in parts:
            out["hosts"] = bench_hosts(Path(tmp) / "hosts", endpoint, args.mib)
            h = out["hosts"]
            print(f"\nhosts ({args.mib:g} MiB each)  wall s  flow run s (max / mean)")
            for label in ("alone", "together"):
                r = h[label]
                print(f"  {r['hosts']} host(s)          {r['wall_s']:6.1f}  "
                      f"{r['flow_run_s_max']:.1f} / {r['flow_run_s_mean']:.1f}")
        if "writers" in parts:
            counts = [int(n) for n in args.writers.split(",")]
            out["writers"] = bench_writers(Path(tmp) / "writers", endpoint, counts,
                                           args.writer_mib)
            print(f"\nwriters ({args.writer_mib:g} MiB each)  wall s  median s  max s  "
                  "failed  snapshots  verify")
            for r in out["writers"]:
                print(f"  {r['writers']:>3}                {r['wall_s']:6.1f}  "
                      f"{r['writer_s_median']:8.1f}  {r['writer_s_max']:5.1f}  "
                      f"{r['failed']:6}  {r['snapshots']:9}  "
                      f"{'ok' if r['verify_ok'] else 'FAIL'}")
                for err in r["errors"] + r["verify_errors"]:
                    print(f"      {err}")
    (args.work / "hosts.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
