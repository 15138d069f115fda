"""Connections: DSNs without secrets on command lines, clear errors, server facts."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from strongroom.errors import ConfigError, SourceError, SourceUnreachable
from strongroom.sources.postgres.faults import connection_lost, first_line, unreachable_text

P = ParamSpec("P")
R = TypeVar("R")

CONNECT_TIMEOUT = 10


@dataclass
class Dsn:
    """A libpq connection string split into its public part and its password.

    The password (from the DSN, ``PGPASSWORD`` or ``.pgpass``) reaches child processes only
    through their environment, never their argument list, logs or error messages.
    """

    params: dict[str, Any]
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, dsn: str | Dsn) -> Dsn:
        if isinstance(dsn, Dsn):
            return dsn
        try:
            params = conninfo_to_dict(dsn or "")
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"invalid PostgreSQL DSN: {exc}") from None
        password = params.pop("password", None)
        return cls({k: v for k, v in params.items() if v is not None}, password)

    def with_db(self, dbname: str) -> Dsn:
        return Dsn({**self.params, "dbname": dbname}, self.password)

    @property
    def conninfo(self) -> str:
        """The DSN without password (safe for argv)."""
        return make_conninfo("", **self.params)

    @property
    def where(self) -> str:
        host = self.params.get("host") or os.environ.get("PGHOST") or "local socket"
        port = self.params.get("port") or os.environ.get("PGPORT") or "5432"
        user = self.params.get("user") or os.environ.get("PGUSER") or ""
        return f"{user + '@' if user else ''}{host}:{port}"

    @property
    def dbname(self) -> str:
        return str(self.params.get("dbname") or os.environ.get("PGDATABASE") or "postgres")

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a libpq child process (PGPASSWORD only when the DSN had one)."""
        env = dict(os.environ if base is None else base)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        env.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT))
        return env

    def connect(self, dbname: str | None = None, autocommit: bool = True,
                **kwargs: Any) -> psycopg.Connection[Any]:
        params = dict(self.params)
        if dbname:
            params["dbname"] = dbname
        elif "dbname" not in params and not os.environ.get("PGDATABASE"):
            params["dbname"] = "postgres"  # not libpq's default (the user's name)
        params.setdefault("connect_timeout", CONNECT_TIMEOUT)
        if self.password is not None:
            params["password"] = self.password
        try:
            return psycopg.connect(autocommit=autocommit, **params, **kwargs)
        except psycopg.OperationalError as exc:
            raise connect_error(exc, self) from None


def connect_error(exc: Exception, dsn: Dsn) -> SourceError:
    """The engine error for a failed connection: SourceUnreachable when the server is down,
    out of reach or restarting; SourceError when it refused us (password, database)."""
    message = explain_connect_error(exc, dsn)
    if message.startswith("authentication failed"):
        return SourceError(message)
    if message.startswith("cannot reach ") or unreachable_text(str(exc)):
        return SourceUnreachable(message)
    return SourceError(message)


def reports_lost_connection(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a function that talks to a server: a connection lost or refused in the middle
    of it (server stopped, crashed, restarting) becomes a one-line SourceUnreachable."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except psycopg.OperationalError as exc:
            if not connection_lost(exc):
                raise
            raise SourceUnreachable(f"lost the connection to PostgreSQL{_where(exc)}: "
                                    f"{first_line(exc)}") from None

    return wrapper


def _where(exc: psycopg.Error) -> str:
    """" at host:port" of the connection an error came from, when psycopg knows it."""
    pgconn = getattr(exc, "pgconn", None)
    try:
        host, port = pgconn.host.decode(), pgconn.port.decode()  # type: ignore[union-attr]
    except (AttributeError, UnicodeDecodeError, psycopg.Error):
        return ""
    return f" at {host}:{port}" if host else ""


def explain_connect_error(exc: Exception, dsn: Dsn) -> str:
    """One line saying why a connection failed, naming the server but no secret."""
    text = str(exc).strip().splitlines()
    detail = next((ln for ln in text if "FATAL" in ln or "error" in ln.lower()),
                  text[-1] if text else "")
    low = str(exc).lower()
    if "password authentication failed" in low or "no password supplied" in low:
        return f"authentication failed for PostgreSQL {dsn.where} (wrong or missing password)"
    if "connection refused" in low or "no such file" in low or "timeout expired" in low \
            or "could not translate host" in low or "network is unreachable" in low:
        return f"cannot reach PostgreSQL at {dsn.where} (server down or unreachable)"
    if "does not exist" in low and "database" in low:
        return f"PostgreSQL {dsn.where}: {detail.split('FATAL:')[-1].strip()}"
    detail = detail.split("FATAL:")[-1].strip()
    return f"cannot connect to PostgreSQL {dsn.where}: {detail}"


@dataclass
class ServerInfo:
    version: int  # server_version_num // 10000
    version_num: int
    system_id: str
    timeline: int
    wal_level: str
    max_wal_senders: int
    wal_segment_size: int
    in_recovery: bool
    archive_mode: str
    data_directory: str | None

    def require_physical(self, where: str) -> None:
        """Physical backups and WAL streaming need wal_level replica (or logical)."""
        if self.wal_level not in ("replica", "logical"):
            raise SourceError(f"PostgreSQL {where} has wal_level={self.wal_level}: physical "
                              "backups and WAL archiving need wal_level=replica (or logical)")
        if self.max_wal_senders < 1:
            raise SourceError(f"PostgreSQL {where} has max_wal_senders=0: physical backups "
                              "and WAL streaming need at least 2")


def server_info(conn: psycopg.Connection[Any]) -> ServerInfo:
    """Facts every physical backup records (SQL only; no superuser needed)."""
    row = conn.execute(
        "SELECT current_setting('server_version_num')::int, "
        "(SELECT system_identifier::text FROM pg_control_system()), "
        "(SELECT timeline_id FROM pg_control_checkpoint()), "
        "current_setting('wal_level'), current_setting('max_wal_senders')::int, "
        "(SELECT setting::bigint * CASE unit WHEN 'MB' THEN 1048576 WHEN 'kB' THEN 1024 "
        "   WHEN '8kB' THEN 8192 ELSE 1 END FROM pg_settings WHERE name='wal_segment_size'), "
        "pg_is_in_recovery(), current_setting('archive_mode')").fetchone()
    assert row is not None
    try:
        datadir = conn.execute("SELECT current_setting('data_directory')").fetchone()
    except psycopg.Error:
        datadir = None
    timeline = int(row[2])
    if not row[6]:
        tl = conn.execute("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
                          ).fetchone()
        timeline = int(tl[0], 16) if tl else timeline
    return ServerInfo(version=row[0] // 10000, version_num=row[0], system_id=row[1],
                      timeline=timeline, wal_level=row[3], max_wal_senders=row[4],
                      wal_segment_size=int(row[5]), in_recovery=row[6], archive_mode=row[7],
                      data_directory=datadir[0] if datadir else None)
