"""Redis restore targets: the block's settings pointed at one, and the checks made before a
recovery stops or overwrites anything (kind of target, keys already there, memory limit, disk).

A live target is ``redis[s]://[user@]host[:port][/db]``. A Redis snapshot holds every database
of its server and a restore writes each into the database of the same number, so a ``/db`` in
the target names no narrower part: the whole server is checked, and a safety snapshot keeps
every database of it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from strongroom.errors import ConfigError, TargetTooSmall
from strongroom.sources.contract import shown_target
from strongroom.sources.redis.conn import Endpoint, connect, errors, parse_url, redact

LIVE_SCHEMES = ("redis", "rediss")
# The names a stopped server's directory is checked for when the restore options are not known
# (the restore itself checks the names its options give).
DIR_FILES = ("dump.rdb", "appendonlydir", "appendonly.aof")


def is_directory_target(target: str) -> bool:
    """A stopped server's data directory (a path or ``file://``), restored with mode=rdb-dir."""
    return target.startswith("file://") or "://" not in target


def settings_for(settings: dict[str, Any], target: str) -> dict[str, Any] | None:
    """The block's ``settings`` pointed at a live ``target``, logging in as a live restore into
    it does (the target's user, else the block's; the block's password, else the target's);
    None for anything but a redis URL with a host."""
    try:
        parts = urlsplit(target)
        port = parts.port or 6379
    except ValueError:
        return None
    if parts.scheme not in LIVE_SCHEMES or not parts.hostname:
        return None
    out = {**settings, "url": None, "host": parts.hostname, "port": port,
           "tls": parts.scheme == "rediss"}
    if parts.username:
        out["username"] = unquote(parts.username)
    if parts.password and settings.get("password") is None and not settings.get("password_env"):
        out["password"] = unquote(parts.password)
    return out


def endpoint(settings: dict[str, Any]) -> Endpoint:
    """The server a block's settings name, with its credentials, as its backup reads it."""
    url = settings.get("url")
    if not url:
        user = f"{settings['username']}@" if settings.get("username") else ""
        url = (f"{'rediss' if settings.get('tls') else 'redis'}://{user}"
               f"{settings.get('host') or '127.0.0.1'}:{settings.get('port') or 6379}")
    return parse_url(url, settings.get("password_env"), settings.get("password"))


def in_place(settings: dict[str, Any]) -> str:
    """The block's server as a live restore target (no password: restores log in with the
    block's)."""
    if settings.get("url"):
        return redact(str(settings["url"]))
    ep = endpoint({**settings, "password": None, "password_env": None})
    return ep.label


def holds_keys(settings: dict[str, Any]) -> list[int]:
    """The databases that hold keys on the server ``settings`` name."""
    from strongroom.sources.redis.inventory import keyspace_dbs

    ep = endpoint(settings)
    client = connect(ep, "restore target")
    with errors(ep, "restore target"):
        return keyspace_dbs(client)


def check_live(settings: dict[str, Any], target: str, *, replace: bool, size: int
               ) -> list[str]:
    """A live target: it answers with these credentials, holds no keys unless ``replace``
    (the live restore's own rule), and its ``maxmemory`` leaves room for ``size`` bytes of RDB.

    An RDB is never larger than the memory its data takes once loaded (the same encodings,
    plus per-key overhead, less compression), so the server's start-up memory plus ``size``
    is the least it will use afterwards: a ``maxmemory`` below that fails or evicts for sure.
    With ``replace`` the keys already there may be overwritten rather than added to, so only
    their worst case is a note."""
    from strongroom.sources.redis.inventory import keyspace_dbs
    from strongroom.sources.redis.live import refuse_busy

    pointed = settings_for(settings, target)
    if pointed is None:
        raise ConfigError(f"a redis source cannot restore into {shown_target(target)} (expected "
                          "redis://host:port or a stopped server's data directory)")
    notes = []
    db = urlsplit(target).path.strip("/")
    if db and not db.isdigit():
        raise ConfigError(f"bad database {db!r} in redis target {shown_target(target)} (a "
                          "number, or none)")
    if db:
        notes.append(f"{redact(target)}: a redis restore writes every database of the snapshot "
                     f"into the database of the same number, not only db {db}")
    ep = endpoint(pointed)
    client = connect(ep, "restore target")
    with errors(ep, "restore target"):
        busy = keyspace_dbs(client)
        memory = client.info("memory")
    refuse_busy(ep, busy, replace)
    limit = int(memory.get("maxmemory") or 0)
    used = int(memory.get("used_memory") or 0)
    startup = int(memory.get("used_memory_startup") or 0)
    if limit == 0:
        notes.append(f"{ep.label} has no maxmemory limit ({_mib(used)} in use; the snapshot's "
                     f"RDB is {_mib(size)})")
        return notes
    least = (startup if replace else used) + size
    if least > limit:
        raise TargetTooSmall(f"restore target {ep.label} has maxmemory {_mib(limit)}; the "
                             f"snapshot's RDB alone is {_mib(size)} and the server needs "
                             f"{_mib(startup if replace else used)} besides, so at least "
                             f"{_mib(least)} (raise maxmemory, e.g. CONFIG SET maxmemory, or "
                             "restore elsewhere)")
    flush = str(settings.get("flush", "")).lower() in ("1", "yes", "true")
    policy = str(memory.get("maxmemory_policy") or client.config_get(
        "maxmemory-policy").get("maxmemory-policy") or "noeviction")
    if used + size > limit and not flush and policy != "noeviction":
        raise TargetTooSmall(f"restore target {ep.label}: {_mib(used)} in use plus the "
                             f"snapshot's {_mib(size)} exceed maxmemory {_mib(limit)}, and its "
                             f"policy {policy} would evict live keys to make room: restore "
                             "with flush=yes, raise maxmemory, or restore elsewhere")
    if used + size > limit:
        notes.append(f"{ep.label}: {_mib(used)} in use plus the snapshot's {_mib(size)} exceed "
                     f"maxmemory {_mib(limit)} unless the restore overwrites enough of what is "
                     "there (flush=yes empties it first)")
    else:
        notes.append(f"{ep.label}: maxmemory {_mib(limit)}, {_mib(used)} in use, snapshot "
                     f"RDB {_mib(size)}")
    return notes


def check_directory(target: str, *, replace: bool, size: int) -> list[str]:
    """A stopped server's data directory: a directory (or none yet) no redis-server runs in,
    holding no RDB or AOF unless ``replace`` (the rdb-dir restore's own rule), on a file system
    with room for the RDB (and a rebuilt AOF of about its size when one is there)."""
    from strongroom.sources.redis.place import refuse_busy_dir

    directory = Path(target.removeprefix("file://")).expanduser().absolute()
    refuse_busy_dir(directory, DIR_FILES, replace)
    existing = directory
    while not existing.exists():
        existing = existing.parent
    aof = any((directory / n).exists() for n in DIR_FILES[1:])
    need = size * (2 if aof else 1)
    free = shutil.disk_usage(existing).free
    if need > free:
        raise TargetTooSmall(f"restore target {directory} has {_mib(free)} free; the "
                             f"snapshot's RDB{' and a rebuilt AOF' if aof else ''} need "
                             f"{_mib(need)}")
    return [f"{directory}: {_mib(free)} free, the restore writes about {_mib(need)}; replaced "
            "files are moved aside, not deleted"]


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB ({n} bytes)"
