"""Point-in-time recovery through recover-database on a real PostgreSQL 15: the supervised WAL
replication flow (its own process, stopped by SIGTERM as a deployment is) archives the WAL and
copies it to the secondary, recover-database replays to a time and to an LSN (the commit just
before the target is there, the one after is not),
the restored cluster answers the smoke checks, and the post-mortem says how close it got."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support import pg_cluster as pgc

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not pgc.available(), reason="PostgreSQL 15 not installed")


@pytest.fixture(scope="module")
def site(prefect_harness) -> Iterator[dict[str, Any]]:  # noqa: F811
    import secrets

    from pydantic import SecretStr

    from blocks import PostgresSource, RepositoryKey, RepositoryTarget
    from flows.limits import ensure_limits

    tag = secrets.token_hex(3)
    with pgc.workdir() as root:
        url = pgc.make_repo(root)
        cluster = pgc.initdb(root / "primary")
        try:
            name = f"orders{tag}"
            PostgresSource(source_name=name, port=cluster.port, user="postgres",
                           password=SecretStr(pgc.SUPERUSER_PASSWORD),
                           restore_target=str(root / "restored")).save(name)
            ensure_limits([name])
            RepositoryTarget(url=url, role="primary",
                             key=RepositoryKey(password=pgc.REPO_PASSWORD)).save(f"p{tag}")
            RepositoryTarget(url=str(root / "secondary"), role="secondary",
                             key=RepositoryKey(password="second")).save(f"s{tag}")
            cluster.sql("CREATE TABLE marks (id serial PRIMARY KEY, label text NOT NULL, "
                        "at timestamptz NOT NULL DEFAULT clock_timestamp())")
            runner = start_replication(root, f"postgres/{name}", f"p{tag}", f"s{tag}")
            try:
                wait_for(lambda: cluster.sql("SELECT count(*) FROM pg_replication_slots "
                                             "WHERE active")[0][0] > 0,
                         "the WAL receiver to stream", runner)
                from tests.prefect.conftest import backup_one

                backup_one("full", f"postgres/{name}", primary=f"p{tag}")
                yield {"root": root, "cluster": cluster, "name": name,
                       "ref": f"postgres/{name}", "primary": f"p{tag}",
                       "secondary": f"s{tag}", "runner": runner}
            finally:
                if runner.poll() is None:
                    runner.kill()
                runner.wait()
        finally:
            pgc.stop(cluster)


def start_replication(root, ref: str, primary: str, secondary: str) -> subprocess.Popen:
    """The replication flow in its own process, as a deployment runs it: stopped by SIGTERM."""
    from prefect.settings import PREFECT_API_URL

    script = ("import sys; from flows.replication import wal_replication; "
              "wal_replication(sys.argv[1], primary=sys.argv[2], secondaries=[sys.argv[3]], "
              "copy_every_s=2, check_every_s=0.5, spool=sys.argv[4])")
    log = root / "replication.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, ref, primary, secondary, str(root / "spool")],
            cwd=ROOT, env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
            stdout=out, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def wait_for(cond: Callable[[], bool], what: str, runner: subprocess.Popen,
             deadline_s: float = 180) -> None:
    end = time.monotonic() + deadline_s
    while not cond():
        if runner.poll() is not None:
            raise AssertionError(f"replication ended early:\n{output(runner)[-3000:]}")
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


def output(runner: subprocess.Popen) -> str:
    return runner.log.read_text()  # type: ignore[attr-defined]


def mark(c: pgc.Cluster, label: str) -> None:
    c.sql("INSERT INTO marks (label) VALUES (%s)", params=(label,))


def restored_labels(datadir: str) -> list[str]:
    """Start the restored data directory on a private socket and read the marks."""
    from pathlib import Path

    from strongroom.sources.postgres.cluster import Server, free_port
    from strongroom.sources.postgres.pgbin import chown_tree, server_user_kwargs

    sock = Path(datadir).parent / f"sock-{Path(datadir).name}"
    sock.mkdir(exist_ok=True)
    chown_tree(sock, server_user_kwargs(Path(datadir)))
    server = Server(Path(datadir), free_port(), sock, version=pgc.VERSION,
                    logfile=Path(datadir).parent / f"{Path(datadir).name}.log",
                    options={"listen_addresses": "''", "archive_mode": "off"})
    server.start(timeout=120)
    try:
        with server.connect() as conn:
            return [r[0] for r in conn.execute("SELECT label FROM marks ORDER BY id")]
    finally:
        server.stop()


def test_replay_to_time_and_lsn_with_smoke_checks(site):
    from flows.recovery import recover_database
    from strongroom.sources.postgres import walstore

    c = site["cluster"]
    mark(c, "a1")
    time.sleep(0.3)
    target_time = c.sql("SELECT clock_timestamp()")[0][0]
    time.sleep(0.3)
    mark(c, "b1")
    mark(c, "a2")
    target_lsn = c.sql("SELECT pg_current_wal_lsn()::text")[0][0]
    mark(c, "b2")
    c.sql("SELECT pg_switch_wal()")
    seg_size = 1 << 20  # pgc.initdb's --wal-segsize=1
    target_seg = lsn_int(target_lsn) // seg_size
    runner = site["runner"]
    # the switched segment is stored on the primary as it completes, while streaming
    wait_for(lambda: any(seg >= target_seg for _tli, seg in walstore.WalCatalog.load(
        _open(site["primary"]), site["name"]).segments()), "the WAL on the primary", runner)
    runner.send_signal(signal.SIGTERM)  # stopping the deployment: the receiver stops cleanly
    runner.wait(timeout=120)
    log = output(runner)
    assert "stopped cleanly" in log, log[-3000:]
    assert "copying WAL to the secondary tier failed" not in log, log[-3000:]

    report = recover_database(
        site["ref"], target=str(site["root"] / "at-time"), from_target=site["primary"],
        at=target_time, fresh_backup=False,
        smoke_checks=[{"sql": "SELECT count(*) FROM marks WHERE label = 'a1'", "expect": 1}])
    result = report["results"][0]
    assert result["recovery_point"].startswith("replay to time")
    assert result["smoke"] == ["sql \"SELECT count(*) FROM marks WHERE label = 'a1'\": ok"]
    replayed = datetime.fromisoformat(result["restored"]["last_replayed_commit"])
    # PITR precision: the last replayed commit is the one just before the target time
    precision = (target_time - replayed).total_seconds()
    print(f"PITR precision (time): last commit replayed {precision:.3f} s before the target")
    assert 0 <= precision < 1.0
    assert restored_labels(str(site["root"] / "at-time")) == ["a1"]

    # the same from the secondary tier, to an LSN: the WAL got there by itself
    secondary = walstore.WalCatalog.load(_open(site["secondary"]), site["name"])
    assert secondary.segments(), "no WAL on the secondary tier"
    report = recover_database(site["ref"], target=str(site["root"] / "at-lsn"),
                              from_target=site["primary"], target_lsn=target_lsn,
                              fresh_backup=False)
    assert report["results"][0]["recovery_point"] == f"replay to lsn {target_lsn}"
    assert restored_labels(str(site["root"] / "at-lsn")) == ["a1", "b1", "a2"]


def lsn_int(lsn: str) -> int:
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def _open(target: str):
    from blocks.loading import load_target

    return load_target(target).open()
