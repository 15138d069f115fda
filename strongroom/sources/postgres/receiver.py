"""Continuous WAL archiving: pg_receivewal (replication slot, --synchronous) into a local
spool, each completed segment stored in the repository as soon as it appears, the current
``.partial`` stored whenever the stream breaks (and every ``partial_interval`` seconds), and
the lag reported."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from strongroom.errors import SourceError, StrongroomError
from strongroom.repository import Repository
from strongroom.sources.postgres import walnames as wn
from strongroom.sources.postgres import walstore
from strongroom.sources.postgres.conn import Dsn, server_info
from strongroom.sources.postgres.pgbin import binary, last_error, run

log = logging.getLogger("strongroom.postgres.receiver")


def default_slot(name: str) -> str:
    return f"strongroom_{name}".replace("-", "_").replace(".", "_").lower()


class Receiver:
    """Runs until :meth:`stop`; call :meth:`run` in the foreground (the CLI) or a thread."""

    def __init__(self, repo: Repository, dsn: str | Dsn, name: str, spool: Path, *,
                 slot: str | None = None, status_file: Path | None = None,
                 status_interval: float = 5.0, partial_interval: float = 0.0,
                 poll: float = 0.2, emit: Any = None) -> None:
        self.repo = repo
        self.dsn = Dsn.parse(dsn)
        self.name = name
        self.spool = Path(spool)
        self.slot = slot or default_slot(name)
        self.status_file = status_file
        self.status_interval = status_interval
        self.partial_interval = partial_interval
        self.poll = poll
        self.emit = emit
        self._stop = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.stored_segments = 0
        self.last_stored: str | None = None
        self.partials_stored = 0
        self.last_status: dict[str, Any] = {}
        self.errors = 0
        self.last_error = ""

    # ---- control ------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def _prepare(self) -> None:
        with self.dsn.connect() as conn:
            info = server_info(conn)
        info.require_physical(self.dsn.where)
        self.version = info.version
        self.seg_size = info.wal_segment_size
        self.system_id = info.system_id
        self.spool.mkdir(parents=True, exist_ok=True)
        run([binary("pg_receivewal", self.version), "-d", self.dsn.conninfo, "--slot",
             self.slot, "--create-slot", "--if-not-exists", "-w"], timeout=60,
            env=self.dsn.env(), what="pg_receivewal --create-slot")

    def _start(self) -> None:
        args = [binary("pg_receivewal", self.version), "-d", self.dsn.conninfo, "-D",
                str(self.spool), "--slot", self.slot, "--synchronous", "-n", "-w",
                "-s", "1"]
        self.proc = subprocess.Popen(args, env=self.dsn.env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def run(self) -> dict[str, Any]:
        """Stream until stopped; reconnects with back-off when the server goes away."""
        self._prepare()
        backoff = 1.0
        next_status = 0.0
        next_partial = time.monotonic() + self.partial_interval
        restart_at = 0.0
        self._start()
        try:
            while not self._stop.is_set():
                self._guarded(self.store_completed)
                now = time.monotonic()
                if self.proc is not None and self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode(errors="replace") if \
                        self.proc.stderr else ""
                    self.last_error = last_error(err)
                    self.errors += 1
                    self.proc = None
                    self._guarded(self.store_completed)
                    self._guarded(self.store_partial)
                    restart_at = now + backoff
                    backoff = min(backoff * 2, 10.0)
                if self.proc is None and now >= restart_at:
                    try:
                        self._start()
                    except OSError as exc:
                        self.last_error = str(exc)
                if self.partial_interval and now >= next_partial:
                    self._guarded(self.store_partial)
                    next_partial = now + self.partial_interval
                if now >= next_status:
                    self.report()
                    next_status = now + self.status_interval
                    if self.proc is not None:
                        backoff = 1.0
                self._stop.wait(self.poll)
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self._guarded(self.store_completed)
            self._guarded(self.store_partial)
            self.report()
        return self.last_status

    # ---- storing ------------------------------------------------------------------------
    def _guarded(self, fn: Any) -> Any:
        """Run a store step; a repository or file system failure is reported and retried at
        the next poll (the files stay in the spool, so nothing is lost). Never let it end the
        loop: a receiver that stops storing loses everything after it, with no gap to show."""
        try:
            return fn()
        except (StrongroomError, OSError) as exc:
            self.errors += 1
            self.last_error = str(exc)
            log.warning("storing WAL failed (will retry): %s", exc)
            return None

    def store_completed(self) -> int:
        """Store every completed segment and history file in the spool, then delete them."""
        ready = sorted(p for p in self.spool.iterdir()
                       if wn.classify(p.name) in ("segment", "history"))
        if not ready:
            return 0
        catalog = walstore.WalCatalog.load(self.repo, self.name)
        walstore.push(self.repo, self.name, ready, seg_size=self.seg_size,
                      system_id=self.system_id, catalog=catalog)
        for p in ready:
            if wn.classify(p.name) == "segment":
                self.stored_segments += 1
                self.last_stored = p.name
            p.unlink()
        self._maybe_compact()
        return len(ready)

    def store_partial(self) -> bool:
        """Store the current ``.partial`` (kept locally: pg_receivewal resumes from it).

        pg_receivewal appends to it and renames it when the segment is complete, so it is
        copied first and the copy stored: any copy is a valid prefix of the segment, and a
        rename during the store (the segment completed: :meth:`store_completed` stores it)
        neither fails nor stops the receiver."""
        partials = sorted(self.spool.glob("*.partial"))
        if not partials:
            return False
        live = partials[-1]
        work = self.spool / ".partial-copy"  # pg_receivewal ignores subdirectories
        work.mkdir(exist_ok=True)
        copy = work / live.name
        try:
            shutil.copyfile(live, copy)
        except FileNotFoundError:  # completed and renamed meanwhile
            return False
        try:
            snap = walstore.push(self.repo, self.name, [copy], seg_size=self.seg_size,
                                 system_id=self.system_id, as_name={copy: live.name})
        finally:
            copy.unlink(missing_ok=True)
        if snap is not None:
            self.partials_stored += 1
        return snap is not None

    def _maybe_compact(self) -> None:
        catalog = walstore.WalCatalog.load(self.repo, self.name)
        if len(catalog.snapshots) >= walstore.COMPACT_AT:
            walstore.compact(self.repo, self.name, catalog)

    # ---- status -------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """Lag in bytes between the server's WAL position, what was received, and what is
        stored in the repository; written to ``status_file`` and passed to ``emit``."""
        status: dict[str, Any] = {"time": datetime.now(UTC).isoformat(), "name": self.name,
                                  "slot": self.slot, "streaming": self.proc is not None
                                  and self.proc.poll() is None,
                                  "segments_stored": self.stored_segments,
                                  "last_segment": self.last_stored,
                                  "partials_stored": self.partials_stored,
                                  "errors": self.errors, "last_error": self.last_error}
        archived = None
        if self.last_stored:
            _, segno = wn.parse_segment(self.last_stored, self.seg_size)
            archived = (segno + 1) * self.seg_size
            status["archived_lsn"] = wn.format_lsn(archived)
        try:
            with self.dsn.connect() as conn:
                row = conn.execute(
                    "SELECT pg_current_wal_lsn()::text, (SELECT restart_lsn::text FROM "
                    "pg_replication_slots WHERE slot_name = %s)", (self.slot,)).fetchone()
            server = wn.parse_lsn(row[0])
            status["server_lsn"] = row[0]
            status["received_lsn"] = row[1]
            if row[1]:
                status["receive_lag_bytes"] = max(0, server - wn.parse_lsn(row[1]))
            if archived is not None:
                status["archive_lag_bytes"] = max(0, server - archived)
            status["server"] = "up"
        except (SourceError, psycopg.Error):
            status["server"] = "unreachable"
        self.last_status = status
        if self.status_file:
            tmp = self.status_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(status))
            tmp.replace(self.status_file)
        if self.emit:
            self.emit(status)
        return status
