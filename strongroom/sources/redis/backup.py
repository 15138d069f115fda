"""Redis backup: a point-in-time RDB pulled through replication, checked, then sealed.

``redis-cli --rdb`` pulls a consistent RDB over the replication protocol (all databases), the
file is validated (magic, version, CRC-64) and loaded into a private scratch redis-server whose
per-database key counts, types, expiries and value checksums go into the snapshot's meta; then
the RDB is sealed as ``dump.rdb``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongroom.errors import NotSupported, SourceError, SourceUnreachable
from strongroom.sources.redis.conn import Endpoint, connect, database_count, errors, parse_url
from strongroom.sources.redis.inventory import DbFacts
from strongroom.sources.redis.rdb import RDB_PATH, RdbInfo, validate_file
from strongroom.sources.redis.scratch import load_facts, scratch

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot

DEFAULT_TIMEOUT = 3600.0
# What redis-cli prints when the server is down, drops the connection or is still loading.
_UNREACHABLE_CLI = ("could not connect to redis", "i/o error", "connection reset",
                    "connection refused", "loading")


def fetch_rdb(ep: Endpoint, dest: Path, timeout: float = DEFAULT_TIMEOUT) -> None:
    """``redis-cli --rdb dest``: a consistent RDB via SYNC; the password goes by environment."""
    cli = shutil.which("redis-cli")
    if not cli:
        raise NotSupported("redis-cli is not installed (needed to take Redis snapshots)")
    cmd = [cli, "-h", ep.host, "-p", str(ep.port), "--no-auth-warning", "--rdb", str(dest)]
    if ep.username:
        cmd += ["--user", ep.username]
    if ep.tls:
        cmd.append("--tls")
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    if ep.password:
        env["REDISCLI_AUTH"] = ep.password
    try:
        proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        dest.unlink(missing_ok=True)
        raise SourceError(f"redis-cli --rdb from {ep.label} did not finish within "
                          f"{timeout:.0f} s") from None
    if proc.returncode != 0 or not dest.exists() or dest.stat().st_size == 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).decode(errors="replace").splitlines()
                 if ln.strip()]
        reason = lines[-1] if lines else f"exit code {proc.returncode}"
        if ep.password:
            reason = reason.replace(ep.password, "***")
        cls = SourceUnreachable if any(t in reason.lower() for t in _UNREACHABLE_CLI) \
            else SourceError
        raise cls(f"cannot take an RDB snapshot of {ep.label}: {reason}")


def backup_redis(repo: Repository, url: str, name: str, *, password_env: str | None = None,
                 password: str | None = None, tags: list[str] | tuple[str, ...] = (),
                 kind: str = "full", timeout: float = DEFAULT_TIMEOUT,
                 workdir: str | Path | None = None,
                 progress: Callable[[int], None] | None = None) -> Snapshot:
    """Snapshot every database of the server at ``url`` into a new ``redis`` snapshot.

    Every Redis snapshot is a complete RDB: ``kind`` "snapshot" is kept (its retention tier),
    any other kind is recorded as "full"."""
    ep = parse_url(url, password_env, password)
    client = connect(ep)
    with errors(ep):
        version = client.info("server").get("redis_version", "")
        databases = database_count(client)
    with tempfile.TemporaryDirectory(prefix="strongroom-redis-", dir=workdir) as tmp:
        rdb = Path(tmp) / "dump.rdb"
        started = time.time()
        fetch_rdb(ep, rdb, timeout)
        info = validate_file(rdb, f"RDB from {ep.label}")
        with scratch(Path(tmp), databases) as proc:
            facts = load_facts(proc)
        meta = _meta(ep, version, databases, info, facts, started)
        with repo.writer(source_name=name, source_kind="redis",
                         kind="snapshot" if kind == "snapshot" else "full", tags=list(tags),
                         paths=[ep.label], progress=progress) as w:
            with open(rdb, "rb") as f:
                node = w.add_stream(RDB_PATH, f, mode=0o600, meta=info.as_meta())
            if node.sha256 != info.sha256:
                raise SourceError(f"RDB from {ep.label} changed while it was being stored")
            w.set_meta(meta)
            return w.commit()


def _meta(ep: Endpoint, version: str, databases: int, info: RdbInfo,
          facts: dict[int, DbFacts], started: float) -> dict[str, Any]:
    return {"endpoint": ep.label, "redis_version": version, "databases": databases,
            "rdb": {k: v for k, v in info.as_meta().items() if k != "aux"},
            "rdb_aux": info.aux, "snapshot_time_ms": int(started * 1000),
            "keys": sum(f.keys for f in facts.values()),
            "dbs": {str(db): f.as_meta() for db, f in sorted(facts.items())}}


def backup_from_settings(repo: Repository, *, name: str, kind: str = "full",
                         tags: list[str] | None = None, host: str = "127.0.0.1",
                         port: int = 6379, password: str | None = None,
                         username: str | None = None, tls: bool = False, url: str | None = None,
                         password_env: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                         **_ignored: Any) -> Snapshot:
    """Back up from a Redis source block's settings (host, port, username, password, tls), or
    from ``url`` (+ ``password_env``) for direct callers; other keys are ignored."""
    if url is None:
        user = f"{username}@" if username else ""
        url = f"{'rediss' if tls else 'redis'}://{user}{host}:{port}"
    return backup_redis(repo, url, name, password_env=password_env, password=password,
                        tags=tags or [], kind=kind, timeout=timeout)
