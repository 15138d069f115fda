"""Storage-tier commands: forget, prune, copy, status, archive stage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from strongroom.cli import mfa as mfa_checks
from strongroom.cli.app import app
from strongroom.cli.common import (
    JsonOpt,
    KeyFileOpt,
    OptionOpt,
    PasswordFileOpt,
    RepoOpt,
    open_repo,
    parse_options,
)
from strongroom.cli.mfa import OtpOpt
from strongroom.cli.output import console, emit_json, err_console, fail, human_bytes
from strongroom.errors import ConfigError, StrongroomError

if TYPE_CHECKING:
    from strongroom.repository import Repository
    from strongroom.repository.status import RepoSpec

archive_app = typer.Typer(help="Archive tier: stage archived data before a restore.",
                          no_args_is_help=True)
app.add_typer(archive_app, name="archive")


def _duration(text: str) -> object:
    from datetime import timedelta

    from strongroom.policy.retention import Duration

    if text.strip() in ("0", "0s", "0h"):
        return timedelta(0)
    d = Duration.parse(text)
    if d.years or d.months:
        raise ConfigError("use days or hours for this duration (e.g. 1h, 2d)")
    return timedelta(days=d.days, hours=d.hours)


Count = Annotated[int | None, typer.Option(min=-1, help="-1 = unlimited.")]


@app.command()
def forget(
    keep_last: Count = None, keep_hourly: Count = None, keep_daily: Count = None,
    keep_weekly: Count = None, keep_monthly: Count = None, keep_yearly: Count = None,
    keep_within: Annotated[str | None, typer.Option(help="Keep everything this close to now "
                                                    "(the storage's clock): 14d, 4w, 24h, "
                                                    "12m. A group's newest snapshot is kept "
                                                    "anyway.")] = None,
    keep_tag: Annotated[list[str] | None, typer.Option(help="Keep snapshots with these tags "
                                                       "('a,b' = both; repeatable).")] = None,
    tier: Annotated[str | None, typer.Option(help="Use the seed's per-schedule defaults for "
                                             "this tier: primary, secondary or archive.")
                    ] = None,
    source: Annotated[str | None, typer.Option("--name", help="Only this source.")] = None,
    group_by: Annotated[str, typer.Option(help="Comma-separated: host, source_name, kind, "
                                          "source_kind, schedule (--tier: host, source_name "
                                          "and schedule).")] = "host,source_name",
    hold: Annotated[list[str] | None, typer.Option(help="Snapshot id under legal hold "
                                                   "(repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only show what would go "
                                          "and why.")] = False,
    prune: Annotated[bool, typer.Option("--prune", help="Prune right after (grace 0).")
                     ] = False,
    otp: OtpOpt = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Forget snapshots by a grandfather-father-son policy; data goes at the next prune."""
    from strongroom.policy.retention import RetentionPolicy
    from strongroom.repository.forget import forget as run_forget
    from strongroom.repository.forget import plan_for

    policy = RetentionPolicy.build(
        keep_last=keep_last, keep_hourly=keep_hourly, keep_daily=keep_daily,
        keep_weekly=keep_weekly, keep_monthly=keep_monthly, keep_yearly=keep_yearly,
        keep_within=keep_within, keep_tag=tuple(keep_tag or ()))
    if policy.is_empty() and not tier:
        raise ConfigError("no policy given: use --keep-* options or --tier (nothing removed)")
    if tier and not policy.is_empty():
        raise ConfigError("give either --keep-* options or --tier, not both")
    r = open_repo(repo, password_file, key_file, option)
    plan = plan_for(r, policy, tier=tier, source_name=source,
                    group_by=tuple(g.strip() for g in group_by.split(",") if g.strip()),
                    holds=set(_full_ids(r, hold or [])))
    if not dry_run:
        mfa_checks.check_forget(r, plan, otp)
    if prune and not dry_run:
        from datetime import timedelta

        mfa_checks.check_prune(r, timedelta(0), otp)
    report = run_forget(r, plan, dry_run=dry_run)
    pruned = None
    if prune and not dry_run:
        from strongroom.repository.prune import prune as run_prune

        pruned = run_prune(r, grace=timedelta(0)).as_dict()
    if json:
        emit_json({**report.as_dict(), "prune": pruned})
        return
    locked = report.protected
    for group in plan.groups:
        key = ", ".join(f"{k}={v}" for k, v in group.key.items())
        held = sum(1 for s in group.forget if s.id in locked)
        console.print(f"{key}: policy {group.policy.describe()}: keep {len(group.keep) + held}, "
                      f"{'would forget' if dry_run else 'forget'} {len(group.forget) - held}",
                      markup=False)
        for d in group.decisions:
            s = d.snapshot
            verdict = "keep  " if d.keep or s.id in locked else "forget"
            why = (", ".join(d.reasons) if d.keep else
                   f"no rule keeps it, but {locked[s.id]}" if s.id in locked else
                   "no rule keeps it")
            console.print(f"  {verdict} {s.short_id} {s.time:%Y-%m-%d %H:%M} {s.kind:12} "
                          f"{why}", markup=False, highlight=False)
    for line in report.skipped:
        err_console.print(f"warning: {line}", markup=False)
    if not dry_run:
        console.print(f"removed {len(report.removed)} snapshot(s)", markup=False)
    if pruned:
        console.print(f"prune: freed {human_bytes(pruned['bytes_freed'])}", markup=False)


