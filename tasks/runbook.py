"""Runbook helpers of the recovery stages: stop the service, settings of the target about to be
overwritten, smoke checks of a restored system, and the per-source runbook the platform file
registers (Prefect Variable ``strongroom_runbook``: source ref -> {stop_service, smoke})."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

from strongroom.errors import ConfigError, IntegrityError, SourceError
from strongroom.sources import registry

RUNBOOK_VARIABLE = "strongroom_runbook"
SMOKE_KINDS = ("sql", "cypher", "redis_key", "http")


def runbook_for(source: str) -> dict[str, Any]:
    """The platform file's runbook entry of ``source`` (empty when none was registered)."""
    from prefect.variables import Variable

    book = Variable.get(RUNBOOK_VARIABLE, default=None)
    entry = book.get(source) if isinstance(book, dict) else None
    return dict(entry) if isinstance(entry, dict) else {}


def stop_service(command: str, dest: str) -> str:
    """Run the configured stop command; ``pg_ctl`` alone stops the managed cluster whose data
    directory is ``dest`` (as the directory's owner): a ``postmaster.pid`` whose process is
    gone, or is not that directory's postmaster, is a crashed server, reported, not stopped.
    One line saying what was done."""
    if command.strip() == "pg_ctl":
        from strongroom.sources.postgres.cluster import read_pidfile
        from strongroom.sources.postgres.pgbin import binary, run, server_user_kwargs

        datadir = Path(dest)
        pidfile = read_pidfile(datadir)
        if not pidfile.live:  # none, or a crashed server's: pg_ctl stop would fail
            return pidfile.describe()
        version = int((datadir / "PG_VERSION").read_text().strip())
        run([binary("pg_ctl", version), "stop", "-D", str(datadir), "-m", "fast", "-w",
             "-t", "120"], timeout=180, **server_user_kwargs(datadir))
        return f"pg_ctl stop -D {datadir} (fast)"
    return _run_command("stop", command)


def _run_command(what: str, command: str) -> str:
    """Run an operator's stop or start command; SourceError with its last line if it fails."""
    argv = shlex.split(command)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"{what} command {argv[0]} failed: {exc}") from None
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        raise SourceError(f"{what} command {argv[0]} exited {proc.returncode}: "
                          f"{last[-1][:200] if last else 'no output'}")
    return f"ran {argv[0]}"


def start_service(command: str, dest: str) -> str:
    """Run the configured start command (after a recovery stopped with nothing overwritten);
    ``pg_ctl`` alone starts the managed cluster whose data directory is ``dest`` (as the
    directory's owner). One line saying what was done."""
    if command.strip() == "pg_ctl":
        from strongroom.sources.postgres.pgbin import binary, run, server_user_kwargs

        datadir = Path(dest)
        version = int((datadir / "PG_VERSION").read_text().strip())
        run([binary("pg_ctl", version), "start", "-D", str(datadir), "-w", "-t", "120",
             "-l", str(datadir / "strongroom-start.log")], timeout=180,
            **server_user_kwargs(datadir))
        return f"pg_ctl start -D {datadir}"
    return _run_command("start", command)

def target_settings(kind: str, settings: dict[str, Any], dest: str) -> dict[str, Any] | None:
    """The source's settings pointed at ``dest`` (a URL or DSN), so a snapshot taken with them
    is of the target about to be overwritten; None when ``dest`` says nothing usable. The kind
    decides (``Source.settings_for_target``): no list of URL schemes here."""
    return registry.get(kind).settings_for_target(dict(settings), dest)


def kept_server(report: dict[str, Any]) -> dict[str, Any] | None:
    """The restored PostgreSQL server a restore left running (keep_running), if any."""
    server = report.get("server")
    return server if isinstance(server, dict) and server.get("port") else None


def stop_kept_server(report: dict[str, Any]) -> None:
    """Stop a server kept running only for the smoke checks; remove its work directory."""
    import shutil

    from strongroom.sources.postgres.cluster import read_pidfile
    from strongroom.sources.postgres.pgbin import binary, run, server_user_kwargs

    datadir = Path(str(report.get("datadir")))
    if read_pidfile(datadir).live:
        version = int((datadir / "PG_VERSION").read_text().strip())
        run([binary("pg_ctl", version), "stop", "-D", str(datadir), "-m", "fast", "-w"],
            timeout=180, check=False, **server_user_kwargs(datadir))
    work = (report.get("server") or {}).get("work_dir")
    if work:
        shutil.rmtree(work, ignore_errors=True)


