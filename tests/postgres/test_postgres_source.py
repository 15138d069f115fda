"""The postgres kind as the Source contract sees it: registry entry, a light package import,
and which failures are SourceUnreachable (retried) rather than SourceError (not)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from strongroom.errors import SourceError, SourceUnreachable
from strongroom.sources import registry
from strongroom.sources.postgres import faults
from strongroom.sources.postgres.cluster import free_port
from strongroom.sources.postgres.conn import Dsn, connect_error, reports_lost_connection
from tests.support import pg_cluster as pgc


def test_registry_entry() -> None:
    source = registry.get("postgres")
    assert source.kind == "postgres" and "postgres" in registry.kinds()
    assert source.default_class == "database" and source.progress_unit == "none"
    assert source.tools == ("pg_ctl", "pg_restore")
    assert source.is_transient(SourceUnreachable("x")) and not source.is_transient(
        SourceError("x"))


def test_package_import_loads_no_driver() -> None:
    code = ("import sys, strongroom.sources.postgres as p; "
            "assert 'psycopg' not in sys.modules, 'psycopg loaded'; print(p.SOURCE.kind)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "postgres"


@pytest.mark.parametrize("text", [
    'connection to server at "127.0.0.1", port 1 failed: Connection refused',
    "FATAL:  the database system is starting up",
    "FATAL:  the database system is shutting down",
    "FATAL:  the database system is in recovery mode",
    "server closed the connection unexpectedly",
    "timeout expired",
])
def test_down_or_restarting_server_is_unreachable(text: str) -> None:
    dsn = Dsn.parse("host=db.example port=5432 user=app password=s3cret")
    err = connect_error(psycopg.OperationalError(text), dsn)
    assert isinstance(err, SourceUnreachable), str(err)
    assert "s3cret" not in str(err) and "\n" not in str(err)
    assert isinstance(faults.source_error("pg_dump failed: x", text), SourceUnreachable)


@pytest.mark.parametrize("text", [
    'FATAL:  password authentication failed for user "app"',
    'FATAL:  database "nope" does not exist',
])
def test_refusal_is_not_unreachable(text: str) -> None:
    dsn = Dsn.parse("host=db.example port=5432 user=app")
    assert not isinstance(connect_error(psycopg.OperationalError(text), dsn),
                          SourceUnreachable)
    assert not isinstance(faults.source_error("pg_dump failed: x", text), SourceUnreachable)


def test_tool_failure_unrelated_to_the_server_is_not_unreachable() -> None:
    text = 'pg_restore: error: could not open input file "x": No such file or directory'
    assert not isinstance(faults.source_error("pg_restore failed: x", text),
                          SourceUnreachable)


def test_closed_port_is_unreachable() -> None:
    dsn = Dsn.parse(f"host=127.0.0.1 port={free_port()} user=x dbname=y connect_timeout=3")
    with pytest.raises(SourceUnreachable, match="^cannot reach PostgreSQL at x@127.0.0.1"):
        dsn.connect()


def test_connection_lost_mid_session_is_unreachable(plain_cluster: pgc.Cluster) -> None:
    @reports_lost_connection
    def query_across_a_shutdown() -> None:
        with Dsn.parse(plain_cluster.dsn()).connect() as conn:
            conn.execute("SELECT 1")
            pgc.stop(plain_cluster)
            conn.execute("SELECT 1")

    with pytest.raises(SourceUnreachable, match="^lost the connection to PostgreSQL") as exc:
        query_across_a_shutdown()
    assert pgc.SUPERUSER_PASSWORD not in str(exc.value)
