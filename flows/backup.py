"""The backup flow: dump -> (checksum | encrypt check | verify | replicate) per source, with a
summary artifact per source.

One parametrised flow, deployed under six names (:data:`TIER_FLOWS`: ``backup-full``,
``backup-incremental``, ...). The sources of one run are backed up concurrently, each in its own
subflow run (``backup-<tier>-<source>``, its own state in the UI); within a source the checks and
the copies to replicas run concurrently once the snapshot exists. One failing source fails the
run after the others have finished. Only one backup of a source runs at a time: a strict global
concurrency limit per source.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any, Literal

from prefect import flow, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from flows.limits import source_slot
from flows.report import backup_markdown
from strongroom.errors import ConfigError
from tasks.backup import checksum, dump, encrypt_check
from tasks.events import backup_event
from tasks.metrics import update_metrics
from tasks.progress import artifact_key
from tasks.replicate import replicate
from tasks.repos import flow_repositories
from tasks.verify import verify

Tier = Literal["full", "incremental", "differential", "snapshot", "replication",
               "monthly_archive"]
VerifyMode = Literal["structure", "subset", "read-data"]

# tiers whose checksum step reads every file back, not only files with new blobs
FULL_READ = {"full", "monthly_archive"}
# tier -> snapshot kind written by the engine
TIER_KIND: dict[str, str] = {"full": "full", "incremental": "incremental",
                             "differential": "differential", "snapshot": "snapshot",
                             "replication": "snapshot", "monthly_archive": "full"}
# how many sources of one run are backed up at the same time
SOURCE_WORKERS = 8
# Generous flow timeouts (a hung dump must not hold the source's slot for ever). On the flow,
# not on tasks: tasks run in worker threads, where Prefect cannot interrupt a blocking call
# and warns on every run; a deployed top-level flow runs in its process's main thread.
SOURCE_TIMEOUT_S = 24 * 3600


class BackupFailed(RuntimeError):
    """One or more sources of a backup run failed (each one's own subflow says why)."""


@flow(name="backup-source", log_prints=True, timeout_seconds=SOURCE_TIMEOUT_S)
def backup_source(tier: Tier, source: str, primary: str, replicas: list[str], tags: list[str],
                  verify_mode: VerifyMode) -> dict[str, Any]:
    """Back up one source: dump, then checksum, encrypt check, verify and the copies to the
    replicas concurrently; publish a summary artifact and a notification.

    Args:
        tier: the backup tier (decides the snapshot kind and how much is read back)
        source: source block reference, ``kind/name`` (``files/docs``)
        primary: repository target block the snapshot is written to
        replicas: repository target blocks the snapshot is copied to and verified on
        tags: tags of the new snapshot (the tier and keep tags included)
        verify_mode: how deeply the primary's copy is verified
    """
    with flow_repositories():  # one open repository per target for this source's tasks
        return _pipeline(tier, source, primary, replicas, tags, verify_mode)


def _pipeline(tier: Tier, source: str, primary: str, replicas: list[str], tags: list[str],
              verify_mode: VerifyMode) -> dict[str, Any]:
    """The steps of one source; raises (after the artifact and a notification) on failure."""
    steps: dict[str, dict[str, Any]] = {}
    copies: list[dict[str, Any]] = []
    snap: dict[str, Any] | None = None
    started = time.monotonic()
    try:
        with source_slot(source):
            snap = dump(source, primary, TIER_KIND[tier], tags)
            steps["dump"] = {"duration_s": snap["duration_s"], "files": snap["stats"]["files"],
                             "bytes_read": snap["stats"]["bytes_read"]}
            checked = checksum.submit(primary, snap["id"], read_all=tier in FULL_READ)
            sealed = encrypt_check.submit(primary, snap["id"])
            verified = verify.submit(primary, snap["id"], verify_mode)
            copying = replicate.map(primary, replicas, unmapped(snap["id"]))
            wait([checked, sealed, verified, *copying])
            steps["checksum"] = checked.result()
            steps["encrypt check"] = sealed.result()
            copies = [c.result() for c in copying]
            steps["verify"] = verified.result()
    except Exception as exc:
        with suppress(Exception):  # reporting must never hide the failure itself
            _publish(tier, source, snap, steps, copies, primary, error=_one_line(exc))
            backup_event("failed", tier, source,
                         f"{tier} backup of {source} failed: {_one_line(exc)}",
                         {"error": _one_line(exc)})
            update_metrics([], failed=[source], tier=tier)  # counts it in the textfile
        raise
    _publish(tier, source, snap, steps, copies, primary)
    total = round(time.monotonic() - started, 3)
    backup_event("completed", tier, source,
                 f"{tier} backup of {source}: snapshot {snap['short_id']} in {total} s",
                 {**steps["dump"], "snapshot": snap["id"], "duration_s": total})
    with suppress(Exception):  # metrics and the capacity check never fail a backup
        update_metrics([primary, *replicas])
    return {"tier": tier, "source": source, "snapshot": snap, "steps": steps,
            "replicas": copies, "duration_s": total}


@task(name="source-backup", task_run_name="backup-{source}", cache_policy=NO_CACHE)
def _run_source(tier: Tier, source: str, primary: str, replicas: list[str], tags: list[str],
                verify_mode: VerifyMode) -> dict[str, Any]:
    """Run one source's subflow from the parent's thread pool (so sources run concurrently)."""
    name = f"backup-{tier.replace('_', '-')}-{source.replace('/', '-')}"
    return backup_source.with_options(flow_run_name=name)(
        tier, source, primary, replicas, tags, verify_mode)


@flow(name="backup", log_prints=True, timeout_seconds=SOURCE_TIMEOUT_S + 3600,
      task_runner=ThreadPoolTaskRunner(max_workers=SOURCE_WORKERS))
def backup(tier: Tier, sources: list[str], primary: str = "primary",
           replicas: list[str] | None = None, tags: list[str] | None = None,
           verify_mode: VerifyMode = "subset", keep: str | None = None) -> dict[str, Any]:
    """Back up sources into the primary repository, check each snapshot, copy it to the
    replicas and verify it there; the sources run concurrently, each in its own subflow.

    Args:
        tier: full (every file read), incremental (unchanged since the source's last snapshot
            is not re-read), differential (changes since the last full), snapshot (hourly
            database tier), replication (a frequent snapshot copied at once), monthly_archive
            (a full copied to the secondary and long-term tiers)
        sources: source block references, kind/name (files/docs, postgres/main)
        primary: repository target block written to
        replicas: repository target blocks each snapshot is copied to and verified on
        tags: extra snapshot tags
        verify_mode: how deeply the new snapshot is verified in the primary: structure (no data
            read), subset (a sample of packs read and decrypted) or read-data (every pack)
        keep: how long these snapshots are kept (e.g. 14d, 4w, 12m), recorded as a keep-... tag
    """
    if not sources:
        raise ConfigError("no sources to back up: give at least one source reference")
    started = time.monotonic()
    all_tags = [tier.replace("_", "-"), *(tags or []), *([f"keep-{keep}"] if keep else [])]
    runs = _run_source.map(unmapped(tier), sources, unmapped(primary),
                           unmapped(list(replicas or [])), unmapped(all_tags),
                           unmapped(verify_mode))
    wait(runs)
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for source, run in zip(sources, runs, strict=True):
        if run.state.is_completed():
            results[source] = run.result()
            continue
        outcome = run.result(raise_on_failure=False)
        failures[source] = _one_line(outcome) if isinstance(outcome, BaseException) else \
            _one_line_text(run.state.message or run.state.name)
    _publish_run(tier, sources, results, failures)
    if failures:
        raise BackupFailed(f"{len(failures)} of {len(sources)} sources failed: " + "; ".join(
            f"{source}: {reason}" for source, reason in failures.items()))
    return {"tier": tier, "sources": results,
            "duration_s": round(time.monotonic() - started, 3)}


# The deployable names: one flow, one name per tier (the UI and schedules name the tier).
backup_full = backup.with_options(name="backup-full")
backup_incremental = backup.with_options(name="backup-incremental")
backup_differential = backup.with_options(name="backup-differential")
backup_snapshot = backup.with_options(name="backup-snapshot")
backup_replication = backup.with_options(name="backup-replication")
backup_monthly_archive = backup.with_options(name="backup-monthly-archive")

TIER_FLOWS = {"full": backup_full, "incremental": backup_incremental,
              "differential": backup_differential, "snapshot": backup_snapshot,
              "replication": backup_replication, "monthly_archive": backup_monthly_archive}


def _one_line(exc: BaseException) -> str:
    return _one_line_text(str(exc)) if str(exc).strip() else type(exc).__name__


def _one_line_text(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:500]


def _publish(tier: str, source: str, snap: dict[str, Any] | None, steps: dict[str, Any],
             copies: list[dict[str, Any]], primary: str, error: str | None = None) -> None:
    from blocks.loading import load_target

    try:
        primary_desc = load_target(primary).describe()
    except Exception:  # noqa: BLE001 - the summary must not hide the original failure
        primary_desc = primary
    create_markdown_artifact(
        backup_markdown(tier, source, snap, steps, copies, primary_desc, error),
        key=artifact_key("backup", tier, source),
        description=f"{tier} backup of {source}")


def _publish_run(tier: str, sources: list[str], results: dict[str, Any],
                 failures: dict[str, str]) -> None:
    """One table for the whole run: each source's snapshot or why it failed."""
    rows = []
    for source in sources:
        if source in results:
            snap = results[source]["snapshot"]
            rows.append(f"| `{source}` | completed | `{snap['short_id']}` | "
                        f"{results[source]['duration_s']} s |")
        else:
            rows.append(f"| `{source}` | FAILED | - | {failures.get(source, '')} |")
    status = "FAILED" if failures else "completed"
    with suppress(Exception):  # the table must not hide a source's own failure
        create_markdown_artifact(
            f"# {tier} backup run: {status}\n\n| source | state | snapshot | duration or error "
            "|\n|---|---|---|---|\n" + "\n".join(rows),
            description=f"{tier} backup of {len(sources)} source(s)")
