"""Verification flow: check a repository (or one source's latest snapshot) on a schedule."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from blocks.loading import load_source, load_target
from tasks.notify import notify
from tasks.progress import artifact_key
from tasks.verify import verify


@flow(name="verify-backups", log_prints=True)
def verify_backups(target: str = "primary", source: str | None = None,
                   mode: str = "read-data") -> dict[str, Any]:
    """Verify the latest snapshot of ``source`` (or the whole repository) in ``target``."""
    snapshot_id = None
    if source:
        name = load_source(source).source_name
        repo = load_target(target).open()
        try:
            snapshot_id = repo.find_snapshot("latest", source_name=name).id
        finally:
            repo.close()
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
    rows = "\n".join(f"| {k} | {v} |" for k, v in report.items())
    create_markdown_artifact(f"# Verify {what} in `{target}`: ok\n\n| check | result |\n"
                             f"|---|---|\n{rows}", key=artifact_key("verify", target, what))
    return report
