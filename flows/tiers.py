"""Backup tier flows: dump -> checksum -> encrypt check -> replicate -> verify, with a summary.

Each tier is its own flow (so the UI and schedules name it), all sharing one pipeline. Only one
backup of a source runs at a time: a strict global concurrency limit per source.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.limits import source_slot
from flows.report import backup_markdown
from tasks.backup import checksum, dump, encrypt_check
from tasks.notify import notify
from tasks.progress import artifact_key
from tasks.replicate import replicate
from tasks.verify import verify

# tiers whose checksum step reads every file back, not only files with new blobs
FULL_READ = {"full", "monthly_archive"}
# tier -> snapshot kind written by the engine
TIER_KIND = {"full": "full", "incremental": "incremental", "differential": "differential",
             "snapshot": "snapshot", "replication": "snapshot", "monthly_archive": "full"}


def run_tier(tier: str, source: str, primary: str, replicas: list[str], tags: list[str],
             verify_mode: str) -> dict[str, Any]:
    """The shared pipeline; raises (after the artifact and a notification) on any failure."""
    steps: dict[str, dict[str, Any]] = {}
    copies: list[dict[str, Any]] = []
    snap: dict[str, Any] | None = None
    started = time.monotonic()
    try:
        with source_slot(source):
            snap = dump(source, primary, TIER_KIND[tier], [tier.replace("_", "-"), *tags])
            steps["dump"] = {"duration_s": snap["duration_s"], "files": snap["stats"]["files"],
                             "bytes_read": snap["stats"]["bytes_read"]}
            steps["checksum"] = checksum(primary, snap["id"], read_all=tier in FULL_READ)
            steps["encrypt check"] = encrypt_check(primary, snap["id"])
            copies = [replicate(primary, target, snap["id"]) for target in replicas]
            steps["verify"] = verify(primary, snap["id"], verify_mode)
    except Exception as exc:
        with suppress(Exception):  # reporting must never hide the failure itself
            _publish(tier, source, snap, steps, copies, primary, error=_one_line(exc))
            notify("backup.failed", source,
                   f"{tier} backup of {source} failed: {_one_line(exc)}", {"tier": tier},
                   level="error")
        raise
    _publish(tier, source, snap, steps, copies, primary)
    total = round(time.monotonic() - started, 3)
    notify("backup.completed", source,
           f"{tier} backup of {source}: snapshot {snap['short_id']} in {total} s",
           {"tier": tier, "snapshot": snap["id"]})
    return {"tier": tier, "source": source, "snapshot": snap, "steps": steps,
            "replicas": copies, "duration_s": total}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:500]


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


def _tags(tags: list[str] | None, keep: str | None) -> list[str]:
    return list(tags or []) + ([f"keep-{keep}"] if keep else [])


@flow(name="backup-full", log_prints=True)
def backup_full(source: str, primary: str = "primary", replicas: list[str] | None = None,
                tags: list[str] | None = None, verify_mode: str = "subset",
                keep: str | None = None) -> dict[str, Any]:
    """Full backup: every file is read and hashed."""
    return run_tier("full", source, primary, list(replicas or []), _tags(tags, keep),
                    verify_mode)


@flow(name="backup-incremental", log_prints=True)
def backup_incremental(source: str, primary: str = "primary", replicas: list[str] | None = None,
                       tags: list[str] | None = None, verify_mode: str = "subset",
                       keep: str | None = None) -> dict[str, Any]:
    """Incremental backup: what is unchanged since the source's last snapshot is not re-read."""
    return run_tier("incremental", source, primary, list(replicas or []), _tags(tags, keep),
                    verify_mode)


@flow(name="backup-differential", log_prints=True)
def backup_differential(source: str, primary: str = "primary",
                        replicas: list[str] | None = None, tags: list[str] | None = None,
                        verify_mode: str = "subset", keep: str | None = None) -> dict[str, Any]:
    """Differential backup: changes since the source's last full."""
    return run_tier("differential", source, primary, list(replicas or []), _tags(tags, keep),
                    verify_mode)


@flow(name="backup-snapshot", log_prints=True)
def backup_snapshot(source: str, primary: str = "primary", replicas: list[str] | None = None,
                    tags: list[str] | None = None, verify_mode: str = "subset",
                    keep: str | None = None) -> dict[str, Any]:
    """Database snapshot (the hourly tier)."""
    return run_tier("snapshot", source, primary, list(replicas or []), _tags(tags, keep),
                    verify_mode)


@flow(name="backup-replication", log_prints=True)
def backup_replication(source: str, primary: str = "primary", replicas: list[str] | None = None,
                       tags: list[str] | None = None, verify_mode: str = "structure",
                       keep: str | None = None) -> dict[str, Any]:
    """Replication tier for databases: a frequent snapshot copied to the secondary at once."""
    return run_tier("replication", source, primary, list(replicas or []), _tags(tags, keep),
                    verify_mode)


@flow(name="backup-monthly-archive", log_prints=True)
def backup_monthly_archive(source: str, primary: str = "primary",
                           replicas: list[str] | None = None, tags: list[str] | None = None,
                           verify_mode: str = "read-data",
                           keep: str | None = None) -> dict[str, Any]:
    """Monthly full, replicated to secondary and long-term (tertiary) storage."""
    return run_tier("monthly_archive", source, primary, list(replicas or []), _tags(tags, keep),
                    verify_mode)


TIER_FLOWS = {"full": backup_full, "incremental": backup_incremental,
              "differential": backup_differential, "snapshot": backup_snapshot,
              "replication": backup_replication, "monthly_archive": backup_monthly_archive}