def _full_ids(r: object, refs: list[str]) -> list[str]:
    return [r.find_snapshot(ref).id for ref in refs]  # type: ignore[attr-defined]


@app.command("prune")
def prune_cmd(
    grace: Annotated[str, typer.Option(help="Delete only packs marked at least this long ago "
                                       "(0 = mark and sweep now).")] = "1h",
    repack_threshold: Annotated[float, typer.Option(
        min=0, max=1, help="Repack packs with at least this fraction unused (0 = never).")
    ] = 0.25,
    lock_wait: Annotated[float, typer.Option(help="Seconds to wait for the exclusive lock.")
                         ] = 120.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only report what would "
                                          "be marked.")] = False,
    otp: OtpOpt = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Free space: mark unused packs, delete them after the grace period and a re-check."""
    from strongroom.repository.prune import prune as run_prune

    r = open_repo(repo, password_file, key_file, option)
    if not dry_run:
        mfa_checks.check_prune(r, _duration(grace), otp)  # type: ignore[arg-type]
    report = run_prune(r, grace=_duration(grace), dry_run=dry_run,  # type: ignore[arg-type]
                       repack_threshold=repack_threshold or None, lock_wait_s=lock_wait)
    if json:
        emit_json(report.as_dict())
    else:
        verb = "would mark" if dry_run else "marked"
        console.print(f"{verb} {report.marked_packs} pack(s), {human_bytes(report.marked_bytes)}; "
                      f"{'would repack' if dry_run else 'repacked'} {report.repacked_packs}",
                      markup=False)
        if report.swept:
            console.print(f"deleted {report.deleted_packs} pack(s), freed "
                          f"{human_bytes(report.bytes_freed)} (index files rewritten: "
                          f"{report.index_files_rewritten})", markup=False)
        for line in report.rescued:
            console.print(f"rescued {line}", markup=False)
        if report.pending:
            console.print(report.pending, markup=False)
    for line in report.skipped:
        err_console.print(f"skipped {line}", markup=False)
    for pid in report.missing:
        err_console.print(f"warning: pack {pid[:16]} is in the index but missing from storage",
                          markup=False)
    if report.deferred:
        raise fail(report.deferred, code=17)


@app.command("copy")
def copy_cmd(
    snapshot: Annotated[list[str] | None, typer.Argument(help="Snapshot ids/prefixes or "
                                                         "'latest' (default: all).")] = None,
    to: Annotated[str, typer.Option("--to", help="Target repository URL.")] = "",
    to_password_file: Annotated[Path | None, typer.Option(
        "--to-password-file", envvar="STRONGROOM_TO_PASSWORD_FILE",
        help="Password file of the target (or STRONGROOM_TO_PASSWORD).")] = None,
    to_key_file: Annotated[Path | None, typer.Option("--to-key-file",
                                                     help="Key file of the target.")] = None,
    to_option: Annotated[list[str] | None, typer.Option(
        "--to-option", help="Target backend option key=value (e.g. storage_class=GLACIER).")
    ] = None,
    init: Annotated[bool, typer.Option("--init", help="Create the target if it does not "
                                       "exist.")] = False,
    source: Annotated[str | None, typer.Option("--name", help="Only this source.")] = None,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the read-back check on "
                                            "arrival.")] = False,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Copy snapshots to another repository (re-encrypted under its key; only missing data)."""
    import os

    from strongroom.errors import RepositoryNotFound
    from strongroom.repository import Repository
    from strongroom.repository.copy import copy_snapshots
    from strongroom.repository.repo import read_password_file

    if not to:
        raise ConfigError("no target given (--to URL)")
    src = open_repo(repo, password_file, key_file, option)
    if to_password_file:
        to_password = read_password_file(to_password_file)
    else:
        to_password = os.environ.get("STRONGROOM_TO_PASSWORD")
    if to_password is None and to_key_file is None:
        raise ConfigError("no target password given (STRONGROOM_TO_PASSWORD, "
                          "--to-password-file or --to-key-file)")
    opts = parse_options(to_option)
    try:
        dst = Repository.open(to, to_password, to_key_file, opts)
    except RepositoryNotFound:
        if not init:
            raise
        dst = Repository.init(to, to_password, to_key_file, opts)
    from strongroom.cli._audit import command_opened

    command_opened(dst, role="target")
    result = copy_snapshots(src, dst, snapshot or None, source_name=source,
                            verify=not no_verify)
    if json:
        emit_json(result)
        return
    console.print(f"copied {len(result['copied'])} snapshot(s), {len(result['already'])} "
                  f"already there; uploaded {human_bytes(result['bytes_uploaded'])} "
                  f"({result['blobs_copied']} new blobs, {result['blobs_reused']} reused)",
                  markup=False)
    for src_id, dst_id in result["snapshots"].items():
        console.print(f"  {src_id[:8]} -> {dst_id[:8]}", markup=False, highlight=False)


