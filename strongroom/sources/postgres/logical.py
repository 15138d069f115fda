"""Logical backups: pg_dump -Fd -j per database (with checksums taken in the same snapshot),
and restores into a named database with pg_restore -j."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg import sql

from strongroom.errors import ConfigError, SourceError, TargetNotEmpty
from strongroom.repository import Repository, Snapshot
from strongroom.sources.postgres import verify as verify_mod
from strongroom.sources.postgres.backups import KIND
from strongroom.sources.postgres.conn import Dsn, reports_lost_connection, server_info
from strongroom.sources.postgres.pgbin import binary, run
from strongroom.sources.postgres.tablestats import databases, table_stats

DUMP_TIMEOUT = 6 * 3600


@reports_lost_connection
def backup_logical(repo: Repository, dsn: str | Dsn, name: str, *,
                   dbs: list[str] | None = None, jobs: int = 2,
                   tags: list[str] | tuple[str, ...] = (), staging: str | None = None,
                   timeout: float = DUMP_TIMEOUT, kind: str = "full") -> Snapshot:
    """One snapshot with ``<db>/`` (a pg_dump directory per database) and ``globals.sql``.

    The dump is uncompressed (-Z0): the repository compresses and deduplicates it. Counts and
    checksums come from the very snapshot pg_dump uses (--snapshot), so a restore must match
    them exactly."""
    dsn = Dsn.parse(dsn)
    with dsn.connect() as conn:
        info = server_info(conn)
        all_dbs = databases(conn)
        server_time = conn.execute("SELECT now()").fetchone()[0]
    wanted = dbs or all_dbs
    unknown = sorted(set(wanted) - set(all_dbs))
    if unknown:
        raise SourceError(f"PostgreSQL {dsn.where} has no database {unknown[0]!r}")
    meta: dict[str, Any] = {"method": "logical", "version": info.version,
                            "version_num": info.version_num, "system_id": info.system_id,
                            "time": server_time.astimezone(UTC).isoformat(), "databases": {}}
    work = Path(tempfile.mkdtemp(prefix="strongroom-pgdump-", dir=staging))
    try:
        with repo.writer(name, KIND, kind=kind, tags=list(tags)) as w:
            globals_sql = run([binary("pg_dumpall", info.version), "-d", dsn.conninfo,
                               "--globals-only", "--no-role-passwords", "-w"],
                              timeout=600, env=dsn.env()).stdout
            w.add_bytes("globals.sql", globals_sql.encode(), mode=0o600)
            for db in wanted:
                meta["databases"][db] = dump_database(w, dsn.with_db(db), db, work, jobs,
                                                      info.version, timeout)
            w.set_meta({"postgres": meta})
            return w.commit()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def dump_database(w: Any, dsn: Dsn, db: str, work: Path, jobs: int, version: int,
                  timeout: float) -> dict[str, Any]:
    out = work / db
    with dsn.connect(autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snap_id = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        stats = table_stats(conn, checksums=True)
        run([binary("pg_dump", version), "-d", dsn.conninfo, "-Fd", "-j", str(max(1, jobs)),
             "-Z", "0", "--snapshot", snap_id, "-w", "-f", str(out)],
            timeout=timeout, env=dsn.env())
        conn.rollback()
    size = 0
    for path in sorted(out.iterdir()):
        with open(path, "rb") as fh:
            node = w.add_stream(f"{db}/{path.name}", fh, mode=0o600)
        size += node.size
        path.unlink()
    return {"tables": stats, "dump_bytes": size}


@reports_lost_connection
def restore_logical(repo: Repository, snap: Snapshot, target: str, *, replace: bool = False,
                    include: list[str] | None = None, options: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """Restore one database of the snapshot into the database named by the DSN ``target``
    (created; an existing one is dropped and recreated only with ``replace``), then verify."""
    o = dict(options or {})
    meta = snap.meta["postgres"]
    dumped = sorted(meta["databases"])
    source_db = o.get("source_db") or (include[0] if include else None)
    if source_db is None:
        if len(dumped) != 1:
            raise ConfigError(f"snapshot {snap.short_id} holds databases {', '.join(dumped)}; "
                              "choose one with --include DB")
        source_db = dumped[0]
    if source_db not in dumped:
        raise ConfigError(f"snapshot {snap.short_id} has no database {source_db!r}")
    dsn = Dsn.parse(target)
    if dsn.password is None and o.get("password"):  # in-process, from a source block
        dsn = Dsn(dsn.params, str(o["password"]))
    new_db = o.get("database") or dsn.params.get("dbname")
    if not new_db:
        raise ConfigError("the restore target DSN must name the database (dbname=...)")
    verify = str(o.get("verify", "true")).lower() not in ("0", "false", "no")
    gx = verify_mod.gx_choice(o) if verify else False  # before the target is dropped
    admin = dsn.with_db(o.get("maintenance_db", "postgres"))
    with admin.connect() as conn:
        info = server_info(conn)
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (new_db,)).fetchone()
        if exists and not replace:
            raise TargetNotEmpty(f"database {new_db!r} already exists on {dsn.where} (use "
                                 "--replace to drop and recreate it)")
        if exists:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(new_db)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
            sql.Identifier(new_db)))
    jobs = int(o.get("jobs", 2))
    work = Path(tempfile.mkdtemp(prefix="strongroom-pgrestore-", dir=o.get("staging")))
    reader = repo.reader(snap)
    try:
        ddir = work / source_db
        ddir.mkdir()
        for path, node in reader.walk(source_db):
            if node.type != "file":
                continue
            with reader.open(path) as src, open(ddir / path.rsplit("/", 1)[-1], "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        os.chmod(work, 0o755)
        args = [binary("pg_restore", max(info.version, int(meta["version"]))), "-d",
                dsn.with_db(new_db).conninfo, "-j", str(max(1, jobs)), "--exit-on-error", "-w"]
        if str(o.get("no_owner", "false")).lower() in ("1", "true", "yes"):
            args += ["--no-owner", "--no-privileges"]
        run(args + [str(ddir)], timeout=float(o.get("timeout", DUMP_TIMEOUT)), env=dsn.env())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report: dict[str, Any] = {"snapshot": snap.id, "source_database": source_db,
                              "database": new_db, "server": dsn.where,
                              "restored_at": datetime.now(UTC).isoformat()}
    if verify:
        report["verification"] = verify_mod.verify_database(
            dsn.with_db(new_db), meta["databases"][source_db]["tables"], info.version, gx=gx)
    return report
