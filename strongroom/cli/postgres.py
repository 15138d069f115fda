"""PostgreSQL commands: ``strongroom backup postgres`` and the ``strongroom pg`` sub-app
(wal-push, wal-fetch, receive, restore, verify-wal, wal-compact).

Passwords for PostgreSQL come from PGPASSWORD, a password in --dsn, or ~/.pgpass (libpq's
own rules); they are never printed and reach child processes only through the environment."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from strongroom.cli.app import app, backup_app
from strongroom.cli.common import (
    JsonOpt,
    KeyFileOpt,
    OptionOpt,
    PasswordFileOpt,
    RepoOpt,
    open_repo,
)
from strongroom.cli.output import console, emit_json, err_console
from strongroom.errors import ConfigError, IntegrityError

pg_app = typer.Typer(help="PostgreSQL: WAL archive, continuous streaming, point-in-time "
                     "restore.", no_args_is_help=True)
app.add_typer(pg_app, name="pg")

DsnOpt = Annotated[str, typer.Option("--dsn", envvar="STRONGROOM_PG_DSN", show_envvar=True,
                                     help="libpq connection string or URI (password: use "
                                     "PGPASSWORD or ~/.pgpass).")]
NameOpt = Annotated[str, typer.Option("--name", envvar="STRONGROOM_PG_NAME", show_envvar=True,
                                      help="Cluster name: the snapshots' source name.")]


def _summary(report: dict[str, Any], keys: tuple[str, ...]) -> str:
    return ", ".join(f"{k} {report[k]}" for k in keys if report.get(k) is not None)


@backup_app.command("postgres")
def backup_postgres(
    dsn: DsnOpt, name: NameOpt,
    method: Annotated[str, typer.Option(help="physical (pg_basebackup + WAL) or logical "
                                        "(pg_dump -Fd).")] = "physical",
    kind: Annotated[str, typer.Option(help="full; physical also incremental or differential "
                                      "(the WAL since the parent, sealed).")] = "full",
    wal: Annotated[str, typer.Option(help="physical full: fetch (WAL inside, restores on its "
                                     "own) or none (WAL from the archive).")] = "fetch",
    database: Annotated[list[str] | None, typer.Option(help="logical: database to dump "
                                                       "(repeatable; default all).")] = None,
    jobs: Annotated[int, typer.Option(help="Parallel jobs (logical: pg_dump -j; physical: "
                                      "parts of the base stored at once).")] = 2,
    checksums: Annotated[bool, typer.Option(help="Record per-table checksums.")] = True,
    tag: Annotated[list[str] | None, typer.Option(help="Tag the snapshot.")] = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Back up a PostgreSQL cluster (physical) or its databases (logical)."""
    if method not in ("physical", "logical"):
        raise ConfigError(f"--method must be physical or logical, not {method!r}")
    if kind not in ("full", "incremental", "differential"):
        raise ConfigError(f"--kind must be full, incremental or differential, not {kind!r}")
    r = open_repo(repo, password_file, key_file, option)
    if method == "logical":
        if kind != "full":
            raise ConfigError("logical backups are always full (pg_dump)")
        from strongroom.sources.postgres.logical import backup_logical

        snap = backup_logical(r, dsn, name, dbs=database, jobs=jobs, tags=tag or [])
    elif kind == "full":
        from strongroom.sources.postgres.physical import backup_full

        snap = backup_full(r, dsn, name, wal=wal, tags=tag or [], checksums=checksums,
                           jobs=jobs)
    else:
        from strongroom.sources.postgres.physical import backup_wal_seal

        snap = backup_wal_seal(r, dsn, name, kind, tags=tag or [], checksums=checksums)
    pg = snap.meta.get("postgres", {})
    if json:
        emit_json({"id": snap.id, "kind": snap.kind, "stats": snap.stats.model_dump(),
                   "postgres": {k: v for k, v in pg.items() if k != "stats"}})
    else:
        console.print(f"snapshot {snap.short_id} ({method} {snap.kind}) of {name}: "
                      f"{snap.stats.bytes_read} bytes read, {snap.stats.bytes_new} new"
                      + (f", WAL {pg['start_lsn']}..{pg.get('wal_end_lsn')} timeline "
                         f"{pg['timeline']}" if method == "physical" else ""), markup=False)


