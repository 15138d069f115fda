"""``strongroom backup s3``: a bucket or prefix of S3 / MinIO, optionally every version.

Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profile,
role); the endpoint from --endpoint or AWS_ENDPOINT_URL. Restores go through the generic
``strongroom restore SNAP --target s3://bucket/prefix [--replace] --restore-option k=v``.
"""

from __future__ import annotations

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
from strongroom.errors import ConfigError


@backup_app.command("s3")
def backup_s3_cmd(
    bucket: Annotated[str, typer.Option("--bucket", help="Bucket to back up.")],
    name: Annotated[str, typer.Option("--name", help="Source name of the snapshots.")],
    prefix: Annotated[str, typer.Option(help="Only keys starting with this (literal) prefix.")
                      ] = "",
    endpoint: Annotated[str | None, typer.Option(
        "--endpoint", help="S3 endpoint URL (default: AWS_ENDPOINT_URL or AWS).")] = None,
    versions: Annotated[bool, typer.Option("--versions", help="Every version and delete "
                                           "marker, not only current objects.")] = False,
    kind: Annotated[str, typer.Option(help="full, or incremental (list against the latest "
                                      "snapshot, reuse unchanged objects).")] = "incremental",
    refresh_tags: Annotated[bool, typer.Option(help="Re-read tags of unchanged objects (tags "
                                               "change without a new ETag).")] = True,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Parallel downloads.")] = 4,
    tag: Annotated[list[str] | None, typer.Option(help="Tag the snapshot (repeatable).")] = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Back up an S3 / MinIO bucket or prefix into a new snapshot."""
    from strongroom.sources.s3.backup import backup_bucket

    if kind not in ("full", "incremental", "differential"):
        raise ConfigError(f"--kind must be full, incremental or differential, not {kind!r}")
    r = open_repo(repo, password_file, key_file, option)
    with progress_bar("backup", enabled=not json) as progress:
        snap = backup_bucket(r, bucket, name, prefix=prefix, endpoint=endpoint,
                             versions=versions, kind=kind, tags=tag or [],
                             refresh_tags=refresh_tags, workers=workers, progress=progress)
    m = snap.meta
    if json:
        emit_json(snapshot_row(snap))
    else:
        console.print(f"snapshot {snap.short_id} saved ({snap.kind}"
                      f"{', parent ' + snap.parent[:8] if snap.parent else ''}): "
                      f"s3://{bucket}/{prefix} {m['objects']} objects ({human_bytes(m['bytes'])}), "
                      f"downloaded {m['downloaded']}, reused {m['reused']}, new "
                      f"{human_bytes(snap.stats.bytes_new)} in {snap.stats.duration_s:.1f} s",
                      markup=False)
    if m.get("skipped_archived"):
        for key in m["skipped_keys"][:20]:
            err_console.print(f"warning: archived, not readable: {key}", markup=False)
        raise fail(f"snapshot {snap.short_id} saved, but {m['skipped_archived']} archived "
                   "object(s) could not be read (restore them from the archive class first)",
                   code=3)
