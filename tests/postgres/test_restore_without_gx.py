"""A default install (no great_expectations, no sqlalchemy: the orchestration extra) restores
and verifies what it backs up with the engine's own checks; ``gx=true`` without GX stops
before the restore changes anything, naming the extra to install."""

from __future__ import annotations

import json
import os
from pathlib import Path

from strongroom.sources.postgres.logical import backup_logical
from tests.support import pg_cluster as pgc

# Imported by the interpreter at start-up (PYTHONPATH): makes the optional modules unimportable,
# as in an environment where they were never installed.
BLOCK = """import sys
for _name in ("great_expectations", "sqlalchemy"):
    sys.modules[_name] = None
"""


def _without_gx(tmp: Path) -> dict[str, str]:
    shim = tmp / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(BLOCK)
    path = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "PGPASSWORD": pgc.SUPERUSER_PASSWORD}


def test_logical_restore_without_gx(plain_cluster: pgc.Cluster, pg_root: Path) -> None:
    c = plain_cluster
    c.sql("CREATE DATABASE shop")
    c.sql("CREATE TABLE items (id bigint PRIMARY KEY, name text)", dbname="shop")
    c.sql("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g",
          dbname="shop")
    url = pgc.make_repo(pg_root)
    repo = pgc.open_repo(url)
    snap = backup_logical(repo, c.dsn(), "shop-logical", dbs=["shop"], jobs=1)
    repo.close()
    env = _without_gx(pg_root)
    target = c.nopw_dsn(dbname="shop_copy")

    # the shim works: the interpreter the CLI runs in cannot import either module
    probe = pgc.sr(url, "--version", env=env, check=False)
    assert "great_expectations" not in probe.stderr

    proc = pgc.sr(url, "restore", snap.id[:12], "--target", target, "--json", env=env)
    report = json.loads(proc.stdout)
    ver = report["verification"]
    assert ver["compared"]["ok"] and ver["structure"]["ok"]
    assert "not installed" in ver["great_expectations"]["skipped"]
    assert "strongroom[orchestration]" in ver["great_expectations"]["skipped"]
    assert c.sql("SELECT count(*) FROM items", dbname="shop_copy")[0][0] == 500

    # gx=true: refused before the existing database is dropped, naming the extra
    c.sql("INSERT INTO items VALUES (1000, 'kept')", dbname="shop_copy")
    proc = pgc.sr(url, "restore", snap.id[:12], "--target", target, "--replace",
                  "--restore-option", "gx=true", env=env, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "pip install 'strongroom[orchestration]'" in proc.stderr
    assert c.sql("SELECT count(*) FROM items", dbname="shop_copy")[0][0] == 501  # untouched


def test_gx_option_is_checked_before_anything_changes(monkeypatch) -> None:
    import sys

    import pytest

    from strongroom.errors import ConfigError
    from strongroom.sources.postgres.verify import gx_choice

    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    assert gx_choice({}) is False and gx_choice({"gx": "auto"}) is False
    assert gx_choice({"gx": "false"}) is False
    with pytest.raises(ConfigError, match=r"needs sqlalchemy.*strongroom\[orchestration\]"):
        gx_choice({"gx": "true"})
    with pytest.raises(ConfigError, match="use auto, true or false"):
        gx_choice({"gx": "maybe"})
