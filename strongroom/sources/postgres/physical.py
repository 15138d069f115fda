"""Physical backups: pg_basebackup streamed into a snapshot; WAL sealed as incrementals."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import UTC, datetime
from typing import Any

from strongroom.errors import ConfigError, SourceError
from strongroom.repository import Repository, Snapshot
from strongroom.sources.postgres import parts, walstore
from strongroom.sources.postgres import walnames as wn
from strongroom.sources.postgres.backups import BASE_KINDS, KIND, physical_snapshots
from strongroom.sources.postgres.conn import Dsn, reports_lost_connection, server_info
from strongroom.sources.postgres.faults import source_error
from strongroom.sources.postgres.pgbin import binary, last_error, widen_pipe
from strongroom.sources.postgres.tablestats import databases, table_stats
from strongroom.sources.postgres.tarsniff import TarSniffer

BACKUP_TIMEOUT = 6 * 3600


def collect_stats(dsn: Dsn, checksums: bool) -> dict[str, Any]:
    """Row counts (and checksums) of every table of every database, with the WAL positions
    around the pass: equal positions mean nothing was written meanwhile."""
    out: dict[str, Any] = {}
    with dsn.connect() as conn:
        lsn_a = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
        for db in databases(conn):
            with dsn.connect(db, autocommit=False) as dconn:
                dconn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                out[db] = table_stats(dconn, checksums)
                dconn.rollback()
        lsn_b = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
    return {"databases": out, "lsn_before": lsn_a, "lsn_after": lsn_b, "quiet": lsn_a == lsn_b}


@reports_lost_connection
def backup_full(repo: Repository, dsn: str | Dsn, name: str, *, wal: str = "fetch",
                tags: list[str] | tuple[str, ...] = (), checksums: bool = True,
                timeout: float = BACKUP_TIMEOUT, checkpoint: str = "fast",
                kind: str = "full", jobs: int = 2) -> Snapshot:
    """pg_basebackup -Ft -D - streamed into the snapshot (nothing staged on disk), cut into
    parts stored by ``jobs`` threads (see :mod:`parts`)."""
    dsn = Dsn.parse(dsn)
    if wal not in ("fetch", "none"):
        raise ConfigError(f"--wal must be fetch or none, not {wal!r}")
    with dsn.connect() as conn:
        info = server_info(conn)
        info.require_physical(dsn.where)
        if info.in_recovery:
            raise SourceError(f"PostgreSQL {dsn.where} is a standby; back up the primary")
    args = [binary("pg_basebackup", info.version), "-d", dsn.conninfo, "-D", "-", "-Ft",
            "-X", wal, "-c", checkpoint, "-w", "-v", "--manifest-checksums=CRC32C"]
    started = datetime.now(UTC)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dsn.env(), stdin=subprocess.DEVNULL)
    widen_pipe(proc.stdout)
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(
        proc.stderr.read().decode(errors="replace").splitlines()), daemon=True)  # type: ignore
    reader.start()
    killed = threading.Event()
    timer = threading.Timer(timeout, lambda: (killed.set(), proc.kill()))
    timer.start()
    sniff = TarSniffer(proc.stdout, ("backup_manifest", "backup_label"),  # type: ignore[arg-type]
                       split=parts.PART_SIZE)
    try:
        with repo.writer(name, KIND, kind=kind, tags=list(tags)) as w:
            nparts = parts.store_parts(w, sniff, jobs)
            rc = proc.wait()
            reader.join(10)
            if killed.is_set():
                raise SourceError(f"pg_basebackup did not finish within {timeout:.0f} s")
            if rc != 0:
                stderr = "\n".join(errors)
                raise source_error(f"pg_basebackup failed: {last_error(stderr)}", stderr)
            manifest = sniff.members.get("backup_manifest")
            label = sniff.members.get("backup_label", b"").decode()
            if not manifest:
                raise SourceError("pg_basebackup produced no backup_manifest")
            w.add_bytes("backup_manifest", manifest, mode=0o600)
            meta = base_meta(json.loads(manifest), label, info, wal, started)
            with dsn.connect() as conn:
                row = conn.execute("SELECT now(), pg_snapshot_xmax(pg_current_snapshot())::text"
                                   ).fetchone()
            meta.update(stop_time=row[0].astimezone(UTC).isoformat(), next_xid=int(row[1]),
                        tar_bytes=sniff.total, tar_parts=nparts)
            meta["stats"] = collect_stats(dsn, checksums)
            w.set_meta({"postgres": meta})
            snap = w.commit()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return snap


def base_meta(manifest: dict[str, Any], label: str, info: Any, wal: str,
              started: datetime) -> dict[str, Any]:
    ranges = manifest.get("WAL-Ranges") or []
    if not ranges:
        raise SourceError("backup_manifest has no WAL-Ranges")
    label_fields = dict(line.split(": ", 1) for line in label.splitlines() if ": " in line)
    return {
        "method": "physical", "version": info.version, "version_num": info.version_num,
        "system_id": info.system_id, "timeline": int(ranges[-1]["Timeline"]),
        "start_lsn": ranges[0]["Start-LSN"], "stop_lsn": ranges[-1]["End-LSN"],
        "start_time": started.isoformat(), "label_start_time": label_fields.get("START TIME"),
        "wal_segment_size": info.wal_segment_size, "wal_in_tar": wal == "fetch",
        "base_snapshot": None, "wal_end_lsn": ranges[-1]["End-LSN"],
        "data_directory": getattr(info, "data_directory", None),
    }


def wait_for_archive(repo: Repository, name: str, start_lsn: int, end_lsn: int, tli: int,
                     seg_size: int, timeout: float) -> walstore.WalCatalog:
    """Wait until every segment from ``start_lsn`` to ``end_lsn`` is archived."""
    deadline = time.monotonic() + timeout
    while True:
        catalog = walstore.WalCatalog.load(repo, name)
        path = wn.timeline_path(tli, catalog.histories())
        missing, _ = walstore.missing_segments(catalog, start_lsn, end_lsn, path, seg_size)
        if not missing:
            return catalog
        if time.monotonic() > deadline:
            raise SourceError(f"WAL segment {missing[0]} did not reach the archive within "
                              f"{timeout:.0f} s (is wal-push or the receiver running?)")
        time.sleep(0.5)


def physical_parent(repo: Repository, name: str, kind: str) -> Snapshot:
    snaps = physical_snapshots(repo, name)
    if kind == "differential":
        snaps = [s for s in snaps if s.kind in BASE_KINDS]
    if not snaps:
        raise SourceError(f"no physical full backup of {name!r} to base a {kind} on")
    return snaps[-1]


@reports_lost_connection
def backup_wal_seal(repo: Repository, dsn: str | Dsn, name: str, kind: str, *,
                    tags: list[str] | tuple[str, ...] = (), archive_timeout: float = 120,
                    checksums: bool = True) -> Snapshot:
    """PostgreSQL < 17 incremental/differential: the WAL since the parent's base, sealed
    with the base's files (reused, not re-read) so the snapshot restores on its own."""
    dsn = Dsn.parse(dsn)
    parent = physical_parent(repo, name, kind)
    pmeta = parent.meta["postgres"]
    base = repo.find_snapshot(pmeta.get("base_snapshot") or parent.id)
    with dsn.connect() as conn:
        info = server_info(conn)
        info.require_physical(dsn.where)
        if info.system_id != pmeta["system_id"]:
            raise SourceError(f"PostgreSQL {dsn.where} is not the cluster backed up as {name!r} "
                              f"(system id {info.system_id}, expected {pmeta['system_id']})")
        row = conn.execute("SELECT pg_switch_wal()::text, pg_current_wal_lsn()::text, now(), "
                           "pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()
    end_lsn = wn.parse_lsn(row[0])  # end of the switch record, in the completed segment
    seg = int(pmeta["wal_segment_size"])
    catalog = wait_for_archive(repo, name, wn.parse_lsn(pmeta["start_lsn"]), end_lsn,
                               info.timeline, seg, archive_timeout)
    path = wn.timeline_path(info.timeline, catalog.histories())
    first = wn.lsn_segno(wn.parse_lsn(pmeta["start_lsn"]), seg)
    last = wn.lsn_segno(end_lsn - 1, seg)
    wanted = []
    for fname in catalog.files:
        kind_ = wn.classify(fname)
        if kind_ == "history" and int(fname[:8], 16) in {t for t, _ in path}:
            wanted.append(fname)
        elif kind_ == "segment":
            tli, segno = wn.parse_segment(fname, seg)
            if first <= segno <= last and tli in {t for t, _ in path}:
                wanted.append(fname)
    stats = collect_stats(dsn, checksums)
    with repo.writer(name, KIND, kind=kind, parent=parent, tags=list(tags)) as w:
        breader = repo.reader(base)
        for path_ in parts.base_paths(breader):
            w.add_node(path_, breader.node(path_))
        readers: dict[str, Any] = {}
        for fname in sorted(wanted):
            entry = catalog.files[fname]
            r = readers.setdefault(entry.snapshot.id, repo.reader(entry.snapshot))
            w.add_node(f"wal/{fname}", r.node(f"wal/{fname}"))
        meta = dict(base.meta["postgres"])
        meta.update(base_snapshot=base.id, wal_end_lsn=wn.format_lsn(end_lsn),
                    stop_time=row[2].astimezone(UTC).isoformat(), next_xid=int(row[3]),
                    timeline=info.timeline, wal_files=len(wanted), stats=stats,
                    base_stop_lsn=base.meta["postgres"]["stop_lsn"])
        w.set_meta({"postgres": meta})
        return w.commit()
