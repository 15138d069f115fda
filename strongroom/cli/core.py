"""Core commands: init, snapshots, ls, restore, verify (any source kind)."""

from __future__ import annotations

from typing import Annotated

import typer

from strongroom.cli import _listing as listing
from strongroom.cli.app import app
from strongroom.cli.common import (
    JsonOpt,
    KeyFileOpt,
    OptionOpt,
    PasswordFileOpt,
    RepoOpt,
    get_password,
    no_password_in_url,
    open_repo,
    parse_options,
    repo_url,
)
from strongroom.cli.output import (
    console,
    emit_json,
    err_console,
    fail,
    human_bytes,
    print_table,
    progress_bar,
)
from strongroom.repository import Repository, Snapshot
from strongroom.sources import registry


def snapshot_row(s: Snapshot) -> dict[str, object]:
    stored = s.stored_time
    return {"id": s.id, "short_id": s.short_id, "time": s.time.isoformat(), "host": s.host,
            "host_id": s.host_id, "future_dated": s.future_dated,
            "stored_time": stored.isoformat() if stored is not None else None,
            "arrival": s.arrival.isoformat() if s.arrival is not None else None,
            "source": s.source_name, "source_kind": s.source_kind, "kind": s.kind,
            "parent": s.parent, "tags": s.tags, "paths": s.paths, "checksum": s.checksum,
            "stats": s.stats.model_dump(), "meta": s.meta}


@app.command()
def init(repo: RepoOpt = None, password_file: PasswordFileOpt = None,
         key_file: KeyFileOpt = None, option: OptionOpt = None, json: JsonOpt = False,
         pack_size: Annotated[int, typer.Option(min=1, max=512, help="Target pack size in MiB."
                                                )] = 32) -> None:
    """Create a new repository (a random master key wrapped by your password or key file)."""
    url = repo_url(repo)
    if key_file and not key_file.exists():
        from strongroom.crypto.slots import write_new_keyfile

        write_new_keyfile(key_file)
        err_console.print(f"created key file {key_file}: keep a copy somewhere safe",
                          markup=False)
    password = None if key_file else get_password(password_file, None, confirm=True)
    r = Repository.init(url, password, key_file, parse_options(option),
                        pack_target=pack_size * 1024 * 1024)
    if json:
        emit_json({"repository": r.url, "id": r.id})
    else:
        console.print(f"created repository {r.id[:8]} at {r.url}", markup=False)
    err_console.print(LOST_KEY_NOTE, markup=False)


LOST_KEY_NOTE = (
    "note: the repository's data can only be decrypted with this password or key file: lose it "
    "and the data is lost, nobody can recover it. Add a second key now and keep it elsewhere: "
    "strongroom key add --new-password-file FILE (or --new-key-file FILE, or an escrow key: "
    "see 'strongroom key add --help').")


HostOpt = Annotated[str | None, typer.Option("--host", help="Only snapshots written by this "
                                             "host (its name).")]


def _time_cell(s: Snapshot) -> str:
    when = s.time.strftime("%Y-%m-%d %H:%M:%S")
    return f"{when} (future-dated)" if s.future_dated else when