@app.command("status")
def status_cmd(
    ctx: typer.Context,
    repository: Annotated[list[str] | None, typer.Option(
        "--repository", "-R",
        help="URL[,tier=primary|secondary|archive][,site=S][,password-file=F][,key-file=F]"
             "[,endpoint=...] (repeatable). Without it: the --repo repository.")] = None,
    home_site: Annotated[str | None, typer.Option(help="Site of the live data (default: the "
                                                  "first repository's).")] = None,
    max_age: Annotated[str | None, typer.Option(help="Only snapshots newer than this count "
                                                "as copies (e.g. 2d).")] = None,
    no_original: Annotated[bool, typer.Option("--no-count-original", help="Do not count the "
                                              "live data as one of the three copies.")] = False,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """3-2-1 check per source, and storage used per repository and tier; fails if broken.

    Repositories: each --repository/-R, plus --repo/-r when given on the command line (the
    first is the home site's); with no -R, the --repo repository (or STRONGROOM_REPOSITORY).
    A repository without its own password-file/key-file opens with --password-file,
    STRONGROOM_PASSWORD(_FILE) or --key-file, like every other command."""
    from strongroom.repository.status import status

    specs = _status_specs(ctx, repository or [], repo, option)
    password = _default_password(password_file)
    for spec in specs:
        if spec.password is None and spec.keyfile is None:
            spec.password = password
            spec.keyfile = str(key_file) if key_file else None
    refused: list[StrongroomError] = []  # wrong key or bad option: not a 3-2-1 verdict
    report = status(specs, home_site=home_site, count_original=not no_original,
                    max_age=_duration(max_age) if max_age else None,  # type: ignore[arg-type]
                    opener=lambda spec: _open_spec(spec, refused))
    if refused:
        raise refused[0]
    if json:
        emit_json(report)
    else:
        for r in report["repositories"]:
            if "error" in r:
                console.print(f"{r['url']} ({r['tier']}): error: {r['error']}", markup=False)
                continue
            console.print(f"{r['url']} ({r['tier']}, {r['backend']}, site {r['site']}): "
                          f"{r['snapshots']} snapshots, {human_bytes(r['bytes']['total'])} stored, "
                          f"dedup {r['dedup_ratio']}x, +{human_bytes(r['growth_bytes']['7d'])} "
                          "in 7 days", markup=False)
        for s in report["sources"]:
            mark = "ok " if s["ok"] else "FAIL"
            console.print(f"{mark} {s['source']}: {s['copies']} copies, {s['media']} media, "
                          f"{'off-site' if s['offsite'] else 'no off-site'}", markup=False)
    if not report["ok"]:
        raise fail("3-2-1 rule broken: " + "; ".join(report["failing"]), code=4)


def _status_specs(ctx: typer.Context, repository: list[str], repo: str | None,
                  option: list[str] | None) -> list[RepoSpec]:
    """The -R specs, with the -r repository first when it was named on the command line (or
    alone, from STRONGROOM_REPOSITORY too, when there is no -R)."""
    from strongroom.repository.status import RepoSpec

    specs = [RepoSpec.parse(text) for text in repository]
    # by name: Typer may vendor its own click, with its own ParameterSource enum
    source = ctx.get_parameter_source("repo")
    on_command_line = getattr(source, "name", None) == "COMMANDLINE"
    if repo and (on_command_line or not specs):
        specs.insert(0, RepoSpec(repo, options=parse_options(option)))
    elif option:
        raise ConfigError("-o applies to the --repo repository; give a -R repository's "
                          "options inside its spec (URL,endpoint=...)")
    if not specs:
        raise ConfigError("no repository given (set STRONGROOM_REPOSITORY, --repo or "
                          "--repository)")
    return specs


def _default_password(password_file: Path | None) -> str | None:
    """--password-file / STRONGROOM_PASSWORD_FILE, else STRONGROOM_PASSWORD (no prompt: one
    status may open many repositories)."""
    import os

    from strongroom.repository.repo import read_password_file

    if password_file:
        return read_password_file(password_file)
    return os.environ.get("STRONGROOM_PASSWORD")


def _open_spec(spec: RepoSpec, refused: list[StrongroomError]) -> Repository:
    """Open one repository of a status report; a wrong key or a bad option is remembered so
    the command fails with its own exit code (11, 2) rather than as a broken 3-2-1 rule."""
    from strongroom.cli._audit import command_opened
    from strongroom.crypto.unlock import unlockers_from_env
    from strongroom.errors import WrongKey
    from strongroom.repository import Repository

    try:
        repo = Repository.open(spec.url, spec.password,
                               Path(spec.keyfile) if spec.keyfile else None, spec.options,
                               unlockers_from_env())
    except (WrongKey, ConfigError) as exc:
        refused.append(exc)
        raise
    command_opened(repo)  # each repository the report read records the status command
    return repo


@archive_app.command("stage")
def stage_cmd(
    snapshot: Annotated[str, typer.Argument(help="Snapshot id, prefix or 'latest'.")],
    days: Annotated[int, typer.Option(min=1, help="Keep staged copies this many days.")] = 7,
    retrieval: Annotated[str, typer.Option(help="Expedited, Standard or Bulk.")] = "Standard",
    wait: Annotated[float, typer.Option(help="Seconds to wait for staging (0 = request "
                                        "only).")] = 0.0,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Stage a snapshot's archived packs (S3 restore_object) so it can be restored."""
    from strongroom.repository.staging import stage_snapshot

    r = open_repo(repo, password_file, key_file, option)
    snap = r.find_snapshot(snapshot)
    report = stage_snapshot(r, snap, days=days, retrieval_tier=retrieval, wait_s=wait,
                            poll_s=min(30.0, max(wait / 20, 0.2)))
    if json:
        emit_json(report.as_dict())
    else:
        console.print(f"snapshot {snap.short_id}: {report.estimate()}; "
                      f"{len(report.ready)} pack(s) readable", markup=False)
