"""Grandfather-father-son retention (restic's bucket rules, time rules anchored in real time), and
the per-tier defaults of the seed.

Snapshots are grouped (by host name and source by default, like restic's host + paths: every
host backs up ``/etc``, and one host's snapshots never use up another's counts; by name, not
host id, so that a host whose id is not kept, such as a container without a volume, still
forms one group; cloned machines must be given names of their own) and each group
is walked from the newest to the oldest. For every ``keep_<bucket>`` rule with a count left, a
snapshot whose calendar bucket (hour, day, ISO week, month, year; UTC unless a zone is given)
differs from the last bucket that rule kept is kept and uses up one count: so each rule keeps
the newest snapshot of each of its N most recent non-empty buckets. ``keep_last`` keeps the N
newest, ``keep_within`` everything no older than the duration before ``now`` (the storage's
clock: engine callers pass :meth:`Repository.storage_now`; this host's clock when omitted),
``keep_tag`` everything carrying one of the tag sets. A
snapshot under legal hold is never forgotten. A count of -1 means unlimited.

Time comes from real time, not from the snapshots. A snapshot dated more than the clock tolerance
in the future (after ``now``, or flagged ``future_dated`` by the repository because it is dated
after the storage received it: its writer's clock was ahead) is kept, reason "future-dated", and
counts toward no rule: no ``keep_last`` slot, no bucket, and it is never the newest of its group.
Newest first means by ``order_time`` where a snapshot has one (a future-dated snapshot's time
of arrival), else by ``time``. A group never loses its newest snapshot that is not future-dated
to the time rules (reason "newest of its group"): backups that failed for three weeks leave the
last good one standing under ``keep_within 14d``.

A snapshot tagged ``safety``, ``pre-restore`` or ``forensic`` (what a recovery took of what it
overwrote: its undo) is kept, whatever the policy, for :func:`undo_keep` after it arrived
(reason "recovery undo (until <date>)"), and meanwhile counts toward no rule, as a future-dated
one: it takes no ``keep_last`` slot or bucket from the recovery points of its group, and is
never the newest of its group. Its age is its arrival (the storage's date, else its ``time``)
before ``now``. After the period it is an ordinary snapshot of its group.
"""

from __future__ import annotations

import calendar
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from strongroom import clock
from strongroom.errors import ConfigError

LEGAL_HOLD_TAG = "legal-hold"
GROUP_FIELDS = ("source_name", "source_kind", "kind", "host", "schedule")
DEFAULT_GROUP_BY = ("host", "source_name")
FUTURE_DATED = "future-dated"
NEWEST = "newest of its group"
UNDO = "recovery undo"
# What a recovery takes of what it overwrites, before overwriting it.
UNDO_TAGS = frozenset({"safety", "pre-restore", "forensic"})
UNDO_KEEP_ENV = "STRONGROOM_UNDO_KEEP"


class SnapshotLike(Protocol):
    """What retention needs to know about a snapshot (``strongroom.repository.Snapshot`` fits)."""

    id: str
    time: datetime
    tags: Sequence[str]


# ---------------------------------------------------------------------------------------------
# Durations: "14d", "4w", "24h", "12m" (months), "1y", combined "1y6m", or a timedelta.

_DURATION_RE = re.compile(r"(\d+)\s*([ymwdh])")


