"""Restore targets of the postgres kind before a recovery writes: which kind of target a source's
snapshots need (a data directory for physical, a DSN for logical), room, a running server, the
safety snapshot of a database about to be dropped, and where the source's data lives."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongroom.errors import ConfigError, IntegrityError, TargetNotEmpty, TargetTooSmall
from strongroom.sources.postgres.cluster import read_pidfile
from strongroom.sources.swap import KEPT_MARK, holds_data, real_target

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot

HEADROOM = 0.10  # a physical restore needs the snapshot's bytes plus this share free


def is_server_target(target: str) -> bool:
    """True for a DSN (``key=value``) or URL target: a database on a running server."""
    return "://" in target or "=" in target


def methods(settings: dict[str, Any]) -> set[str]:
    """The backup methods a source's snapshots come from (``method`` and ``snapshot_method``)."""
    method = str(settings.get("method") or "physical")
    return {method, str(settings.get("snapshot_method") or method)}


def source_label(settings: dict[str, Any]) -> str:
    if settings.get("source_name"):
        return f"postgres source {settings['source_name']!r}"
    return (f"postgres source at {settings.get('host') or '127.0.0.1'}:"
            f"{settings.get('port') or 5432}")


def shown(target: str) -> str:
    """A DSN or URL without its password (for messages)."""
    from strongroom.sources.postgres.conn import Dsn

    try:
        return Dsn.parse(target).conninfo
    except ConfigError:
        return "(an unparsable DSN)"


def check_target(target: str, *, settings: dict[str, Any], replace: bool,
                 size: int) -> list[str]:
    """See :meth:`strongroom.sources.contract.Source.check_target`. physical: an absolute
    directory path on a file system with ``size`` bytes + 10% free, and no running server
    unless ``replace`` (the recovery's stop command stops it; the restore itself refuses a
    running server always). logical: a DSN naming the database."""
    kinds = methods(settings)
    if is_server_target(target):
        if "logical" not in kinds:
            raise ConfigError(f"{source_label(settings)} takes physical backups: restore it "
                              "into a data directory (an absolute path), not the DSN or URL "
                              f"{shown(target)!r}")
        return check_database_target(target, settings=settings, replace=replace)
    if "physical" not in kinds:
        raise ConfigError(f"{source_label(settings)} takes logical backups: restore them into "
                          f"a database named by a DSN (host=... dbname=...), not {target!r}")
    if not Path(target).expanduser().is_absolute():
        raise ConfigError(f"restore target {target!r} of {source_label(settings)} must be an "
                          "absolute data directory path")
    path = real_target(target)
    notes: list[str] = []
    if path.exists() and path.parent.exists() and \
            os.stat(path).st_dev != os.stat(path.parent).st_dev:
        raise ConfigError(f"restore target {path} is a mount point: a data directory is "
                          "restored beside its target; restore into a directory inside it")
    if path.parent.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"restore target {path}: its parent {path.parent} is not writable "
                          "(a data directory is restored beside its target)")
    pidfile = read_pidfile(path)
    if pidfile.live:
        if not replace:
            raise TargetNotEmpty(f"{path} has a running server (pid {pidfile.pid}): stop it "
                                 "first")
        notes.append(f"{pidfile.describe()}: the recovery's stop command must stop it (the "
                     "restore refuses a running server)")
    elif pidfile.stale:
        notes.append(f"{path}: {pidfile.describe()}; the restore proceeds")
    if holds_data(path):
        if not replace:
            raise TargetNotEmpty(f"{path} is not empty (replace to restore over it; the old "
                                 f"directory is kept beside it as {path.name}{KEPT_MARK}<time>)")
        notes.append(f"{path} holds data: kept beside it as {path.name}{KEPT_MARK}<time> "
                     "(its space is not freed)")
    notes.append(check_room(path, size))
    return notes


