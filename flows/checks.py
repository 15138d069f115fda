"""Verification flow: check a repository (or one source's latest snapshot) on a schedule."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from blocks.loading import load_source
from tasks.notify import notify
from tasks.progress import artifact_key
from tasks.repos import flow_repositories, repository
from tasks.verify import Mode, verify
from tasks.walgaps import check_wal_gaps


@flow(name="verify-backups", log_prints=True, timeout_seconds=24 * 3600)
def verify_backups(target: str = "primary", source: str | None = None,
                   mode: Mode = "read-data") -> dict[str, Any]:
    """Verify the latest snapshot of ``source`` (or the whole repository) in ``target``.

    Args:
        target: repository target block to verify
        source: source block reference (kind/name) whose latest snapshot is verified; empty:
            every snapshot in the repository
        mode: structure (indexes, packs and trees agree; no data read), subset (also a sample
            of packs read and decrypted), read-data (every pack), restore-test (also restore
            the snapshot into a temporary directory)
    """
    with flow_repositories():
        return _verify(target, source, mode)


def _verify(target: str, source: str | None, mode: Mode) -> dict[str, Any]:
    snapshot_id = None
    if source:
        name = load_source(source).source_name
        with repository(target) as repo:
            snapshot_id = repo.find_snapshot("latest", source_name=name).id
    what = source or "repository"
    try:
        report = verify(target, snapshot_id, mode)
    except Exception as exc:
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        create_markdown_artifact(f"# Verify {what} in `{target}`: FAILED\n\n**Error:** {message}",
                                 key=artifact_key("verify", target, what))
        notify("verify.failed", what, f"verify of {what} in {target} failed: {message}",
               level="error")
        raise
    report = {**report, **_wal_continuity(target, source)}
    rows = "\n".join(f"| {k} | {v} |" for k, v in report.items())
    create_markdown_artifact(f"# Verify {what} in `{target}`: ok\n\n| check | result |\n"
                             f"|---|---|\n{rows}", key=artifact_key("verify", target, what))
    return report


def _wal_continuity(target: str, source: str | None) -> dict[str, Any]:
    """The PostgreSQL WAL archive check (its gaps raise strongroom.wal.gap): every archived
    cluster of the target, or the one PostgreSQL source; nothing for other kinds."""
    if source:
        src = load_source(source)
        if src.source_kind != "postgres":
            return {}
        names: list[str] | None = [src.source_name]
    else:
        names = None
    gaps = check_wal_gaps(target, names)
    if not gaps:
        return {}
    broken = [f"{g['name']}: {g['missing_count']} segment(s) missing from {g['missing'][0]}"
              for g in gaps if g["missing"]]
    return {"wal": "; ".join(broken) if broken else f"continuous ({len(gaps)} cluster(s))"}
