"""Key rotation: the quarterly ``key-rotation`` deployment starts a new data-key
epoch on every target (one small object each, no data rewritten); every run, rotating or
checking, emits ``strongroom.key.rotation-due`` for a target whose newest epoch is older than
``max_age_days`` (a failed or skipped rotation, a format-1 repository)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tasks.events import KEY_ROTATION_DUE, emit
from tasks.progress import artifact_key
from tasks.repos import flow_repositories, repository

ROTATION_DUE_DAYS = 100.0


def _newest_age_days(repo: Any) -> float | None:
    """Days since the newest epoch was created (None: a format-1 repository, no epochs)."""
    created = [datetime.fromisoformat(i.created) for i in repo.keyring.infos
               if i.created and not i.retired]
    if not created:
        return None
    return (datetime.now(UTC) - max(created)).total_seconds() / 86400


@task(name="key-rotate", cache_policy=NO_CACHE)
def rotate_target(target: str, rotate: bool = True) -> dict[str, Any]:
    """Start a new epoch on ``target`` (``rotate``) and say how old its newest epoch is; a
    failure is reported in the row (the other targets still rotate)."""
    from strongroom.errors import StrongroomError
    from strongroom.repository.locks import RepositoryLock

    row: dict[str, Any] = {"target": target, "rotated": None, "epoch": None,
                           "age_days": None, "error": ""}
    try:
        with repository(target) as repo:
            repo.refresh_keyring()
            if rotate and repo.format_version >= 2:
                lock = RepositoryLock.acquire(repo.backend, exclusive=False,
                                              purpose="key rotate (scheduled)", wait_s=600)
                try:
                    row["rotated"] = repo.rotate_epoch()
                finally:
                    lock.release()
            elif repo.format_version < 2:
                row["error"] = "format-1 repository: run `strongroom migrate` to rotate keys"
            row["epoch"] = repo.keyring.current
            age = _newest_age_days(repo)
            row["age_days"] = None if age is None else round(age, 2)
    except StrongroomError as exc:
        row["error"] = str(exc)
    return row


def rotation_due(row: dict[str, Any], max_age_days: float) -> bool:
    """True if the target's newest epoch is older than ``max_age_days`` (or has none)."""
    return row["rotated"] is None and (row["age_days"] is None or
                                       row["age_days"] > max_age_days)


@flow(name="key-rotation", log_prints=True)
def key_rotation(targets: list[str], rotate: bool = True,
                 max_age_days: float = ROTATION_DUE_DAYS) -> list[dict[str, Any]]:
    """Rotate the data key of every target (a new epoch; older data stays readable, nothing is
    re-uploaded), concurrently; alert (strongroom.key.rotation-due) on targets whose newest
    epoch is older than ``max_age_days``.

    Args:
        targets: repository target blocks (primary, secondary, archive ...)
        rotate: start a new epoch; False only checks the age of the newest epoch
        max_age_days: a target whose newest epoch is older than this is due (maintenance alert)
    """
    with flow_repositories():
        rows = [f.result() for f in rotate_target.map(targets, rotate=rotate)]
    for row in rows:
        if rotation_due(row, max_age_days):
            age = "no epoch yet" if row["age_days"] is None else f"{row['age_days']:.0f} days"
            why = f": {row['error']}" if row["error"] else ""
            emit(KEY_ROTATION_DUE, f"strongroom.target.{row['target']}",
                 f"key rotation due on {row['target']}: newest data-key epoch {age} old{why}",
                 {"target": row["target"], "age_days": row["age_days"],
                  "max_age_days": max_age_days}, name=row["target"])
        print(f"{row['target']}: epoch {row['epoch']}"
              + (f" (new: {row['rotated']})" if row["rotated"] else "")
              + (f"; error: {row['error']}" if row["error"] else ""))
    create_markdown_artifact(
        "# Key rotation\n\n| target | new epoch | current | newest epoch age (days) | error |\n"
        "|---|---|---|---|---|\n" + "\n".join(
            f"| {r['target']} | {r['rotated'] or '-'} | {r['epoch']} | {r['age_days']} | "
            f"{r['error'] or ''} |" for r in rows),
        key=artifact_key("key-rotation", "all"))
    return rows
