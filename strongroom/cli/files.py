"""``strongroom backup files``: files and directories on this host into a new snapshot.

Restores go through the generic ``strongroom restore SNAP --target DIR [--replace]``.
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
from strongroom.cli.output import console, emit_json, err_console, fail, human_bytes, progress_bar

KindOpt = Annotated[str, typer.Option("--kind", help="full, incremental or differential.")]


@backup_app.command("files")
def backup_files_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files and directories to back up.")],
    kind: KindOpt = "incremental",
    name: Annotated[str | None, typer.Option(help="Source name (default: first path).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag the snapshot (repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Glob to skip (repeatable).")] = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Back up files and directories into a new snapshot."""
    from strongroom.sources.files import backup_files

    r = open_repo(repo, password_file, key_file, option)
    with progress_bar("backup", enabled=not json) as progress:
        result = backup_files(r, [str(p) for p in paths], name, kind, tag or [], exclude or [],
                              progress)
    snap = result.snapshot
    if json:
        emit_json({**snapshot_row(snap), "errors": result.errors})
    else:
        st = snap.stats
        console.print(f"snapshot {snap.short_id} saved ({snap.kind}"
                      f"{', parent ' + snap.parent[:8] if snap.parent else ''}): "
                      f"{st.files} files, {human_bytes(st.bytes_total)}, "
                      f"read {human_bytes(st.bytes_read)}, "
                      f"new {human_bytes(st.bytes_new)}, stored {human_bytes(st.bytes_stored)} "
                      f"in {st.duration_s:.1f} s")
    if result.errors:
        for line in result.errors[:20]:
            err_console.print(f"warning: cannot read {line}", markup=False)
        raise fail(f"snapshot {snap.short_id} saved, but {len(result.errors)} item(s) could not "
                   "be read", code=3)


