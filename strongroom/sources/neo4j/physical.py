"""Physical method: ``neo4j-admin database dump/load``, only where the binary exists.

A dump needs the database offline (stopped) on the local host; it is an exact store copy,
indexes included. The logical method in :mod:`strongroom.sources.neo4j.backup` works online and
across versions; use this one for very large stores on a host running Neo4j.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from strongroom.errors import ConfigError, IntegrityError, NotSupported, SourceError
from strongroom.repository import Repository, Snapshot

DUMP_FILE = "neo4j.dump"
TIMEOUT_S = 6 * 3600


def find_admin(path: str | None = None) -> str:
    """The neo4j-admin binary, or NotSupported when this host has none."""
    found = path or shutil.which("neo4j-admin")
    if not found or not Path(found).exists():
        raise NotSupported("neo4j-admin is not installed on this host (the dump/load method "
                           "needs it; use the logical method instead)")
    return found


def _run(cmd: list[str], timeout: float) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SourceError(f"{Path(cmd[0]).name} {cmd[1]} {cmd[2]} timed out after "
                          f"{timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise SourceError(f"{Path(cmd[0]).name} {cmd[2]} failed: "
                          f"{tail[-1] if tail else 'exit ' + str(proc.returncode)}")


def backup_dump(repo: Repository, database: str = "neo4j", *, name: str | None = None,
                tags: list[str] | None = None, neo4j_admin: str | None = None,
                timeout: float = TIMEOUT_S) -> Snapshot:
    """Dump a stopped local database with neo4j-admin and store the dump file."""
    admin = find_admin(neo4j_admin)
    with tempfile.TemporaryDirectory(prefix="strongroom-neo4j-") as tmp:
        started = time.monotonic()
        _run([admin, "database", "dump", database, f"--to-path={tmp}"], timeout)
        dump = Path(tmp) / f"{database}.dump"
        if not dump.is_file():
            raise SourceError(f"neo4j-admin wrote no {dump.name}")
        with repo.writer(source_name=name or f"neo4j-{database}", source_kind="neo4j",
                         kind="full", tags=tags or [], paths=[database]) as w:
            with dump.open("rb") as fh:
                node = w.add_stream(DUMP_FILE, fh, mode=0o600)
            w.set_meta({"method": "dump", "database": database, "dump_sha256": node.sha256,
                        "export_seconds": round(time.monotonic() - started, 3)})
            return w.commit()


def restore_dump(repo: Repository, snap: Snapshot, target: str, *, replace: bool = False,
                 neo4j_admin: str | None = None, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """Load a dump snapshot into the local database named by ``target``
    (``neo4j-admin:DBNAME`` or a bare name); the database must be stopped."""
    admin = find_admin(neo4j_admin)
    database = target.removeprefix("neo4j-admin:").strip("/") or "neo4j"
    if "://" in database:
        raise ConfigError("a dump snapshot restores with neo4j-admin into a local database: "
                          "use --target neo4j-admin:DBNAME")
    with tempfile.TemporaryDirectory(prefix="strongroom-neo4j-") as tmp:
        dest = Path(tmp) / f"{database}.dump"
        with repo.reader(snap).open(DUMP_FILE) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        expected = (snap.meta or {}).get("dump_sha256")
        if expected and repo.reader(snap).node(DUMP_FILE).sha256 != expected:
            raise IntegrityError(f"dump in snapshot {snap.short_id} does not match its record")
        cmd = [admin, "database", "load", database, f"--from-path={tmp}"]
        if replace:
            cmd.append("--overwrite-destination=true")
        _run(cmd, timeout)
    return {"snapshot": snap.id, "target": database, "method": "dump", "verified": True}
