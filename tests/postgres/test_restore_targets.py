"""The postgres kind's restore targets before a recovery writes: the kind of target a source's
snapshots need, room on the file system, the safety snapshot of a database about to be dropped,
and where a recovery that names no target restores."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from strongroom.errors import ConfigError, TargetNotEmpty, TargetTooSmall
from strongroom.sources import registry
from strongroom.sources.postgres.physical import backup_full
from tests.support import pg_cluster as pgc

PG = registry.get("postgres")
PHYSICAL = {"method": "physical", "host": "db.example", "port": 5432}
LOGICAL = {"method": "logical", "snapshot_method": "logical"}


@pytest.mark.parametrize("target", ["host=127.0.0.1 dbname=app password=s3cret",
                                    "postgresql://app:s3cret@127.0.0.1/app"])
def test_physical_source_refuses_a_dsn_target(target: str) -> None:
    with pytest.raises(ConfigError, match="postgres source at db.example:5432 takes physical"
                       ) as exc:
        PG.check_target(target, settings=PHYSICAL, replace=True, size=1)
    assert "s3cret" not in str(exc.value) and exc.value.exit_code == 2


def test_physical_target_must_be_an_absolute_path() -> None:
    with pytest.raises(ConfigError, match="must be an absolute data directory path"):
        PG.check_target("pgdata", settings=PHYSICAL, replace=False, size=1)


def test_logical_source_refuses_a_directory_target(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="takes logical backups"):
        PG.check_target(str(tmp_path), settings=LOGICAL, replace=False, size=1)


def test_too_small_file_system_is_refused_with_figures(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    size = free * 10
    with pytest.raises(TargetTooSmall) as exc:
        PG.check_target(str(tmp_path / "new" / "data"), settings=PHYSICAL, replace=False,
                        size=size)
    message = str(exc.value)
    assert exc.value.exit_code == 20 and f"{size} bytes of snapshot + 10%" in message
    assert "free (" in message and "\n" not in message
    notes = PG.check_target(str(tmp_path / "new" / "data"), settings=PHYSICAL, replace=False,
                            size=1 << 20)
    assert any("free for" in n for n in notes), notes


def test_non_empty_directory_needs_replace(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "PG_VERSION").write_text("15\n")
    with pytest.raises(TargetNotEmpty, match="data.before-restore-<time>"):
        PG.check_target(str(tmp_path / "data"), settings=PHYSICAL, replace=False, size=1)
    with pytest.raises(TargetNotEmpty):
        PG.safety_backup(None, name="main", target=str(tmp_path / "data"), replace=False,
                         settings=PHYSICAL)
    # the restore keeps the old directory beside it: no safety snapshot to take
    assert PG.safety_backup(None, name="main", target=str(tmp_path / "data"), replace=True,
                            settings=PHYSICAL) is None


def test_in_place_target_from_the_block() -> None:
    from blocks.sources import PostgresSource

    block = PostgresSource(source_name="orders", data_directory="/srv/pg/15/main")
    assert PG.in_place_target(block.settings()) == "/srv/pg/15/main"
    assert PG.in_place_target(PostgresSource(source_name="orders").settings()) is None
    logical = PostgresSource(source_name="orders", method="logical", database="shop",
                             host="db.example", port=5433, password="s3cret")
    dsn = PG.in_place_target(logical.settings())
    assert dsn == "host=db.example port=5433 user=postgres dbname=shop"


def test_physical_backup_records_the_data_directory(plain_cluster: pgc.Cluster,
                                                    pg_root: Path) -> None:
    repo = pgc.open_repo(pgc.make_repo(pg_root))
    snap = backup_full(repo, plain_cluster.dsn(), "main")
    assert snap.meta["postgres"]["data_directory"] == str(plain_cluster.datadir)


def test_safety_snapshot_of_the_target_database(plain_cluster: pgc.Cluster,
                                                pg_root: Path) -> None:
    c = plain_cluster
    c.sql("CREATE DATABASE shop")
    c.sql("CREATE TABLE items (id int PRIMARY KEY, name text)", dbname="shop")
    c.sql("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g",
          dbname="shop")
    repo = pgc.open_repo(pgc.make_repo(pg_root))
    settings = {**LOGICAL, "password": pgc.SUPERUSER_PASSWORD}
    target = f"host=127.0.0.1 port={c.port} user=postgres dbname=shop"

    with pytest.raises(TargetNotEmpty, match="'shop' already exists"):
        PG.check_target(target, settings=settings, replace=False, size=1)
    assert PG.check_target(target, settings=settings, replace=True, size=1)
    with pytest.raises(TargetNotEmpty):
        PG.safety_backup(repo, name="main", target=target, replace=False, settings=settings)

    snap = PG.safety_backup(repo, name="main", target=target, replace=True, settings=settings)
    assert snap is not None and snap.source_name == "main-safety"
    assert {"safety", "pre-restore"} <= set(snap.tags)
    assert sorted(snap.meta["postgres"]["databases"]) == ["shop"]
    assert snap.meta["postgres"]["databases"]["shop"]["tables"]["public.items"]["rows"] == 50

    missing = target.replace("dbname=shop", "dbname=nothere")
    assert PG.safety_backup(repo, name="main", target=missing, replace=True,
                            settings=settings) is None
    with pytest.raises(ConfigError, match="must name the database"):
        PG.safety_backup(repo, name="main", target=f"host=127.0.0.1 port={c.port}",
                         replace=True, settings=settings)
