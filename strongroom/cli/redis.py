"""``strongroom backup redis``: a point-in-time RDB of every database of a Redis server.

The Redis password comes from the environment variable named by --password-env (never from the
command line, so it shows in no process list or shell history); restores go through the generic
``strongroom restore SNAP --target redis://host:port | DIR [--replace] --restore-option k=v``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strongroom.cli.app import backup_app
from strongroom.cli.common import (
    JsonOpt,
    KeyFileOpt,
    OptionOpt,
    PasswordFileOpt,
    RepoOpt,
    no_password_in_url,
    open_repo,
)
from strongroom.cli.core import snapshot_row
from strongroom.cli.output import console, emit_json, human_bytes, progress_bar


@backup_app.command("redis")
def backup_redis_cmd(
    url: Annotated[str, typer.Option("--url", envvar="STRONGROOM_REDIS_URL", show_envvar=True,
                                     help="redis://[user@]host:port of the server.")],
    name: Annotated[str, typer.Option("--name", help="Source name of the snapshots.")],
    password_env: Annotated[str | None, typer.Option(
        "--password-env", help="Environment variable holding the Redis password.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag the snapshot (repeatable).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds allowed for the RDB transfer.")
                       ] = 3600.0,
    workdir: Annotated[Path | None, typer.Option(help="Where the RDB is staged (default: the "
                                                 "system temp dir).")] = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False, *, ctx: typer.Context,
) -> None:
    """Back up every database of a Redis server (consistent RDB through replication)."""
    from strongroom.sources.redis.backup import backup_redis

    source = ctx.get_parameter_source("url")  # typer's own click: compare by name
    if source is not None and source.name == "COMMANDLINE":
        no_password_in_url(url, "--url")
    r = open_repo(repo, password_file, key_file, option)
    with progress_bar("backup", enabled=not json) as progress:
        snap = backup_redis(r, url, name, password_env=password_env, tags=tag or [],
                            timeout=timeout, workdir=workdir, progress=progress)
    if json:
        emit_json(snapshot_row(snap))
        return
    m = snap.meta
    dbs = ", ".join(f"db{db} {f['keys']}" for db, f in m["dbs"].items()) or "no keys"
    console.print(f"snapshot {snap.short_id} saved: {m['endpoint']} (redis {m['redis_version']})"
                  f", {m['keys']} keys ({dbs}), RDB v{m['rdb']['version']} "
                  f"{human_bytes(m['rdb']['size'])} checksum {m['rdb']['checksum']}, new "
                  f"{human_bytes(snap.stats.bytes_new)} in {snap.stats.duration_s:.1f} s",
                  markup=False)
