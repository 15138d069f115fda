"""Redis restore into a stopped server's data directory (``mode=rdb-dir``).

Everything is prepared in a staging directory beside the target: the RDB (verified), loaded once
by a private redis-server to check it against the backup's facts, and, when the server runs with
``appendonly yes``, a fresh AOF rewritten from it (with appendonly on, Redis loads the AOF and
ignores dump.rdb, and with no AOF at all it starts EMPTY). Whether the server uses appendonly is
taken from ``appendonly=yes|no``, else from its config file (``config=/etc/redis/redis.conf``),
else from an AOF already in the directory. Only then are old files moved aside and the new ones
renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongroom.errors import ConfigError, IntegrityError, SourceError, TargetNotEmpty
from strongroom.sources.redis.extract import extract_rdb
from strongroom.sources.redis.scratch import load_facts, scratch
from strongroom.sources.redis.verify import check_against_meta

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot

AOF_WAIT = 600.0


def running_servers(directory: Path) -> list[int]:
    """PIDs of redis-server processes whose working directory is ``directory`` (Linux)."""
    pids = []
    real = os.path.realpath(directory)
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if (entry / "comm").read_text().strip().startswith("redis-server") and \
                    os.path.realpath(os.readlink(entry / "cwd")) == real:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def read_config(path: Path) -> dict[str, str]:
    """The few settings of a redis.conf that say where and how data is loaded at start-up."""
    wanted = {"dir", "dbfilename", "appendonly", "appenddirname", "appendfilename"}
    out: dict[str, str] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read redis config {path}: {exc.strerror}") from None
    for line in lines:
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0].lower() in wanted:
            out[parts[0].lower()] = parts[1].strip().strip('"').strip("'")
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _wait_aof(proc: Any, timeout: float = AOF_WAIT) -> None:
    client = proc.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = client.info("persistence")
        if p.get("aof_enabled") and not p.get("aof_rewrite_in_progress") and \
                not p.get("aof_rewrite_scheduled"):
            if p.get("aof_last_bgrewrite_status") != "ok":
                raise SourceError("rebuilding the AOF failed: " + proc.log_tail())
            return
        time.sleep(0.05)
    raise SourceError(f"rebuilding the AOF did not finish within {timeout:.0f} s")


def refuse_busy_dir(directory: Path, names: tuple[str, ...], replace: bool) -> None:
    """ConfigError when a redis-server runs in ``directory`` or it is no directory;
    TargetNotEmpty when it holds one of ``names`` (the RDB, AOF directory or file) and
    ``replace`` is false. The one rule of a restore and of the check before it."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"redis restore target {directory} is not a directory (a stopped "
                          "server's data directory, or redis://host:port)")
    pids = running_servers(directory) if directory.exists() else []
    if pids:
        raise ConfigError(f"a redis-server (pid {pids[0]}) is running in {directory}: stop it "
                          "first, or restore into it live with --target redis://host:port")
    existing = [n for n in names if (directory / n).exists()]
    if existing and not replace:
        raise TargetNotEmpty(f"{directory} already holds {', '.join(existing)} (use --replace; "
                             "the old files are moved aside, not deleted)")


def restore_rdb_dir(repo: Repository, snap: Snapshot, target: str, *, replace: bool,
                    options: dict[str, Any], progress: Callable[[int], None] | None = None
                    ) -> dict[str, Any]:
    """Place the snapshot's RDB (and a rebuilt AOF when needed) into a stopped server's dir."""
    directory = Path(target.removeprefix("file://")).expanduser().absolute()
    conf = read_config(Path(options["config"])) if options.get("config") else {}
    if conf.get("dir") and Path(conf["dir"]).expanduser().absolute() != directory:
        raise ConfigError(f"{options['config']} has dir {conf['dir']}, not the target "
                          f"{directory}")
    dbfilename = options.get("dbfilename") or conf.get("dbfilename", "dump.rdb")
    aofdir = options.get("appenddirname") or conf.get("appenddirname", "appendonlydir")
    aoffile = options.get("appendfilename") or conf.get("appendfilename", "appendonly.aof")
    appendonly = str(options.get("appendonly") or conf.get("appendonly", "auto")).lower()
    if appendonly not in ("auto", "yes", "no"):
        raise ConfigError(f"appendonly={appendonly!r}: use auto, yes or no")
    for name in (dbfilename, aofdir, aoffile):
        if "/" in name or name in ("", ".", ".."):
            raise ConfigError(f"bad file name {name!r} for a redis data directory")
    refuse_busy_dir(directory, (dbfilename, aofdir, aoffile), replace)
    uses_aof = appendonly == "yes" or (appendonly == "auto" and any(
        (directory / n).exists() for n in (aofdir, aoffile)))
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / f".strongroom-restore-{snap.short_id}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    try:
        info = extract_rdb(repo, snap, staging / "dump.rdb", progress)
        settings = {"dbfilename": "dump.rdb", "appenddirname": aofdir,
                    "appendfilename": aoffile}
        with scratch(staging, int(snap.meta.get("databases", 16)), **settings) as proc:
            facts = load_facts(proc)
            expired = check_against_meta(snap, facts)
            if uses_aof:
                proc.client().config_set("appendonly", "yes")
                _wait_aof(proc)
        if _sha256(staging / "dump.rdb") != info.sha256:
            raise IntegrityError(f"{staging / 'dump.rdb'} changed while it was being checked")
        for junk in staging.glob("redis-*.log"):
            junk.unlink()
        aside = _move_aside(directory, [n for n in (dbfilename, aofdir, aoffile)
                                        if (directory / n).exists()])
        _own_like(directory, [staging / "dump.rdb", staging / aofdir])
        os.replace(staging / "dump.rdb", directory / dbfilename)
        if uses_aof:
            os.replace(staging / aofdir, directory / aofdir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:  # made for this restore: a failed one leaves no empty directory behind
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if _sha256(directory / dbfilename) != info.sha256:
        raise IntegrityError(f"{directory / dbfilename} does not match the snapshot after "
                             "placing it")
    note = (f"start redis with appendonly yes, or no: {aofdir} holds the same data"
            if uses_aof else "start redis with appendonly no (with appendonly yes it would start "
            "empty: restore with appendonly=yes for that)")
    return {"snapshot": snap.id, "target": str(directory), "mode": "rdb-dir",
            "rdb": str(directory / dbfilename), "bytes": info.size,
            "aof": f"rebuilt in {aofdir}" if uses_aof else "not used", "note": note,
            "keys": sum(f.keys for f in facts.values()), "expired_since_backup": expired,
            "moved_aside": str(aside) if aside else None, "verified": True}


def _own_like(directory: Path, paths: list[Path]) -> None:
    """As root, give the new files to the data directory's owner (the redis user)."""
    if os.geteuid() != 0:
        return
    st = directory.stat()
    for top in paths:
        if not top.exists():
            continue
        for p in [top, *(top.rglob("*") if top.is_dir() else [])]:
            os.chown(p, st.st_uid, st.st_gid)


def _move_aside(directory: Path, names: list[str]) -> Path | None:
    """Keep replaced files in ``.strongroom-replaced-<time>`` instead of deleting them."""
    if not names:
        return None
    aside = directory / f".strongroom-replaced-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    aside.mkdir()
    for n in names:
        os.replace(directory / n, aside / n)
    return aside
