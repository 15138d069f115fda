"""``strongroom backup files``: files and directories on this host into a new snapshot.

Restores go through the generic ``strongroom restore SNAP --target DIR [--replace]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from strongroom.cli.output import (
    ByteProgress,
    console,
    emit_json,
    err_console,
    fail,
    human_bytes,
    progress_bar,
)
from strongroom.errors import StrongroomError
from strongroom.repository import Repository

if TYPE_CHECKING:
    from strongroom.cli._scan import FirstPass

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
        scan = _first_pass(r, paths, name, kind, exclude or [], progress)
        try:
            result = backup_files(r, [str(p) for p in paths], name, kind, tag or [],
                                  exclude or [], progress)
        finally:
            if scan:
                scan.stop()
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




def _first_pass(r: Repository, paths: list[Path], name: str | None, kind: str,
                excludes: list[str], progress: ByteProgress | None) -> FirstPass | None:
    """On a terminal, count what the backup will read beside it, for the bar's total and ETA
    (the files changed since the parent started, or every file of a full backup)."""
    if progress is None or not paths:
        return None
    from strongroom.cli._scan import FirstPass
    from strongroom.sources.parent import choose_parent

    try:
        parent = choose_parent(r, name or os.path.abspath(os.path.expanduser(paths[0])), kind)
    except StrongroomError:
        return None  # e.g. a bad --kind: the backup itself says so
    since = None
    if parent is not None:
        started = parent.time.timestamp() - parent.stats.duration_s
        since = int(started * 1e9)
    scan = FirstPass([str(p) for p in paths], excludes, since, progress.set_total)
    scan.start()
    return scan