@app.command()
def snapshots(
    source: Annotated[str | None, typer.Option("--name", help="Only this source.")] = None,
    host: HostOpt = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """List snapshots, oldest first (a future-dated one where the storage received it)."""
    r = open_repo(repo, password_file, key_file, option)
    snaps = r.list_snapshots(source, host)
    if json:
        emit_json([snapshot_row(s) for s in snaps])
    else:
        print_table(["id", "time (UTC)", "host", "source", "kind", "parent", "tags", "files",
                     "size", "stored"],
                    [[s.short_id, _time_cell(s), s.host,
                      f"{s.source_name} ({s.source_kind})", s.kind, (s.parent or "")[:8],
                      ",".join(s.tags), str(s.stats.files), human_bytes(s.stats.bytes_total),
                      human_bytes(s.stats.bytes_stored)] for s in snaps])
    for s in snaps:
        arrival = s.arrival
        if s.future_dated and arrival is not None:
            err_console.print(
                f"warning: snapshot {s.short_id} is future-dated: dated {s.time:%Y-%m-%d %H:%M} "
                f"but stored at {arrival:%Y-%m-%d %H:%M} UTC by the storage's clock (its "
                "host's clock was ahead); retention keeps it and 'latest' places it by when it "
                "was stored", markup=False)
    for why in r.damaged_snapshots.values():
        err_console.print(f"warning: {why}", markup=False)


@app.command("ls")
def ls_cmd(
    snapshot: Annotated[str, typer.Argument(help="Snapshot id, prefix or 'latest'.")],
    path: Annotated[str, typer.Argument(help="Folder inside the snapshot.")] = "",
    source: Annotated[str | None, typer.Option("--name", help="With 'latest': the latest of "
                                               "this source.")] = None,
    long: Annotated[bool, typer.Option("--long", "-l", help="Mode (-rw-r-----), owner, group, "
                                       "size, mtime and symlink targets.")] = False,
    host: HostOpt = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """List the files of a snapshot."""
    r = open_repo(repo, password_file, key_file, option)
    snap = r.find_snapshot(snapshot, source, host)
    entries = list(r.reader(snap).walk(path))
    if snapshot == "latest":  # say which one, as restic does (on stderr: stdout stays the list)
        err_console.print(f"latest is snapshot {snap.short_id} of {snap.source_name} "
                          f"({snap.time:%Y-%m-%d %H:%M:%S} UTC)", markup=False)
    if json:
        row = listing.long_row if long else listing.short_row
        emit_json([row(p, n) for p, n in entries])
        return
    lines = (listing.long_lines(entries) if long
             else [listing.short_line(p, n) for p, n in entries])
    for line in lines:
        console.print(line, markup=False, highlight=False)


@app.command()
def restore(
    snapshot: Annotated[str, typer.Argument(help="Snapshot id, prefix or 'latest'.")],
    target: Annotated[str, typer.Option(help="Directory (files) or service URL to restore "
                                        "into.")],
    include: Annotated[list[str] | None, typer.Option(help="Only this path (repeatable).")
                       ] = None,
    source: Annotated[str | None, typer.Option("--name", help="With 'latest': the latest of "
                                               "this source.")] = None,
    replace: Annotated[bool, typer.Option(help="Allow a non-empty target (databases: replace "
                                          "existing data).")] = False,
    restore_option: Annotated[list[str] | None, typer.Option(
        "--restore-option", help="Source-specific restore option key=value.")] = None,
    numeric_owner: Annotated[bool, typer.Option(
        "--numeric-owner", help="Files: owners by the recorded uid/gid only (default: by user "
        "and group name where the name exists on this host, else the number).")] = False,
    keep_setuid: Annotated[bool, typer.Option(
        "--keep-setuid", help="Files: keep setuid/setgid bits outside the original location "
        "(default: kept only restoring in place as root).")] = False,
    stage_wait: Annotated[float | None, typer.Option(
        "--stage-wait", min=0, help="Archive tier: first stage the snapshot's archived data "
        "(restore_object), print the typical wait, and wait up to this many seconds.")] = None,
    retrieval: Annotated[str, typer.Option(help="With --stage-wait: Expedited, Standard or "
                                           "Bulk.")] = "Standard",
    host: HostOpt = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Restore a snapshot; every blob is verified and nothing wrong is ever written."""
    no_password_in_url(target, "--target")
    opts = parse_options(restore_option) | ({"numeric_owner": True} if numeric_owner else {}) \
        | ({"keep_setuid": True} if keep_setuid else {})
    r = open_repo(repo, password_file, key_file, option)
    snap = r.find_snapshot(snapshot, source, host)
    source = registry.get(snap.source_kind)  # NotSupported before anything is staged
    if stage_wait is not None:
        from strongroom.repository.staging import stage_snapshot

        staged = stage_snapshot(r, snap, retrieval_tier=retrieval, wait_s=stage_wait,
                                poll_s=min(30.0, max(stage_wait / 20, 0.2)),
                                on_report=lambda rep: err_console.print(
                                    f"snapshot {snap.short_id}: {rep.estimate()}",
                                    markup=False))
        if staged.requested or staged.in_progress:  # --stage-wait 0: requested, not waited
            raise fail(f"snapshot {snap.short_id}: {staged.estimate()}; run the restore again "
                       "then", code=16)
    with progress_bar("restore", total=snap.stats.bytes_total, enabled=not json) as progress:
        report = source.restore(r, snap, target, replace=replace, include=include or [],
                                options=opts, progress=progress)
    if json:
        emit_json(report)
    else:
        console.print(f"restored snapshot {snap.short_id} to {target}: "
                      + ", ".join(f"{k} {v}" for k, v in report.items()
                                  if k not in ("snapshot", "target")), markup=False)


@app.command()
def verify(
    read_data: Annotated[bool, typer.Option("--read-data", help="Download, decrypt and re-hash "
                                            "every blob.")] = False,
    read_data_subset: Annotated[float | None, typer.Option(
        "--read-data-subset", min=0.01, max=100, help="Re-read this percentage of packs.")
    ] = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Check the repository's structure, and with --read-data its contents."""
    from strongroom.repository.verify import verify as run_verify

    r = open_repo(repo, password_file, key_file, option)
    report = run_verify(r, read_data=read_data, subset_pct=read_data_subset)
    if json:
        emit_json(report.as_dict())
    else:
        console.print(f"{report.snapshots} snapshots, {report.packs} packs, "
                      f"{report.packs_read} packs read, {report.blobs_checked} blobs checked",
                      markup=False)
        for line in report.garbage:
            console.print(f"garbage: {line}", markup=False)
        for line in report.errors:
            err_console.print(f"damaged: {line}", markup=False)
    if not report.ok:
        raise fail(f"verify found {len(report.errors)} problem(s); first: {report.errors[0]}",
                   code=13)
    if not json:
        console.print("no errors found")