@pg_app.command("wal-push")
def wal_push(
    path: Annotated[Path, typer.Argument(help="%p: the WAL file to archive.")], name: NameOpt,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None,
) -> None:
    """archive_command: store one WAL file (idempotent; refuses to overwrite a different one)."""
    from strongroom.sources.postgres import walnames as wn
    from strongroom.sources.postgres import walstore

    r = open_repo(repo, password_file, key_file, option)
    catalog = walstore.WalCatalog.load(r, name)
    kind = wn.classify(path.name)
    seg_size = catalog.seg_size
    if kind in ("segment", "partial"):
        seg_size = path.stat().st_size
    walstore.push(r, name, [path], seg_size=seg_size, catalog=catalog,
                  system_id=catalog.system_id)
    if len(catalog.snapshots) + 1 >= walstore.COMPACT_AT:
        walstore.compact(r, name)


@pg_app.command("wal-fetch")
def wal_fetch(
    fname: Annotated[str, typer.Argument(help="%f: the WAL file name wanted.")],
    dest: Annotated[Path, typer.Argument(help="%p: where to write it.")], name: NameOpt,
    spool: Annotated[Path | None, typer.Option(help="Directory of prefetched files.")] = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None,
) -> None:
    """restore_command: write an archived WAL file to %p; exit 1 when it is not archived."""
    from strongroom.sources.postgres import walstore

    if spool is not None:
        if (spool / fname).exists():
            shutil.copyfile(spool / fname, dest)
            return
        if (spool / ".complete").exists():
            raise typer.Exit(1)  # the restore prefetched everything the archive had
    r = open_repo(repo, password_file, key_file, option)
    if not walstore.fetch(walstore.WalCatalog.load(r, name), fname, dest):
        raise typer.Exit(1)


@pg_app.command("wal-compact")
def wal_compact(name: NameOpt, repo: RepoOpt = None, password_file: PasswordFileOpt = None,
                key_file: KeyFileOpt = None, option: OptionOpt = None) -> None:
    """Fold the small WAL snapshots of a cluster into one (no data re-read)."""
    from strongroom.sources.postgres import walstore

    r = open_repo(repo, password_file, key_file, option)
    snap = walstore.compact(r, name, at_least=2)
    console.print(f"compacted into {snap.short_id}" if snap else "nothing to compact",
                  markup=False)


@pg_app.command("wal-expire")
def wal_expire(name: NameOpt, repo: RepoOpt = None, password_file: PasswordFileOpt = None,
               key_file: KeyFileOpt = None, option: OptionOpt = None,
               json: JsonOpt = False) -> None:
    """Drop archived WAL older than the oldest physical backup left (after retention)."""
    from strongroom.sources.postgres import walstore

    report = walstore.expire(open_repo(repo, password_file, key_file, option), name)
    if json:
        emit_json(report)
    else:
        console.print(f"WAL of {name}: {report['files_before']} files -> "
                      f"{report['files_after']} (oldest needed {report['oldest_needed']})",
                      markup=False)


@pg_app.command("receive")
def receive(
    dsn: DsnOpt, name: NameOpt,
    spool: Annotated[Path, typer.Option(help="Local directory for pg_receivewal.")],
    slot: Annotated[str | None, typer.Option(help="Replication slot (created if missing; "
                                             "default strongroom_NAME).")] = None,
    status_file: Annotated[Path | None, typer.Option(help="Write the lag report (JSON) here."
                                                     )] = None,
    status_interval: Annotated[float, typer.Option(help="Seconds between reports.")] = 5.0,
    partial_interval: Annotated[float, typer.Option(help="Also store the current partial "
                                                    "segment every N s (0: only when the "
                                                    "stream breaks).")] = 0.0,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None,
) -> None:
    """Stream WAL continuously into the repository until SIGTERM/SIGINT; report the lag."""
    import json as _json

    from strongroom.sources.postgres.receiver import Receiver

    r = open_repo(repo, password_file, key_file, option)
    rec = Receiver(r, dsn, name, spool, slot=slot, status_file=status_file,
                   status_interval=status_interval, partial_interval=partial_interval,
                   emit=lambda s: print(_json.dumps(s), flush=True))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: rec.stop())
    rec.run()


