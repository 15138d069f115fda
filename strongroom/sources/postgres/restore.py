"""Physical restore: base backup into a new data directory, then recovery from the archive."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import replace as with_fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from strongroom.errors import (
    ConfigError,
    IntegrityError,
    SourceError,
    StrongroomError,
    TargetNotEmpty,
)
from strongroom.repository import Repository, Snapshot
from strongroom.sources.postgres import command, parts, walstore
from strongroom.sources.postgres import verify as verify_mod
from strongroom.sources.postgres import walnames as wn
from strongroom.sources.postgres.backups import pg_meta, physical_snapshots
from strongroom.sources.postgres.cluster import PidFile, Server, free_port, read_pidfile
from strongroom.sources.postgres.pgbin import (
    binary,
    chown_tree,
    last_error,
    run,
    server_user_kwargs,
    widen_pipe,
)
from strongroom.sources.postgres.plan import Target, check_wal, choose_base, choose_timeline
from strongroom.sources.postgres.receiver import default_slot
from strongroom.sources.postgres.writeback import EarlyWriteBack
from strongroom.sources.swap import (
    KEPT_MARK,
    UNDONE_MARK,
    holds_data,
    real_target,
    staging_dir,
    stamp,
    swap_in,
    target_lock,
)

MARKER = "# strongroom restore"


def check_datadir(target_dir: Path, replace: bool) -> PidFile:
    """Before anything is written: a live server in ``target_dir`` is refused (even with
    ``replace``: stop it first), a non-empty directory unless ``replace``. A stale
    ``postmaster.pid`` (a crashed server) is no obstacle: the caller reports it."""
    pidfile = read_pidfile(target_dir)
    if pidfile.live:
        raise TargetNotEmpty(f"{target_dir} has a running server (pid {pidfile.pid}): stop it "
                             "first")
    if holds_data(target_dir) and not replace:
        raise TargetNotEmpty(f"{target_dir} is not empty (use --replace to restore over it; "
                             "the old directory is kept beside it as "
                             f"{target_dir.name}{KEPT_MARK}<time>)")
    return pidfile


def put_back_commands(target_dir: Path, kept: Path | None, version: int | str | None) -> str:
    """The shell commands that undo a swap of ``target_dir`` (stop what runs there, move the
    restored directory aside, move ``kept`` back)."""
    q = shlex.quote
    try:
        pg_ctl = binary("pg_ctl", version)
    except ConfigError:
        pg_ctl = "pg_ctl"
    stop = f"{q(pg_ctl)} stop -D {q(str(target_dir))} -m fast"
    if kept is None:
        return (f"nothing was kept ({target_dir} was empty or missing); to remove what was "
                f"restored: {stop}; rm -rf {q(str(target_dir))}")
    undone = target_dir.with_name(f"{target_dir.name}{UNDONE_MARK}{stamp()}")
    return (f"the previous data directory is kept as {kept}; to put it back: {stop}; "
            f"mv -T {q(str(target_dir))} {q(str(undone))} && "
            f"mv -T {q(str(kept))} {q(str(target_dir))}")


def extract_base(repo: Repository, snap: Snapshot, target_dir: Path, jobs: int = 2,
                 timeout: float = 6 * 3600) -> None:
    """Stream the base tar out of the repository into ``target_dir``: through GNU tar (run as
    the directory's owner) when installed, else Python's tarfile with the 'data' filter. The
    files are written back to disk meanwhile (see :mod:`writeback`)."""
    tar_bin = shutil.which("tar")
    with EarlyWriteBack(target_dir):
        if tar_bin is None:
            with parts.open_base(repo, snap, jobs) as fh, \
                    tarfile.open(fileobj=fh, mode="r|") as tar:
                tar.extractall(target_dir, filter="data")
        else:
            chunks = parts.base_chunks(repo, snap, jobs)
            try:
                _gnu_tar(tar_bin, chunks, target_dir, timeout)
            finally:
                chunks.close()  # stops the parts still being read
    (target_dir / "pg_wal" / "archive_status").mkdir(parents=True, exist_ok=True)


def _gnu_tar(tar_bin: str, chunks: Iterable[bytes], target_dir: Path, timeout: float) -> None:
    """Feed ``chunks`` to ``tar -x``, reading 1 MiB records (the default 10 KiB records cost
    twice the system time)."""
    like = server_user_kwargs(target_dir)
    proc = subprocess.Popen([tar_bin, "-x", "-f", "-", "-C", str(target_dir),
                             "--no-same-owner", "--delay-directory-restore",
                             "--blocking-factor=2048", "--read-full-records"],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, **like)
    widen_pipe(proc.stdin)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        try:
            fd = proc.stdin.fileno()  # type: ignore[union-attr]
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass
        err = proc.stderr.read().decode(errors="replace")  # type: ignore[union-attr]
        if proc.wait() != 0:
            raise SourceError(f"extracting the base backup into {target_dir} failed: "
                              f"{last_error(err) or proc.returncode}")
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def prefetch(repo: Repository, snap: Snapshot, catalog: walstore.WalCatalog, spool: Path,
             path: list[tuple[int, int]], target: Target) -> int:
    """Copy the WAL the recovery will ask for into ``spool``: the snapshot's own WAL, then
    archived segments on the timeline path from the base on (a lone ``.partial`` serves as
    its segment). Returns the number of files."""
    meta = pg_meta(snap)
    seg = int(meta["wal_segment_size"])
    first = wn.lsn_segno(wn.parse_lsn(meta["start_lsn"]), seg)
    last = None
    if target.kind == "lsn":
        last = wn.lsn_segno(wn.parse_lsn(target.value or "0/0"), seg) + 1
    tlis = {t for t, _ in path}
    count = 0
    reader = repo.reader(snap)
    own = reader.node_or_none("wal")
    if own is not None:
        for p, node in reader.walk("wal"):
            if node.type == "file":
                walstore.write_atomic(spool / p.rsplit("/", 1)[-1], reader.read_bytes(p))
                count += 1
    complete = set(catalog.files)
    for fname in sorted(catalog.files) if target.kind != "snapshot" else []:
        kind = wn.classify(fname)
        out = fname
        if kind == "history":
            if int(fname[:8], 16) not in tlis:
                continue
        elif kind in ("segment", "partial"):
            segname = fname[:24]
            tli, segno = wn.parse_segment(segname, seg)
            if tli not in tlis or segno < first or (last is not None and segno > last):
                continue
            if kind == "partial":
                if segname in complete:
                    continue
                out = segname
        else:
            continue
        if (spool / out).exists():
            continue
        walstore.write_atomic(spool / out, catalog.read(fname))
        count += 1
    (spool / ".complete").write_text(datetime.now(UTC).isoformat())
    return count


def write_recovery_conf(datadir: Path, settings: dict[str, str]) -> None:
    lines = [MARKER] + [f"{k} = '{v.replace(chr(39), chr(39) * 2)}'" for k, v in
                        settings.items()]
    with open(datadir / "postgresql.auto.conf", "a") as fh:
        fh.write("\n" + "\n".join(lines) + "\n")
    (datadir / "recovery.signal").write_text("")


def clear_recovery_conf(datadir: Path) -> None:
    auto = datadir / "postgresql.auto.conf"
    text = auto.read_text()
    if MARKER in text:
        head = text.split("\n" + MARKER, 1)[0]
        auto.write_text(head.rstrip("\n") + "\n")


def verifybackup(datadir: Path, version: int, wal_in_tar: bool) -> str:
    args = [binary("pg_verifybackup", version), "-q"]
    if not wal_in_tar:
        args.append("-n")
    proc = run(args + [str(datadir)], timeout=3600, check=False,
               **server_user_kwargs(datadir))
    if proc.returncode != 0:
        raise IntegrityError(f"pg_verifybackup failed on {datadir}: "
                             f"{(proc.stderr or proc.stdout).strip().splitlines()[0]}")
    return "backup successfully verified"


def restore_physical(repo: Repository, snap: Snapshot | None, target_dir: str | Path, *,
                     name: str | None = None, replace: bool = False,
                     options: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`restore_into`, one restore into a data directory at a time."""
    with target_lock(real_target(target_dir)):
        return restore_into(repo, snap, target_dir, name=name, replace=replace,
                            options=options)


def restore_into(repo: Repository, snap: Snapshot | None, target_dir: str | Path, *,
                 name: str | None = None, replace: bool = False,
                 options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Restore into ``target_dir`` and recover to the target; verify; return a report.

    Restore beside, then swap: the base is extracted into a staging directory beside
    ``target_dir`` (:mod:`strongroom.sources.swap`), recovered and verified there by a
    temporary server, which is then stopped; only then does the staging directory take the
    target's place, the previous contents kept as ``<target>.before-restore-<time>`` (the
    report's ``kept``). Any failure before the swap removes the staging directory and leaves
    the target as it was. A server that must keep running (``keep_running``, ``failover``) is
    started again on the final directory after the swap; an error from then on names the kept
    directory and the commands that put it back.

    options: target / target_time / target_lsn / target_xid / target_name / target_timeline /
    inclusive, port, verify (default true), gx (auto, true or false; default auto: the GX
    suite when installed), keep_running, failover, spool."""
    o = dict(options or {})
    t0 = time.monotonic()
    target = Target.from_options(o)
    name = name or (snap.source_name if snap else None)
    if not name:
        raise ConfigError("restore needs a snapshot or a cluster --name")
    if snap is None:
        snap = choose_base(physical_snapshots(repo, name), target, name)
    meta = pg_meta(snap)
    version = int(meta["version"])
    catalog = walstore.WalCatalog.load(repo, name)
    catalog.seg_size = catalog.seg_size or int(meta["wal_segment_size"])
    tli, path = choose_timeline(snap, catalog, target.timeline)
    own = {p.rsplit("/", 1)[-1] for p, n in repo.reader(snap).walk()
           if p.startswith("wal/") and n.type == "file"}
    if meta.get("wal_in_tar"):  # -X fetch: the base's own WAL is inside base.tar
        seg = int(meta["wal_segment_size"])
        for segno in range(wn.parse_lsn(meta["start_lsn"]) // seg,
                           (wn.parse_lsn(meta["stop_lsn"]) - 1) // seg + 1):
            own.add(wn.segment_name(int(meta["timeline"]), segno, seg))
    wal_check = check_wal(snap, catalog, path, target, own)

    gx = verify_mod.gx_choice(o) if _flag(o, "verify", True) else False  # before any change
    failover = _flag(o, "failover", False)
    keep_running = _flag(o, "keep_running", False)
    target_dir = real_target(target_dir)
    pidfile = check_datadir(target_dir, replace)
    when = stamp()
    staging = staging_dir(target_dir, when)
    if staging.parent == target_dir:  # nothing can be made beside it: a data directory
        shutil.rmtree(staging, ignore_errors=True)  # must not hold a cluster inside it
        raise ConfigError(f"restore target {target_dir} is a mount point or its parent is not "
                          "writable: a data directory is restored beside its target; restore "
                          "into a directory inside it")
    like = server_user_kwargs(target_dir.parent)
    work = Path(tempfile.mkdtemp(prefix="strongroom-pgrestore-", dir=o.get("spool")))
    spool = work / "wal"
    spool.mkdir()
    report: dict[str, Any] = {"snapshot": snap.id, "snapshot_kind": snap.kind,
                              "target": {"kind": target.kind, "value": target.value},
                              "timeline": tli, "datadir": str(target_dir), "kept": None,
                              "wal_check": wal_check}
    if pidfile.stale:
        report["crashed_server"] = pidfile.describe()
    server = None
    kept: Path | None = None
    swapped = False
    try:
        chown_tree(staging, like)
        os.chmod(staging, 0o700)
        extract_base(repo, snap, staging, jobs=int(o.get("jobs", 2)))
        chown_tree(staging, like)
        os.chmod(staging, 0o700)
        if _flag(o, "verify", True):
            report["pg_verifybackup"] = verifybackup(staging, version,
                                                     bool(meta.get("wal_in_tar")))
        report["wal_files_prefetched"] = prefetch(repo, snap, catalog, spool, path, target)
        settings = {"restore_command": command.restore_command(name, spool),
                    "recovery_target_timeline": str(tli), **target.settings()}
        write_recovery_conf(staging, settings)
        sock = work / "sock"
        sock.mkdir()
        hba = work / "pg_hba.conf"
        hba.write_text("local all all trust\nlocal replication all trust\n")
        chown_tree(work, like)
        os.chmod(work, 0o711)
        port = int(o.get("port") or free_port())
        server = Server(staging, port, sock, version=version,
                        logfile=work / "restore.log", env=command.child_env(),
                        options={"hba_file": str(hba), "archive_mode": "off",
                                 "listen_addresses": "''",
                                 # no standby will ever confirm: writes must not wait
                                 "synchronous_standby_names": "''"})
        server.start(timeout=600)
        server.wait_ready(timeout=float(o.get("recovery_timeout", 3600)))
        report["recovery_seconds"] = round(time.monotonic() - t0, 2)
        report.update(recovered_state(server))
        if _flag(o, "verify", True):
            report["verification"] = verify_mod.verify_restored(
                server, meta.get("stats") or {}, strict=_strict(snap, target), gx=gx)
        mark_history_ready(staging, tli, report)
        clear_recovery_conf(staging)
        server.stop(mode="fast")
        if read_pidfile(staging).live:
            raise SourceError(f"the recovery server on {staging} did not stop")
        check_datadir(target_dir, replace)  # a server started there meanwhile is refused
        kept = swap_in(staging, target_dir, when)
        swapped = True
        report["kept"] = str(kept) if kept else None
        os.chmod(target_dir, 0o700)  # what PostgreSQL wants, whatever an empty target had
        if like:
            os.chown(target_dir, like["user"], like["group"])
        server = with_fields(server, datadir=target_dir)
        if failover or keep_running:
            server.start(timeout=600)
            server.wait_ready(timeout=600)
            if failover:
                take_over_archive(repo, name, server, tli, report, o, meta)
        if keep_running:  # the caller stops it and removes work_dir
            report["server"] = {"port": server.port, "socket_dir": str(server.sockdir),
                                "work_dir": str(work)}
    except BaseException as exc:
        if server is not None and read_pidfile(server.datadir).live:
            server.stop(mode="immediate")
        shutil.rmtree(work, ignore_errors=True)
        if not swapped:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, Exception) and holds_data(target_dir):
                raise _with_note(exc, f"{target_dir} was left as it was") from exc
            raise
        if isinstance(exc, Exception):
            raise _with_note(exc, put_back_commands(target_dir, kept, version)) from exc
        raise
    if not keep_running:
        if server is not None and read_pidfile(target_dir).live:
            server.stop(mode="fast")
        shutil.rmtree(work, ignore_errors=True)
    report["duration_s"] = round(time.monotonic() - t0, 2)
    return report


def _with_note(exc: Exception, note: str) -> StrongroomError:
    """``exc`` as a StrongroomError of the same class (SourceError for others) whose one-line
    message ends with ``note``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    cls = type(exc) if isinstance(exc, StrongroomError) else SourceError
    try:
        return cls(f"{text}; {note}")
    except TypeError:
        return SourceError(f"{text}; {note}")


def _strict(snap: Snapshot, target: Target) -> bool:
    """Backup-time checksums must match only when restoring to the snapshot's own point of a
    backup taken while nothing was written."""
    stats = pg_meta(snap).get("stats") or {}
    return target.kind in ("immediate", "snapshot") and bool(stats.get("quiet"))


def recovered_state(server: Server) -> dict[str, Any]:
    with server.connect() as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text, "
                           "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8), "
                           "pg_last_xact_replay_timestamp()").fetchone()
    return {"promoted_lsn": row[0], "new_timeline": int(row[1], 16),
            "last_replayed_commit": row[2].isoformat() if row[2] else None}


def mark_history_ready(datadir: Path, tli: int, report: dict[str, Any]) -> None:
    """Queue the new timeline's history file for archiving: the verification run had
    archive_mode off, so the server archives it itself once it runs with archiving on (a test
    restore thus never adds a fork to the archive that later restores would follow)."""
    new = report.get("new_timeline")
    if not new or new == tli:
        return
    hist = f"{new:08X}.history"
    if (datadir / "pg_wal" / hist).exists():
        ready = datadir / "pg_wal" / "archive_status" / f"{hist}.ready"
        ready.write_text("")
        like = server_user_kwargs(datadir)
        if like:
            os.chown(ready, like["user"], like["group"])
        report["history_queued_for_archive"] = hist


def _flag(o: dict[str, Any], key: str, default: bool) -> bool:
    value = o.get(key, default)
    return str(value).lower() not in ("0", "false", "no", "") if value is not None else default


def take_over_archive(repo: Repository, name: str, server: Server, tli: int,
                      report: dict[str, Any], o: dict[str, Any],
                      meta: dict[str, Any]) -> None:
    """Failover: the restored cluster becomes the primary of ``name``. Reserve WAL with the
    receiver's replication slot, stop cleanly, archive the new timeline so far (history file,
    complete segments, the current one as ``.partial``), restart when asked to keep running.
    Only then does a later restore follow the new timeline; a drill leaves the archive alone.
    With no WAL archived yet (a base restored on its own), the base's ``meta`` gives the
    segment size and system id of the archive this starts."""
    new = report.get("new_timeline")
    if not new or new == tli:
        return
    slot = str(o.get("slot") or default_slot(name))
    with server.connect() as conn:
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true) WHERE NOT EXISTS "
                     "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)", (slot, slot))
    server.stop()
    pg_wal = server.datadir / "pg_wal"
    catalog = walstore.WalCatalog.load(repo, name)
    seg = catalog.seg_size or int(meta["wal_segment_size"])
    current = wn.lsn_segno(checkpoint_lsn(server), seg)
    ours = []
    for p in sorted(pg_wal.iterdir()):
        if wn.classify(p.name) == "segment":
            ptli, segno = wn.parse_segment(p.name, seg)
            if ptli == new and segno <= current:  # later names are recycled old segments
                ours.append(p)
    files = [pg_wal / f"{new:08X}.history", *ours]
    names = {p: p.name for p in files}
    if ours and wn.parse_segment(ours[-1].name, seg)[1] == current:
        names[ours[-1]] = ours[-1].name + ".partial"  # still being written
    walstore.push(repo, name, [p for p in files if p.exists()], seg_size=seg,
                  system_id=catalog.system_id or meta.get("system_id"), catalog=catalog,
                  as_name=names)
    report["failover"] = {"slot": slot, "archived": sorted(names.values())}
    if _flag(o, "keep_running", False):
        server.start(timeout=600)
        server.wait_ready(timeout=600)


def checkpoint_lsn(server: Server) -> int:
    """The latest checkpoint's location from pg_controldata (after a clean stop: the end)."""
    out = run([binary("pg_controldata", server.version), str(server.datadir)], timeout=60,
              **server_user_kwargs(server.datadir)).stdout
    for line in out.splitlines():
        if line.startswith("Latest checkpoint location:"):
            return wn.parse_lsn(line.split(":", 1)[1])
    raise SourceError(f"pg_controldata gave no checkpoint location for {server.datadir}")
