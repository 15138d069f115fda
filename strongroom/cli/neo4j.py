"""``strongroom backup neo4j``: online logical export of a Neo4j database (or a neo4j-admin dump).

Restores go through ``strongroom restore SNAP --target bolt://host:port/db [--replace]`` with
``--restore-option user=... --restore-option password_env=VAR`` (or password_file=PATH).
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
    open_repo,
)
from strongroom.cli.core import snapshot_row
from strongroom.cli.output import console, emit_json
from strongroom.errors import ConfigError


@backup_app.command("neo4j")
def backup_neo4j_cmd(
    uri: Annotated[str, typer.Option("--uri", help="bolt://host:port (or neo4j://...).")
                   ] = "bolt://127.0.0.1:7687",
    user: Annotated[str, typer.Option("--user", help="Neo4j user.")] = "neo4j",
    password_env: Annotated[str | None, typer.Option(
        "--password-env", help="Environment variable holding the Neo4j password "
        "(default: STRONGROOM_NEO4J_PASSWORD if set, else no auth).")] = None,
    neo4j_password_file: Annotated[Path | None, typer.Option(
        "--neo4j-password-file", help="File holding the Neo4j password.")] = None,
    database: Annotated[str, typer.Option("--database", help="Database to export.")] = "neo4j",
    name: Annotated[str | None, typer.Option(help="Source name (default: neo4j-DATABASE).")
                    ] = None,
    kind: Annotated[str, typer.Option("--kind", help="full, incremental or differential "
                                      "(lineage only: the export is always complete).")
                    ] = "full",
    tag: Annotated[list[str] | None, typer.Option(help="Tag the snapshot (repeatable).")
                   ] = None,
    consistent: Annotated[bool, typer.Option(
        "--consistent", help="Fingerprint before the export and retry unless the export "
        "matches it (the online export has no snapshot isolation).")] = False,
    attempts: Annotated[int, typer.Option(help="Attempts for --consistent.")] = 3,
    method: Annotated[str, typer.Option(help="logical (online, over Bolt) or dump "
                                        "(neo4j-admin on this host, database stopped).")
                      ] = "logical",
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Back up a Neo4j database: schema, every node and relationship, exact property types."""
    from strongroom.sources.neo4j.auth import password_from
    from strongroom.sources.neo4j.backup import backup_neo4j

    if method not in ("logical", "dump"):
        raise ConfigError(f"unknown Neo4j backup method {method!r} (logical or dump)")
    r = open_repo(repo, password_file, key_file, option)
    if method == "dump":
        from strongroom.sources.neo4j.physical import backup_dump

        snap = backup_dump(r, database, name=name, tags=tag or [])
    else:
        snap = backup_neo4j(r, uri, user=user,
                            password=password_from(password_env, neo4j_password_file),
                            database=database, name=name, kind=kind, tags=tag or [],
                            consistent=consistent, attempts=attempts)
    if json:
        emit_json(snapshot_row(snap))
        return
    meta = snap.meta
    what = (f"{meta.get('nodes')} nodes, {meta.get('relationships')} relationships, "
            f"{len(meta.get('schema', []))} schema items" if method == "logical"
            else "neo4j-admin dump")
    console.print(f"snapshot {snap.short_id} saved ({snap.source_name}): {what}"
                  + (", consistent" if meta.get("consistent") else ""), markup=False)
