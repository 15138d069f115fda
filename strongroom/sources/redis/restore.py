"""Redis restore: checks the options, then restores live or into a stopped server's directory.

``mode=live`` (target ``redis://host:port``, the default for such targets): see :mod:`.live`;
``mode=rdb-dir`` (target a directory): ``dump.rdb`` is placed into a stopped server's data
directory, with a rebuilt AOF when the server uses appendonly (see :mod:`.place`). Both are
verified key by key afterwards; any difference is an IntegrityError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from strongroom.errors import ConfigError
from strongroom.sources.redis.conn import redact
from strongroom.sources.redis.live import restore_live
from strongroom.sources.redis.place import restore_rdb_dir

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot

# password comes only from in-process callers (a Prefect source block)
RESTORE_OPTIONS = {"mode", "workdir", "password_env", "password", "username", "flush",
                   "ttl_tolerance_ms", "config", "appendonly", "dbfilename", "appenddirname",
                   "appendfilename"}


def restore_redis(repo: Repository, snap: Snapshot, target: str, *, replace: bool = False,
                  include: list[str] | None = None, options: dict[str, Any] | None = None,
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Restorer for ``redis`` snapshots (see the module doc for modes and options);
    ``progress(n)`` is called with the bytes of the snapshot's RDB as they are written."""
    opts = dict(options or {})
    unknown = sorted(set(opts) - RESTORE_OPTIONS)
    if unknown:  # a misspelt flush= or appendonly= must not silently do the default
        raise ConfigError(f"unknown redis restore option(s) {', '.join(unknown)} (known: "
                          f"{', '.join(sorted(RESTORE_OPTIONS - {'password'}))})")
    if include:
        raise ConfigError("--include is not supported for redis snapshots (all databases "
                          "are restored)")
    default = "live" if target.startswith(("redis://", "rediss://")) else "rdb-dir"
    mode = str(opts.get("mode") or default).replace("_", "-")
    workdir = opts.get("workdir")
    if mode == "live":
        return restore_live(repo, snap, target, replace=replace, options=opts, workdir=workdir,
                            progress=progress)
    if mode == "rdb-dir":
        if "://" in target and not target.startswith("file://"):
            raise ConfigError(f"mode=rdb-dir needs a directory, not {redact(target)!r}")
        return restore_rdb_dir(repo, snap, target, replace=replace, options=opts,
                               progress=progress)
    raise ConfigError(f"unknown redis restore mode {mode!r} (live or rdb-dir)")
