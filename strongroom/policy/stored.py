"""The retention policy stored sealed in the repository (``strongroom policy set``).

The scheduled retention applies it with no second factor; by hand, a forget that would remove
a snapshot it keeps, or a prune with a grace below its minimum, needs the second factor when
the repository has one (:mod:`strongroom.mfa`). Snapshots are grouped by host, source and
schedule; a schedule without a rule of its own uses the default rule; no rule at all keeps
everything. Time rules count back from the storage's clock. A recovery's undo is kept whatever
the rules say, for :func:`~strongroom.policy.retention.undo_keep`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from strongroom import settings
from strongroom.errors import ConfigError
from strongroom.policy.retention import (
    TIER_GROUP_BY,
    Duration,
    RetentionPlan,
    RetentionPolicy,
    describe_undo,
    plan_retention,
)

if TYPE_CHECKING:
    from strongroom.repository import Repository

SETTING = "retention-policy"
GROUP_BY = TIER_GROUP_BY  # host, source and schedule


class StoredPolicy(BaseModel):
    """Rules per schedule tag, a default rule, and the shortest prune grace allowed."""

    model_config = ConfigDict(extra="forbid")

    default: RetentionPolicy | None = None
    schedules: dict[str, RetentionPolicy] = Field(default_factory=dict)
    min_grace: str = "1h"
    updated: str | None = None

    def rule_for(self, key: dict[str, Any]) -> RetentionPolicy:
        schedule = str(key.get("schedule") or "")
        return self.schedules.get(schedule) or self.default or RetentionPolicy()

    def min_grace_delta(self) -> timedelta:
        return grace_delta(self.min_grace)

    def plan(self, snapshots: list[Any], now: datetime | None = None) -> RetentionPlan:
        return plan_retention(snapshots, self.rule_for, group_by=GROUP_BY, now=now)

    def describe(self) -> list[str]:
        lines = [f"default: {self.default.describe() if self.default else 'keep everything'}"]
        lines += [f"schedule {name}: {rule.describe()}"
                  for name, rule in sorted(self.schedules.items())]
        lines.append(f"minimum prune grace: {self.min_grace}")
        lines.append(describe_undo())
        return lines


def grace_delta(text: str) -> timedelta:
    if text.strip() in ("0", "0s", "0h"):
        return timedelta(0)
    d = Duration.parse(text)
    if d.years or d.months:
        raise ConfigError("use days or hours for a grace period (e.g. 1h, 2d)")
    return timedelta(days=d.days, hours=d.hours)


def load_policy(repo: Repository) -> StoredPolicy | None:
    doc = settings.load(repo, SETTING)
    return StoredPolicy.model_validate(doc) if doc is not None else None


def save_policy(repo: Repository, policy: StoredPolicy) -> StoredPolicy:
    policy = policy.model_copy(update={"updated": datetime.now(UTC).isoformat()})
    settings.save(repo, SETTING, policy.model_dump(mode="json"))
    return policy


def updated_policy(current: StoredPolicy | None, rule: RetentionPolicy | None,
                   schedule: str | None = None, min_grace: str | None = None) -> StoredPolicy:
    """``current`` with one rule (the default, or a schedule's) and/or the minimum grace set."""
    policy = current or StoredPolicy()
    changes: dict[str, Any] = {}
    if rule is not None:
        if schedule:
            changes["schedules"] = {**policy.schedules, schedule.replace("_", "-"): rule}
        else:
            changes["default"] = rule
    if min_grace is not None:
        grace_delta(min_grace)  # ConfigError if malformed
        changes["min_grace"] = min_grace
    if not changes:
        raise ConfigError("nothing to set: give --keep-* rules and/or --min-grace")
    return policy.model_copy(update=changes)


def beyond_policy(repo: Repository, plan: RetentionPlan, stored: StoredPolicy | None,
                  now: datetime | None = None) -> list[str]:
    """Ids of snapshots ``plan`` forgets that the stored policy keeps (with no stored policy:
    every snapshot ``plan`` forgets). The stored policy counts back from the same moment as
    ``plan`` unless ``now`` is given (else the storage's clock)."""
    forgets = [s.id for s in plan.forget]
    if stored is None or not forgets:
        return forgets
    now = now or plan.now or repo.storage_now()
    allowed = {s.id for s in stored.plan(repo.list_snapshots(), now=now).forget}
    return [sid for sid in forgets if sid not in allowed]
