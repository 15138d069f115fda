"""Helpers for the PostgreSQL tests: a running WAL receiver, waiting for the archive."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from strongroom.sources.postgres import walnames as wn
from strongroom.sources.postgres import walstore
from tests.support import pg_cluster as pgc


@contextlib.contextmanager
def receiver(cluster: pgc.Cluster, repo_url: str, root: Path, name: str = "main",
             dsn: str | None = None, **extra: str) -> Iterator[Any]:
    """``strongroom pg receive`` in a subprocess; yields a handle with .status()."""
    status = root / f"{name}-receiver.json"
    args = ["pg", "receive", "--dsn", dsn or cluster.nopw_dsn(pgc.REPL_USER), "--name", name,
            "--spool", str(root / f"{name}-spool"), "--status-file", str(status),
            "--status-interval", "0.5"]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", v]
    proc = pgc.sr_popen(repo_url, *args, env={"PGPASSWORD": pgc.REPL_PASSWORD},
                        log=root / f"{name}-receiver.log")

    class Handle:
        def __init__(self) -> None:
            self.proc = proc
            self.log = root / f"{name}-receiver.log"

        def status(self) -> dict[str, Any]:
            try:
                return json.loads(status.read_text())
            except (OSError, ValueError):
                return {}

        def wait(self, cond: Any, timeout: float = 60, what: str = "") -> dict[str, Any]:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                st = self.status()
                if st and cond(st):
                    return st
                if proc.poll() is not None:
                    raise AssertionError(f"receiver exited: {self.log.read_text()[-2000:]}")
                time.sleep(0.2)
            raise AssertionError(f"receiver: timed out waiting for {what}: {self.status()}")

        def stop(self) -> None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(60)
                except Exception:  # noqa: BLE001
                    proc.kill()
                    proc.wait()

    handle = Handle()
    try:
        handle.wait(lambda s: s.get("received_lsn"), what="streaming")
        yield handle
    finally:
        handle.stop()


def wait_archived(repo_url: str, name: str, lsn: str, timeout: float = 60,
                  tli: int | None = None) -> None:
    """Until the segment holding ``lsn`` is archived (complete), on ``tli`` if given."""
    deadline = time.monotonic() + timeout
    target = wn.parse_lsn(lsn)
    while time.monotonic() < deadline:
        repo = pgc.open_repo(repo_url)
        catalog = walstore.WalCatalog.load(repo, name)
        seg = catalog.seg_size or 1 << 20
        want = target // seg
        if any(s >= want and tli in (None, t) for (t, s) in catalog.segments()):
            return
        time.sleep(0.3)
    raise AssertionError(f"segment with {lsn} not archived within {timeout} s")


def restored_labels(report: dict[str, Any], table: str = "marks") -> set[str]:
    """Labels in the restored cluster left running by ``keep_running``."""
    import psycopg

    srv = report["server"]
    with psycopg.connect(host=srv["socket_dir"], port=srv["port"], user="postgres",
                         dbname="postgres", autocommit=True) as conn:
        return {r[0] for r in conn.execute(f"SELECT label FROM {table}").fetchall()}


def stop_restored(report: dict[str, Any]) -> None:
    import shutil

    from strongroom.sources.postgres.cluster import Server

    srv = report.get("server")
    if srv:
        Server(Path(report["datadir"]), srv["port"], Path(srv["socket_dir"])).stop("fast")
        shutil.rmtree(srv["work_dir"], ignore_errors=True)


def drop_wal_file(repo: Any, name: str, fname: str) -> None:
    """Delete one archived WAL file: rewrite its snapshot without it (other files' content
    reused), then remove the original; the damage a lost object would do."""
    catalog = walstore.WalCatalog.load(repo, name)
    snap = catalog.files[fname].snapshot
    wal = dict(snap.meta["wal"])
    keep = [f for f in wal["files"] if f[0] != fname]
    if keep:
        reader = repo.reader(snap)
        with repo.writer(walstore.wal_source(name), walstore.KIND, kind="snapshot",
                         tags=["wal"]) as w:
            for f in keep:
                w.add_node(f"wal/{f[0]}", reader.node(f"wal/{f[0]}"))
            w.set_meta({"wal": {**wal, "files": keep}})
            w.commit()
    repo.remove_snapshot(snap)