@dataclass(frozen=True)
class Duration:
    """A calendar duration: years and months are calendar steps, the rest is exact time."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, value: str | timedelta | Duration) -> Duration:
        """Parse ``1y2m3w4d5h`` (m = months) or take a timedelta; ConfigError on anything else."""
        if isinstance(value, Duration):
            return value
        if isinstance(value, timedelta):
            whole_hours, rest = divmod(value, timedelta(hours=1))
            if rest or value < timedelta(0):
                raise ConfigError(f"retention duration must be whole hours, got {value}")
            return cls(days=whole_hours // 24, hours=whole_hours % 24)
        text = str(value).strip().lower().replace(" ", "")
        if not text or _DURATION_RE.sub("", text):
            raise ConfigError(
                f"bad duration {value!r}: use e.g. 14d, 4w, 24h, 12m (months), 1y or 1y6m")
        parts = {"y": 0, "m": 0, "w": 0, "d": 0, "h": 0}
        for number, unit in _DURATION_RE.findall(text):
            parts[unit] += int(number)
        return cls(parts["y"], parts["m"], parts["w"] * 7 + parts["d"], parts["h"])

    def before(self, moment: datetime) -> datetime:
        """``moment`` minus this duration (month steps clamp to the month's last day)."""
        stepped = _step_months(moment, -(self.years * 12 + self.months))
        return stepped - timedelta(days=self.days, hours=self.hours)

    def after(self, moment: datetime) -> datetime:
        """``moment`` plus this duration (month steps clamp to the month's last day)."""
        stepped = _step_months(moment, self.years * 12 + self.months)
        return stepped + timedelta(days=self.days, hours=self.hours)

    def at_least(self, span: timedelta) -> bool:
        """Whether this duration is never shorter than ``span`` (a month counts 28 days)."""
        return timedelta(days=(self.years * 12 + self.months) * 28 + self.days,
                         hours=self.hours) >= span

    def __str__(self) -> str:
        text = "".join(f"{n}{u}" for n, u in
                       ((self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h"))
                       if n)
        return text or "0h"


def _step_months(moment: datetime, months: int) -> datetime:
    year, month0 = divmod(moment.year * 12 + (moment.month - 1) + months, 12)
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


DEFAULT_UNDO_KEEP = Duration(days=30)
MIN_UNDO_KEEP = timedelta(days=7)


def undo_keep() -> Duration:
    """How long a recovery's undo (a snapshot tagged safety, pre-restore or forensic) is kept
    after it arrived, whatever the policy: ``STRONGROOM_UNDO_KEEP`` (e.g. ``90d``), default 30
    days; ConfigError when malformed or shorter than 7 days."""
    text = os.environ.get(UNDO_KEEP_ENV, "").strip()
    if not text:
        return DEFAULT_UNDO_KEEP
    try:
        period = Duration.parse(text)
    except ConfigError as exc:
        raise ConfigError(f"{UNDO_KEEP_ENV}: {exc}") from None
    if not period.at_least(MIN_UNDO_KEEP):
        raise ConfigError(f"{UNDO_KEEP_ENV}={text} is too short: a recovery's undo is kept at "
                          f"least {MIN_UNDO_KEEP.days}d")
    return period


def describe_undo() -> str:
    """The undo rule in one line, with the period :func:`undo_keep` gives."""
    return (f"recovery undo: snapshots tagged {', '.join(sorted(UNDO_TAGS))} are kept "
            f"{undo_keep()} after they arrived, whatever the rules ({UNDO_KEEP_ENV})")


# ---------------------------------------------------------------------------------------------
# Calendar buckets, newest-first walk keeps the first snapshot seen in each new bucket.

def _hourly(t: datetime) -> tuple[int, ...]:
    return (t.year, t.month, t.day, t.hour)


def _daily(t: datetime) -> tuple[int, ...]:
    return (t.year, t.month, t.day)


def _weekly(t: datetime) -> tuple[int, ...]:
    iso = t.isocalendar()
    return (iso.year, iso.week)


def _monthly(t: datetime) -> tuple[int, ...]:
    return (t.year, t.month)


def _yearly(t: datetime) -> tuple[int, ...]:
    return (t.year,)


BUCKETS: tuple[tuple[str, Callable[[datetime], tuple[int, ...]]], ...] = (
    ("hourly", _hourly),
    ("daily", _daily),
    ("weekly", _weekly),
    ("monthly", _monthly),
    ("yearly", _yearly),
)


class RetentionPolicy(BaseModel):
    """Which snapshots of one group to keep. ``None`` = rule off, -1 = unlimited."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_within: str | None = Field(default=None, description="e.g. 14d, 4w, 24h, 12m, 1y")
    keep_tag: tuple[str, ...] = Field(default=(), description="tag sets; 'a,b' needs both")

    @field_validator("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
                     "keep_yearly")
    @classmethod
    def _count(cls, value: int | None) -> int | None:
        if value is not None and value < -1:
            raise ValueError("must be -1 (unlimited), 0 or a positive count")
        return value

    @field_validator("keep_within", mode="before")
    @classmethod
    def _within(cls, value: Any) -> str | None:
        if value is None or value == "":
            return None
        return str(Duration.parse(value))

    @classmethod
    def build(cls, **rules: Any) -> RetentionPolicy:
        """Construct from keyword rules, turning validation failures into one-line ConfigErrors."""
        from pydantic import ValidationError

        try:
            return cls(**rules)
        except ConfigError:
            raise
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ())) or "policy"
            raise ConfigError(f"bad retention rule {where}: {err.get('msg')}") from None

    def is_empty(self) -> bool:
        """True when no rule is set (such a policy keeps everything)."""
        counts = (self.keep_last, self.keep_hourly, self.keep_daily, self.keep_weekly,
                  self.keep_monthly, self.keep_yearly)
        return all(not c for c in counts) and not self.keep_within and not self.keep_tag

    def describe(self) -> str:
        """A short human summary, e.g. ``within 14d, monthly 12``."""
        bits = [f"{name} {getattr(self, 'keep_' + name)}" for name in
                ("last", "hourly", "daily", "weekly", "monthly", "yearly")
                if getattr(self, "keep_" + name)]
        if self.keep_within:
            bits.append(f"within {self.keep_within}")
        bits += [f"tag {t}" for t in self.keep_tag]
        return ", ".join(bits) or "keep everything"


# ---------------------------------------------------------------------------------------------
# The plan.

@dataclass
class Decision:
    """One snapshot's fate and why."""

    snapshot: Any
    keep: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        s = self.snapshot
        return {
            "id": s.id,
            "short_id": getattr(s, "short_id", s.id[:8]),
            "time": s.time.isoformat(),
            "future_dated": FUTURE_DATED in self.reasons,
            "host": getattr(s, "host", None),
            "source_name": getattr(s, "source_name", None),
            "kind": getattr(s, "kind", None),
            "tags": list(getattr(s, "tags", []) or []),
            "keep": self.keep,
            "reasons": list(self.reasons),
        }


@dataclass
class GroupPlan:
    """The decisions for one group (newest first) and the policy that made them."""

    key: dict[str, Any]
    policy: RetentionPolicy
    decisions: list[Decision]

    @property
    def keep(self) -> list[Any]:
        return [d.snapshot for d in self.decisions if d.keep]

    @property
    def forget(self) -> list[Any]:
        return [d.snapshot for d in self.decisions if not d.keep]


@dataclass
class RetentionPlan:
    """Keep/forget decisions for every group, with reasons; nothing is deleted by building it.
    ``now`` is the moment the time rules counted back from, ``undo_keep`` how long a
    recovery's undo was kept whatever the rules."""

    groups: list[GroupPlan]
    now: datetime | None = None
    undo_keep: Duration | None = None

    @property
    def keep(self) -> list[Any]:
        return [s for g in self.groups for s in g.keep]

    @property
    def forget(self) -> list[Any]:
        return [s for g in self.groups for s in g.forget]

    def decision(self, snapshot_id: str) -> Decision:
        for g in self.groups:
            for d in g.decisions:
                if d.snapshot.id == snapshot_id:
                    return d
        raise KeyError(snapshot_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "keep": len(self.keep),
            "forget": len(self.forget),
            "now": self.now.isoformat() if self.now is not None else None,
            "undo_keep": str(self.undo_keep) if self.undo_keep is not None else None,
            "groups": [{"group": g.key, "policy": g.policy.model_dump(exclude_defaults=True),
                        "keep": len(g.keep), "forget": len(g.forget),
                        "snapshots": [d.to_dict() for d in g.decisions]} for g in self.groups],
        }


def is_legal_hold(snapshot: Any, holds: Iterable[str] = ()) -> bool:
    """True if tagged ``legal-hold``, marked ``meta.legal_hold`` or listed in ``holds``."""
    if snapshot.id in set(holds):
        return True
    if LEGAL_HOLD_TAG in (getattr(snapshot, "tags", None) or ()):
        return True
    meta = getattr(snapshot, "meta", None) or {}
    return bool(isinstance(meta, Mapping) and meta.get("legal_hold"))


def _has_tagset(snapshot: Any, tagset: str) -> bool:
    wanted = {t.strip() for t in tagset.split(",") if t.strip()}
    return bool(wanted) and wanted <= set(getattr(snapshot, "tags", None) or ())


def _local(t: datetime, tz: tzinfo | None) -> datetime:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(tz or UTC)


def _order_time(snapshot: Any) -> datetime:
    return _local(getattr(snapshot, "order_time", None) or snapshot.time, UTC)


def _newest_first(snapshots: Iterable[Any]) -> list[Any]:
    return sorted(snapshots, key=lambda s: (_order_time(s), s.id), reverse=True)


def is_future_dated(snapshot: Any, now: datetime, tolerance: float | None = None) -> bool:
    """Flagged by the repository (dated after the storage received it), or dated more than
    ``tolerance`` seconds (the clock tolerance by default) after ``now``."""
    if getattr(snapshot, "future_dated", False):
        return True
    slack = timedelta(seconds=clock.TOLERANCE if tolerance is None else tolerance)
    return _local(snapshot.time, UTC) > _local(now, UTC) + slack


def undo_until(snapshot: Any, period: Duration) -> datetime | None:
    """When ``snapshot``, a recovery's undo (tagged safety, pre-restore or forensic), falls back
    under the policy: its arrival (else its place in time) plus ``period``; None if untagged."""
    if not UNDO_TAGS & set(getattr(snapshot, "tags", None) or ()):
        return None
    arrival = getattr(snapshot, "arrival", None) or _order_time(snapshot)
    return period.after(_local(arrival, UTC))


def _has_time_rule(policy: RetentionPolicy) -> bool:
    return bool(policy.keep_within) or any(getattr(policy, "keep_" + name) for name, _ in BUCKETS)


def apply_policy(snapshots: Iterable[Any], policy: RetentionPolicy, *,
                 holds: Iterable[str] = (), now: datetime | None = None,
                 tz: tzinfo | None = None, undo: Duration | None = None) -> list[Decision]:
    """Decide keep/forget for one group's snapshots; returns decisions newest first.

    ``now`` (default: this host's clock) anchors ``keep_within``, tells future-dated
    snapshots and ends a recovery's undo period (``undo``, default :func:`undo_keep`); those
    are kept and count toward no rule. An empty policy keeps everything (reason "no policy"):
    callers wanting to forget must say how.
    """
    ordered = _newest_first(snapshots)
    holds = set(holds)
    if not ordered:
        return []
    now = _local(now, UTC) if now is not None else datetime.now(UTC)
    undo = undo or undo_keep()
    within_since = None
    if policy.keep_within:
        within_since = Duration.parse(policy.keep_within).before(now)
    counts = {name: getattr(policy, "keep_" + name) for name, _ in BUCKETS}
    last_left = policy.keep_last
    last_bucket: dict[str, tuple[int, ...] | None] = {name: None for name, _ in BUCKETS}
    empty = policy.is_empty()
    decisions: list[Decision] = []
    newest: Decision | None = None
    for snap in ordered:
        reasons: list[str] = []
        if empty:
            reasons.append("no policy")
        if is_legal_hold(snap, holds):
            reasons.append("legal hold")
        for tagset in policy.keep_tag:
            if _has_tagset(snap, tagset):
                reasons.append(f"tag {tagset}")
        until = undo_until(snap, undo)
        undoing = until is not None and now < until
        if undoing:
            reasons.append(f"{UNDO} (until {until:%Y-%m-%d})")
        if is_future_dated(snap, now):
            reasons.append(FUTURE_DATED)  # its date says nothing: kept, and counts for nothing
            decisions.append(Decision(snap, True, reasons))
            continue
        if undoing:  # not a recovery point: takes no slot or bucket from one
            decisions.append(Decision(snap, True, reasons))
            continue
        if within_since is not None and _local(snap.time, UTC) >= within_since:
            reasons.append(f"within {policy.keep_within}")
        if last_left:
            reasons.append("last")
            if last_left > 0:
                last_left -= 1
        local = _local(snap.time, tz)
        for name, bucket_of in BUCKETS:
            left = counts[name]
            if not left:
                continue
            bucket = bucket_of(local)
            if bucket != last_bucket[name]:
                last_bucket[name] = bucket
                reasons.append(name)
                if left > 0:
                    counts[name] = left - 1
        decision = Decision(snap, bool(reasons), reasons)
        newest = newest or decision
        decisions.append(decision)
    if newest is not None and not newest.keep and _has_time_rule(policy):
        newest.keep, newest.reasons = True, [NEWEST]
    return decisions


def group_key(snapshot: Any, group_by: Sequence[str]) -> dict[str, Any]:
    """The grouping key of a snapshot as a dict, e.g. ``{"source_name": "orders-db"}``."""
    return {f: schedule_of(snapshot) if f == "schedule" else getattr(snapshot, f, None)
            for f in group_by}


def _check_group_by(group_by: Sequence[str]) -> None:
    bad = [f for f in group_by if f not in GROUP_FIELDS]
    if bad:
        raise ConfigError(f"cannot group by {', '.join(bad)}: use {', '.join(GROUP_FIELDS)}")


def plan_retention(snapshots: Iterable[Any], policy: RetentionPolicy | Callable[[dict], Any], *,
                   group_by: Sequence[str] = DEFAULT_GROUP_BY, holds: Iterable[str] = (),
                   now: datetime | None = None, tz: tzinfo | None = None) -> RetentionPlan:
    """Group snapshots and apply ``policy`` (or ``policy(group_key)``) to each group; the time
    rules and a recovery's undo period (:func:`undo_keep`) count back from ``now`` (this
    host's clock when omitted: pass the storage's)."""
    _check_group_by(group_by)
    now = _local(now, UTC) if now is not None else datetime.now(UTC)
    undo = undo_keep()
    groups: dict[tuple, list[Any]] = {}
    for snap in snapshots:
        key = group_key(snap, group_by)
        groups.setdefault(tuple(key.items()), []).append(snap)
    holds = set(holds)
    plans = []
    for key_items in sorted(groups, key=lambda k: tuple(str(v) for _, v in k)):
        key = dict(key_items)
        pol = policy(key) if callable(policy) and not isinstance(policy, RetentionPolicy) \
            else policy
        plans.append(GroupPlan(key, pol, apply_policy(groups[key_items], pol, holds=holds,
                                                      now=now, tz=tz, undo=undo)))
    return RetentionPlan(plans, now, undo)


# ---------------------------------------------------------------------------------------------
# Per-tier defaults from the backup seed.

# The seed's schedules and how long each keeps its snapshots. The flows tag every snapshot
# with its schedule ("monthly-archive", "replication", ...); untagged snapshots fall back on
# their kind (full, incremental, differential, snapshot).
SEED_DEFAULTS: dict[str, RetentionPolicy] = {
    "incremental": RetentionPolicy(keep_within="14d"),
    "full": RetentionPolicy(keep_within="4w"),
    "differential": RetentionPolicy(keep_within="2w"),
    "snapshot": RetentionPolicy(keep_within="7d"),
    "replication": RetentionPolicy(keep_within="24h"),
    "monthly-archive": RetentionPolicy(keep_monthly=12),
}
MONTHLY_FULLS = SEED_DEFAULTS["monthly-archive"]

# Repository tiers: primary and secondary keep every schedule for its period; long-term
# (archive) storage also keeps any full for 12 months (monthly).
TIERS = ("primary", "secondary", "archive")
TIER_GROUP_BY = ("host", "source_name", "schedule")


def schedule_of(snapshot: Any) -> str:
    """The seed schedule a snapshot belongs to: its first schedule tag, else its kind."""
    for tag in getattr(snapshot, "tags", None) or ():
        name = str(tag).replace("_", "-")
        if name in SEED_DEFAULTS:
            return name
    return str(getattr(snapshot, "kind", "") or "")


def tier_policy(tier: str, schedule: str | None) -> RetentionPolicy:
    """The seed's policy for snapshots of ``schedule`` on a repository of ``tier``.

    Unknown schedules get an empty policy (kept, reason "no policy"): never guess deletions.
    """
    if tier not in TIERS:
        raise ConfigError(f"unknown tier {tier!r}: use {', '.join(TIERS)}")
    if tier == "archive" and schedule == "full":
        return MONTHLY_FULLS
    return SEED_DEFAULTS.get(schedule or "", RetentionPolicy())


def plan_tier(snapshots: Iterable[Any], tier: str, *, holds: Iterable[str] = (),
              now: datetime | None = None, tz: tzinfo | None = None) -> RetentionPlan:
    """Apply the seed's defaults for ``tier``, grouped by host, source and schedule."""
    if tier not in TIERS:
        raise ConfigError(f"unknown tier {tier!r}: use {', '.join(TIERS)}")
    return plan_retention(snapshots, lambda key: tier_policy(tier, key.get("schedule")),
                          group_by=TIER_GROUP_BY, holds=holds, now=now, tz=tz)
