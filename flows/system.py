"""System recovery: a host's configuration and system files (the system class) restored over
the live tree with their owners, modes and extended attributes, after a dry-run diff.

``recover-system`` with ``dry_run`` (the default) only lists what would change (a markdown
artifact ``system-diff-<source>``). Applied, it snapshots the live entries it will change
(``<name>-safety``), restores the snapshot into a staging directory beside them through the
usual stages (verified byte for byte there), moves each changed entry into place, and checks
that a second diff finds nothing left to change."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from blocks.loading import load_source
from flows.recovery import RECOVERY_TIMEOUT_S, _iso, recover
from flows.report import _table
from strongroom.errors import ConfigError, IntegrityError
from strongroom.sources import registry
from tasks import sysdiff
from tasks.progress import artifact_key
from tasks.recovery import NOT_RECOVERY_POINTS, parse_time, pick_snapshot
from tasks.repos import flow_repositories, repository

MAX_ROWS = 500


@task(name="system-diff", task_run_name="diff-{source}", cache_policy=NO_CACHE)
def system_diff(source: str, target: str, snapshot: str, at: str | None, root: str,
                include: list[str] | None) -> dict[str, Any]:
    """Entries of the snapshot that differ from the live tree under ``root``."""
    src = load_source(source)
    with repository(target) as repo:
        snap = pick_snapshot(repo.list_snapshots(src.source_name), snapshot, parse_time(at),
                             src.source_name)
        changes = sysdiff.diff(repo.reader(snap), Path(root), include)
    return {"snapshot": snap.id, "snapshot_time": snap.time.isoformat(), "changes": changes}


@task(name="system-safety", task_run_name="safety-{source}", cache_policy=NO_CACHE)
def system_safety(source: str, target: str, root: str, changes: list[dict[str, Any]]
                  ) -> str | None:
    """Snapshot the live entries about to be replaced (``<name>-safety``)."""
    live = [str(Path(root) / c["path"].lstrip("/")) for c in changes
            if not c["changes"][0].startswith("missing")]
    if not live:
        return None
    src = load_source(source)
    with repository(target) as repo:
        snap = registry.get("files").backup(repo, name=f"{src.source_name}-safety",
                                            kind="snapshot", tags=sorted(NOT_RECOVERY_POINTS
                                                                         - {"forensic"}),
                                            settings={"paths": live})
    return snap.id


@task(name="system-apply", task_run_name="apply-{source}", cache_policy=NO_CACHE)
def system_apply(source: str, staging: str, root: str, changes: list[dict[str, Any]]) -> int:
    return sysdiff.apply_staged(Path(staging), Path(root), changes)


def diff_markdown(source: str, result: dict[str, Any], root: str, dry_run: bool) -> str:
    changes = result["changes"]
    head = (f"# System recovery {'dry run' if dry_run else 'applied'}: `{source}` over "
            f"`{root}`\n\nSnapshot `{result['snapshot'][:8]}` of "
            f"{result['snapshot_time'][:19]} UTC: {len(changes)} entries "
            f"{'would change' if dry_run else 'changed'}.\n")
    rows = [[f"`{c['path']}`", c["type"], "; ".join(c["changes"])]
            for c in changes[:MAX_ROWS]]
    more = f"\n\n... and {len(changes) - MAX_ROWS} more" if len(changes) > MAX_ROWS else ""
    return head + ("\n" + _table(["path", "type", "change"], rows) + more if rows else "")


@flow(name="recover-system", log_prints=True, timeout_seconds=RECOVERY_TIMEOUT_S)
def recover_system(source: str, root: str = "/", snapshot: str = "latest",
                   at: datetime | None = None, from_target: str = "primary",
                   include: list[str] | None = None, dry_run: bool = True,
                   objectives: str | None = "default") -> dict[str, Any]:
    """Restore a host's configuration (a files source of the system class) over the live
    tree, owners, modes and extended attributes included.

    Args:
        source: files source block, files/NAME (e.g. files/platform-config)
        root: where the snapshot's / is on this host: / to restore in place, or another
            directory to rebuild a host's tree elsewhere
        snapshot: latest, or a snapshot id (or unique prefix)
        at: with snapshot=latest, the newest snapshot at or before this time (ISO 8601)
        from_target: repository target block to restore from
        include: only these paths of the snapshot (e.g. /etc/nginx)
        dry_run: only list what would change (artifact system-diff-<source>); false: apply
        objectives: recovery objectives block (the system class's RTO/RPO apply)
    """
    src = load_source(source)
    if not src.source().target_is_path:
        raise ConfigError(f"{source} is a {src.source_kind} source: recover-system restores "
                          "files sources")
    if not Path(root).is_absolute():
        raise ConfigError(f"root must be an absolute directory, not {root!r}")
    name = src.source_name
    with flow_repositories():
        before = system_diff(source, from_target, snapshot, _iso(at), root, include)
        key = artifact_key("system-diff", name)
        create_markdown_artifact(diff_markdown(name, before, root, dry_run), key=key,
                                 description=f"System recovery diff: {name}")
        if dry_run:
            return {"dry_run": True, "snapshot": before["snapshot"],
                    "changes": before["changes"], "artifact_key": key}
        if not before["changes"]:
            return {"dry_run": False, "snapshot": before["snapshot"], "changes": [],
                    "applied": 0, "artifact_key": key}
        safety = system_safety(source, from_target, root, before["changes"])
        staging = Path(root) / f".strongroom-staging-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        try:
            job = {"source": source, "target": from_target, "dest": str(staging),
                   "snapshot": before["snapshot"], "include": include, "replace": False,
                   "fresh_backup": False}
            report = recover(f"recover-system-{name}", [job], objectives,
                             objective_class="system")
            applied = system_apply(source, str(staging), root, before["changes"])
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        after = system_diff(source, from_target, before["snapshot"], None, root, include)
        if after["changes"]:
            raise IntegrityError(f"{len(after['changes'])} entries still differ after the "
                                 f"recovery, e.g. {after['changes'][0]['path']}: "
                                 f"{after['changes'][0]['changes'][0]}")
    return {"dry_run": False, "snapshot": before["snapshot"], "changes": before["changes"],
            "applied": applied, "safety_snapshot": safety, "artifact_key": key,
            "post_mortem": report["artifact_key"], "stages": report["stages"]}