def check_room(path: Path, size: int) -> str:
    """TargetTooSmall when the file system that will hold ``path`` lacks ``size`` bytes + 10%
    (the restore writes beside the target, so nothing there is freed first)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    st = os.statvfs(probe)
    free = st.f_bavail * st.f_frsize
    need = int(size * (1 + HEADROOM))
    if need > free:
        raise TargetTooSmall(f"the file system of {path} has {_size(free)} free ({free} bytes); "
                             f"the restore needs {_size(need)} ({size} bytes of snapshot + "
                             f"{HEADROOM:.0%})")
    return f"{path}: {_size(free)} free for {_size(need)} ({size} bytes + {HEADROOM:.0%})"


def _size(n: int) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def target_dsn(target: str, settings: dict[str, Any]) -> Any:
    """The Dsn of a DSN or URL target with the block's login where it names none."""
    from strongroom.sources.postgres.conn import Dsn

    dsn = Dsn.parse(target)
    if not dsn.params.get("dbname"):
        raise ConfigError(f"the restore target {shown(target)!r} must name the database "
                          "(dbname=...)")
    params = dict(dsn.params)
    if settings.get("user") and "user" not in params:
        params["user"] = str(settings["user"])
    password = dsn.password if dsn.password is not None else settings.get("password")
    return Dsn(params, password)


def database_exists(dsn: Any) -> bool:
    db = dsn.params["dbname"]
    with dsn.with_db("postgres").connect() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (db,)).fetchone() is not None


def check_database_target(target: str, *, settings: dict[str, Any],
                          replace: bool) -> list[str]:
    """A logical restore's target: it names a database; an existing one only with ``replace``
    (dropped and recreated after a safety snapshot)."""
    dsn = target_dsn(target, settings)
    db = dsn.params["dbname"]
    if database_exists(dsn):
        if not replace:
            raise TargetNotEmpty(f"database {db!r} already exists on {dsn.where} (replace to "
                                 "drop and recreate it after a safety snapshot)")
        return [f"database {db!r} on {dsn.where} exists: snapshotted, then dropped and "
                "recreated", f"free space on {dsn.where} is not checked"]
    return [f"database {db!r} on {dsn.where} is created",
            f"free space on {dsn.where} is not checked"]


def safety_backup(repo: Repository, *, name: str, target: str, replace: bool,
                  settings: dict[str, Any]) -> Snapshot | None:
    """A data directory: None (the restore keeps the previous directory beside it), after
    refusing one that holds data without ``replace``. A DSN: a logical snapshot of exactly
    that database as ``<name>-safety`` (tags safety, pre-restore), read back in full
    (:func:`strongroom.sources.contract.read_back`); None when the database does not
    exist."""
    if not is_server_target(target):
        path = real_target(target)
        if holds_data(path) and not replace:
            raise TargetNotEmpty(f"{path} is not empty (replace to restore over it; the old "
                                 f"directory is kept beside it as {path.name}{KEPT_MARK}<time>)")
        return None
    from strongroom.sources.contract import read_back
    from strongroom.sources.postgres.logical import backup_logical

    dsn = target_dsn(target, settings)
    db = dsn.params["dbname"]
    if not database_exists(dsn):
        return None
    if not replace:
        raise TargetNotEmpty(f"database {db!r} already exists on {dsn.where} (replace to "
                             "drop and recreate it after a safety snapshot)")
    snap = backup_logical(repo, dsn, f"{name}-safety", dbs=[db], jobs=int(
        settings.get("jobs") or 2), tags=["safety", "pre-restore"], kind="snapshot")
    dumped = sorted((snap.meta.get("postgres") or {}).get("databases") or {})
    if dumped != [db]:
        raise IntegrityError(f"safety snapshot {snap.short_id} of {db!r} on {dsn.where} holds "
                             f"{', '.join(dumped) or 'nothing'}, not that database")
    read_back(repo, snap)
    return snap


def in_place_target(settings: dict[str, Any]) -> str | None:
    """physical: the block's ``data_directory``; logical: a DSN of the block's server and
    database (no password: the block's login is added at restore time). None when the block
    does not say."""
    method = str(settings.get("method") or "physical")
    if method == "physical":
        datadir = settings.get("data_directory")
        return str(datadir) if datadir else None
    if method == "logical" and settings.get("database"):
        from psycopg.conninfo import make_conninfo

        return make_conninfo("", host=str(settings.get("host") or "127.0.0.1"),
                             port=str(settings.get("port") or 5432),
                             user=str(settings.get("user") or "postgres"),
                             dbname=str(settings["database"]))
    return None