@pg_app.command("restore")
def pg_restore(
    datadir: Annotated[Path, typer.Argument(help="New data directory to restore into.")],
    name: NameOpt,
    snapshot: Annotated[str | None, typer.Option(help="Base backup (default: chosen for the "
                                                 "target).")] = None,
    target_time: Annotated[str | None, typer.Option(help="Recover to this time (ISO 8601).")
                           ] = None,
    target_lsn: Annotated[str | None, typer.Option(help="Recover to this LSN.")] = None,
    target_xid: Annotated[str | None, typer.Option(help="Recover to this transaction id.")
                          ] = None,
    target_name: Annotated[str | None, typer.Option(help="Recover to this restore point.")
                           ] = None,
    immediate: Annotated[bool, typer.Option(help="Stop as soon as the base is consistent.")
                         ] = False,
    exclusive: Annotated[bool, typer.Option(help="Stop just before the target.")] = False,
    target_timeline: Annotated[str | None, typer.Option(help="latest (of those descending "
                                                        "from the base), current, or N.")
                               ] = None,
    replace: Annotated[bool, typer.Option(help="Restore over a non-empty directory: staged "
                                          "beside it, swapped in once recovered; the old one "
                                          "is kept as DIR.before-restore-TIME.")] = False,
    port: Annotated[int | None, typer.Option(help="Port for the recovery server.")] = None,
    verify: Annotated[bool, typer.Option(help="amcheck, checksums, Great Expectations.")
                      ] = True,
    keep_running: Annotated[bool, typer.Option(help="Leave the recovered server running.")
                            ] = False,
    failover: Annotated[bool, typer.Option(help="The restored cluster becomes the primary: "
                                           "archive its new timeline and reserve WAL for the "
                                           "receiver's slot (a drill leaves the archive "
                                           "alone).")] = False,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Point-in-time restore into a new data directory, then verify it (default: latest)."""
    from strongroom.sources.postgres.restore import restore_physical

    r = open_repo(repo, password_file, key_file, option)
    snap = r.find_snapshot(snapshot, name) if snapshot else None
    opts: dict[str, Any] = {"target_time": target_time, "target_lsn": target_lsn,
                            "target_xid": target_xid, "target_name": target_name,
                            "target_timeline": target_timeline, "port": port,
                            "verify": verify, "keep_running": keep_running,
                            "inclusive": not exclusive, "failover": failover}
    if immediate:
        opts["target"] = "immediate"
    report = restore_physical(r, snap, datadir, name=name, replace=replace, options=opts)
    if json:
        emit_json(report)
    else:
        console.print(f"restored {name} into {datadir}: " + _summary(
            report, ("snapshot", "timeline", "promoted_lsn", "last_replayed_commit",
                     "recovery_seconds")), markup=False)


@pg_app.command("verify-wal")
def verify_wal(
    name: NameOpt,
    snapshot: Annotated[str | None, typer.Option(help="Check from this backup (default: the "
                                                 "oldest).")] = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Check the WAL archive is gap-free from a backup to its newest segment."""
    from strongroom.sources.postgres.walcheck import verify_archive

    r = open_repo(repo, password_file, key_file, option)
    report = verify_archive(r, name, snapshot)
    if json:
        emit_json(report)
    elif report["missing"]:
        raise IntegrityError(f"WAL archive of {name!r} has a gap: segment "
                             f"{report['missing'][0]} is missing")
    else:
        console.print(f"WAL archive of {name} is complete: {report['segments']} segments from "
                      f"{report['first']} to {report['last']}", markup=False)
    if report["missing"]:
        err_console.print(f"error: missing WAL segment {report['missing'][0]}", markup=False)
        sys.exit(IntegrityError.exit_code)
