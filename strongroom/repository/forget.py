"""Forget: remove the snapshot files a retention plan lets go (their data goes at prune)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strongroom.audit.operation import recorded
from strongroom.errors import StorageError
from strongroom.policy.retention import (
    DEFAULT_GROUP_BY,
    RetentionPlan,
    RetentionPolicy,
    plan_retention,
    plan_tier,
)
from strongroom.repository.locks import RepositoryLock
from strongroom.repository.repo import Repository


@dataclass
class ForgetReport:
    plan: RetentionPlan
    dry_run: bool
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    protected: dict[str, str] = field(default_factory=dict)  # snapshot id -> why it stays

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "removed": self.removed, "skipped": self.skipped,
                "protected": self.protected, **self.plan.to_dict()}


def plan_for(repo: Repository, policy: RetentionPolicy | None = None, tier: str | None = None,
             source_name: str | None = None, group_by: tuple[str, ...] = DEFAULT_GROUP_BY,
             holds: set[str] | None = None, now: datetime | None = None) -> RetentionPlan:
    """The plan for a repository's snapshots: an explicit policy, or the seed's tier defaults.
    Time rules count back from ``now``, by default the storage's clock."""
    snaps = repo.list_snapshots(source_name)
    now = now or repo.storage_now()
    if tier:
        return plan_tier(snaps, tier, holds=holds or set(), now=now)
    return plan_retention(snaps, policy or RetentionPolicy(), group_by=group_by,
                          holds=holds or set(), now=now)


@recorded("forget")
def forget(repo: Repository, plan: RetentionPlan, dry_run: bool = False) -> ForgetReport:
    """Remove the snapshots the plan forgets; object-locked snapshot files are skipped, said why
    (a dry run says so too, so it never announces a removal that would not happen)."""
    report = ForgetReport(plan, dry_run)
    if not plan.forget:
        return report
    if dry_run:
        for snap in plan.forget:
            reason = repo.backend.protection(f"snapshots/{snap.id}")
            if reason:
                report.protected[snap.id] = reason
                report.skipped.append(f"snapshot {snap.short_id}: {reason}; would be kept")
        return report
    repo.require_clock("forget snapshots")
    lock = RepositoryLock.acquire(repo.backend, exclusive=False, purpose="forget")
    try:
        for snap in plan.forget:
            reason = repo.backend.protection(f"snapshots/{snap.id}")
            if reason:
                report.protected[snap.id] = reason
                report.skipped.append(f"snapshot {snap.short_id}: {reason}; kept")
                continue
            try:
                repo.remove_snapshot(snap)
            except StorageError as exc:
                report.skipped.append(f"snapshot {snap.short_id}: {exc}")
                continue
            report.removed.append(snap.id)
    finally:
        lock.release()
    return report