def smoke_checks(checks: list[dict[str, Any]], dest: str, restore_report: dict[str, Any],
                 login: dict[str, Any]) -> list[str]:
    """Run each check against the restored system; one line per check passed. IntegrityError
    on the first that fails (it names the check).

    Checks: ``{"sql": query, "expect": rows-or-value, "database": db}``, ``{"cypher": query,
    "expect": value}``, ``{"redis_key": key, "expect": value, "db": n}`` (``expect`` omitted:
    the key must exist), ``{"http": url}`` (must answer 200)."""
    done = []
    for i, check in enumerate(checks):
        kinds = [k for k in SMOKE_KINDS if k in check]
        if len(kinds) != 1:
            raise ConfigError(f"smoke check {i + 1} must have exactly one of "
                              f"{', '.join(SMOKE_KINDS)}")
        kind = kinds[0]
        got = _RUNNERS[kind](check, dest, restore_report, login)
        label = f"{kind} {str(check[kind])[:60]!r}"
        if "expect" in check and not _same(got, check["expect"]):
            raise IntegrityError(f"smoke check {label} gave {str(got)[:100]!r}, expected "
                                 f"{str(check['expect'])[:100]!r}")
        done.append(f"{label}: ok")
    return done


def _same(got: Any, expect: Any) -> bool:
    if got == expect:
        return True
    if isinstance(got, list) and len(got) == 1:  # one row of one value
        row = got[0]
        if isinstance(row, (list, tuple)) and len(row) == 1:
            return _same(row[0], expect)
    return str(got) == str(expect)


def _sql(check: dict[str, Any], dest: str, report: dict[str, Any],
         login: dict[str, Any]) -> Any:
    import psycopg

    server = kept_server(report)
    if server:
        conninfo = (f"host={server['socket_dir']} port={server['port']} user=postgres "
                    f"dbname={check.get('database', 'postgres')}")
        password = None
    else:
        from strongroom.sources.postgres.conn import Dsn

        dsn = Dsn.parse(dest)
        if check.get("database"):
            dsn = dsn.with_db(check["database"])
        conninfo, password = dsn.conninfo, login.get("password") or dsn.password
    try:
        with psycopg.connect(conninfo, password=password, connect_timeout=30) as conn:
            rows = conn.execute(check["sql"]).fetchall()
    except psycopg.Error as exc:
        raise IntegrityError(f"smoke check sql {check['sql'][:60]!r} failed: "
                             f"{str(exc).strip().splitlines()[0][:200]}") from None
    return [list(r) for r in rows]


def _cypher(check: dict[str, Any], dest: str, report: dict[str, Any],
            login: dict[str, Any]) -> Any:
    import neo4j

    auth = (login["user"], login.get("password") or "") if login.get("user") else None
    try:
        with neo4j.GraphDatabase.driver(dest, auth=auth) as driver:
            records, _, _ = driver.execute_query(check["cypher"],
                                                 database_=check.get("database") or None)
    except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise IntegrityError(f"smoke check cypher {check['cypher'][:60]!r} failed: "
                             f"{message.strip().splitlines()[0][:200]}") from None
    return [list(r.values()) for r in records]


def _redis_key(check: dict[str, Any], dest: str, report: dict[str, Any],
               login: dict[str, Any]) -> Any:
    import redis

    client = redis.Redis.from_url(dest, db=int(check.get("db", 0)),
                                  username=login.get("username"),
                                  password=login.get("password"), socket_timeout=30)
    try:
        value = client.get(check["redis_key"]) if client.type(check["redis_key"]) == \
            b"string" else None
        if not client.exists(check["redis_key"]):
            raise IntegrityError(f"smoke check redis_key {check['redis_key']!r}: no such key")
    finally:
        client.close()
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _http(check: dict[str, Any], dest: str, report: dict[str, Any],
          login: dict[str, Any]) -> Any:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(check["http"], timeout=30) as resp:  # noqa: S310
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        raise IntegrityError(f"smoke check http {check['http']!r}: {exc}") from None
    if status != 200:
        raise IntegrityError(f"smoke check http {check['http']!r} answered {status}, not 200")
    return status


_RUNNERS = {"sql": _sql, "cypher": _cypher, "redis_key": _redis_key, "http": _http}
