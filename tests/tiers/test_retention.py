"""GFS retention: 400 days of synthetic snapshots against an independent computation."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from strongroom.errors import ConfigError
from strongroom.policy.retention import (
    Duration,
    RetentionPolicy,
    apply_policy,
    plan_retention,
    plan_tier,
    tier_policy,
)


@dataclass
class Snap:
    id: str
    time: datetime
    source_name: str = "db"
    kind: str = "full"
    tags: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def history(seed: int = 7, days: int = 400, sources=("orders-db", "files")) -> list[Snap]:
    """Irregular snapshots: 0-5 a day at random minutes, some gaps, a few tags."""
    rng = random.Random(seed)
    start = datetime(2025, 10, 20, tzinfo=UTC)
    snaps = []
    for src in sources:
        for day in range(days):
            if rng.random() < 0.08:
                continue  # a missed day
            minutes = sorted(rng.sample(range(24 * 60), rng.randint(1, 5)))
            for m in minutes:
                t = start + timedelta(days=day, minutes=m, seconds=rng.randint(0, 59))
                tags = ["release"] if rng.random() < 0.01 else []
                kind = rng.choice(["full", "incremental", "incremental", "differential"])
                snaps.append(Snap(f"{src}-{len(snaps):05d}", t, src, kind, tags))
    rng.shuffle(snaps)
    return snaps


FORMATS = {"hourly": "%Y-%m-%d %H", "daily": "%Y-%m-%d", "weekly": "%G-W%V",
           "monthly": "%Y-%m", "yearly": "%Y"}


def expected_keep(snaps: list[Snap], rules: dict, ref_now: datetime) -> set[str]:
    """Independent computation: per group, the newest snapshot of each of the N newest buckets,
    everything within the duration before ``ref_now``, and the newest under any time rule."""
    by_source = defaultdict(list)
    for s in snaps:
        by_source[s.source_name].append(s)
    keep: set[str] = set()
    time_rule = any(rules.get(f"keep_{name}") for name in [*FORMATS, "within"])
    for group in by_source.values():
        if time_rule:
            keep.add(max(group, key=lambda s: s.time).id)
        n_last = rules.get("keep_last")
        if n_last:
            ranked = sorted(group, key=lambda s: s.time, reverse=True)
            keep |= {s.id for s in (ranked if n_last == -1 else ranked[:n_last])}
        for name, fmt in FORMATS.items():
            n = rules.get(f"keep_{name}")
            if not n:
                continue
            best: dict[str, Snap] = {}
            for s in group:
                label = s.time.strftime(fmt)
                if label not in best or s.time > best[label].time:
                    best[label] = s
            labels = sorted(best, reverse=True)
            keep |= {best[lb].id for lb in (labels if n == -1 else labels[:n])}
        if rules.get("keep_within"):
            days = rules["keep_within"]
            since = ref_now - timedelta(days=days)
            keep |= {s.id for s in group if s.time >= since}
        for tag in rules.get("keep_tag", ()):
            keep |= {s.id for s in group if tag in s.tags}
    return keep


CASES = [
    {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12, "keep_yearly": 3},
    {"keep_last": 5, "keep_hourly": 30},
    {"keep_weekly": 60},
    {"keep_monthly": -1},
    {"keep_within": 45, "keep_monthly": 6, "keep_tag": ["release"]},
    {"keep_daily": 400, "keep_yearly": 1},
]


@pytest.mark.parametrize("rules", CASES, ids=lambda r: ",".join(f"{k}={v}" for k, v in r.items()))
def test_forget_400_days_matches_independent_computation(rules):
    snaps = history()
    policy = RetentionPolicy.build(**{k: (f"{v}d" if k == "keep_within" else v)
                                      for k, v in rules.items()})
    now = max(s.time for s in snaps) + timedelta(hours=1)
    plan = plan_retention(snaps, policy, now=now)
    got = {s.id for s in plan.keep}
    want = expected_keep(snaps, rules, now)
    assert got == want
    assert {s.id for s in plan.forget} == {s.id for s in snaps} - want
    assert len(plan.keep) + len(plan.forget) == len(snaps)
    # Every kept snapshot says why; every forgotten one says nothing.
    for g in plan.groups:
        assert {tuple(g.key)} == {("host", "source_name")}
        for d in g.decisions:
            assert bool(d.reasons) == d.keep


def test_reasons_name_the_rules():
    snaps = [Snap("a", datetime(2026, 1, 31, 23, tzinfo=UTC)),
             Snap("b", datetime(2026, 1, 31, 10, tzinfo=UTC)),
             Snap("c", datetime(2026, 1, 30, 10, tzinfo=UTC), tags=["release"])]
    plan = plan_retention(snaps, RetentionPolicy(keep_daily=5, keep_monthly=1, keep_last=1,
                                                 keep_tag=("release",)),
                          now=datetime(2026, 2, 1, tzinfo=UTC))
    assert plan.decision("a").reasons == ["last", "daily", "monthly"]
    assert plan.decision("b").reasons == [] and not plan.decision("b").keep
    assert plan.decision("c").reasons == ["tag release", "daily"]
    doc = plan.to_dict()
    assert doc["keep"] == 2 and doc["forget"] == 1
    assert doc["groups"][0]["policy"] == {"keep_last": 1, "keep_daily": 5, "keep_monthly": 1,
                                          "keep_tag": ("release",)}


def test_legal_hold_never_forgotten():
    snaps = history(days=60, sources=("db",))
    held = sorted(snaps, key=lambda s: s.time)[:3]
    held[0].tags.append("legal-hold")
    held[1].meta["legal_hold"] = True
    plan = plan_retention(snaps, RetentionPolicy(keep_last=1), holds={held[2].id})
    kept = {s.id for s in plan.keep}
    assert {h.id for h in held} <= kept
    assert len(kept) == 4
    assert plan.decision(held[0].id).reasons == ["legal hold"]


def test_within_relative_to_now_and_calendar_months():
    end = datetime(2026, 3, 31, tzinfo=UTC)
    snaps = [Snap(str(i), end - timedelta(days=i)) for i in range(90)]
    plan = plan_retention(snaps, RetentionPolicy(keep_within="1m"), now=end)
    # 2026-03-31 minus one month clamps to 2026-02-28: 31 days back, inclusive.
    assert len(plan.keep) == 32
    later = datetime(2026, 4, 10, tzinfo=UTC)
    assert len(plan_retention(snaps, RetentionPolicy(keep_within="14d"), now=later).keep) == 5


def test_empty_policy_keeps_everything_and_group_by_kind():
    snaps = history(days=20)
    plan = plan_retention(snaps, RetentionPolicy())
    assert len(plan.keep) == len(snaps)
    plan = plan_retention(snaps, RetentionPolicy(keep_last=1), group_by=("source_name", "kind"))
    assert len(plan.keep) == len({(s.source_name, s.kind) for s in snaps})


def test_tier_defaults_match_the_seed():
    assert tier_policy("primary", "incremental").keep_within == "14d"
    assert tier_policy("primary", "full").keep_within == "28d"
    assert tier_policy("secondary", "differential").keep_within == "14d"
    assert tier_policy("primary", "snapshot").keep_within == "7d"
    assert tier_policy("primary", "replication").keep_within == "24h"
    assert tier_policy("primary", "monthly-archive").keep_monthly == 12
    assert tier_policy("archive", "full").keep_monthly == 12
    assert tier_policy("primary", "odd-kind").is_empty()
    snaps = history()
    # The flows tag snapshots with their schedule: replication and monthly fulls by tag.
    for i, s in enumerate(snaps):
        if s.kind == "differential" and i % 3 == 0:
            s.kind, s.tags = "snapshot", [*s.tags, "replication"]
        elif s.kind == "full" and s.time.day == 1:
            s.tags = ["monthly-archive"]
    now = max(s.time for s in snaps) + timedelta(hours=1)
    plan = plan_tier(snaps, "primary", now=now)
    seen = set()
    for g in plan.groups:
        group = g.keep + g.forget
        newest = max(group, key=lambda s: s.time)
        seen.add(g.key["schedule"])
        if g.key["schedule"] == "monthly-archive":
            months = sorted({s.time.strftime("%Y-%m") for s in group})[-12:]
            assert {s.id for s in g.keep} == {
                max((s for s in group if s.time.strftime("%Y-%m") == m), key=lambda s: s.time).id
                for m in months}
            continue
        limit = {"incremental": timedelta(days=14), "full": timedelta(days=28),
                 "differential": timedelta(days=14),
                 "replication": timedelta(hours=24)}[g.key["schedule"]]
        # Within the limit of now; the newest of the group whatever its age.
        assert {s.id for s in g.keep} == {s.id for s in group if s.time >= now - limit} | {
            newest.id}
    assert seen == {"incremental", "full", "differential", "replication", "monthly-archive"}
    archive = plan_tier([s for s in snaps if s.kind == "full" and not s.tags], "archive",
                        now=now)
    assert all(len(g.keep) == 12 for g in archive.groups)


@pytest.mark.parametrize("bad", ["", "3x", "14", "-1d", "d"])
def test_bad_durations_are_config_errors(bad):
    with pytest.raises(ConfigError, match="duration"):
        Duration.parse(bad)


def test_bad_rules_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="keep_daily"):
        RetentionPolicy.build(keep_daily=-5)
    with pytest.raises(ConfigError, match="group by"):
        plan_retention([], RetentionPolicy(), group_by=("colour",))
    with pytest.raises(ConfigError, match="tier"):
        plan_tier([], "cold")
    assert Duration.parse("1y6m2w3d4h") == Duration(1, 6, 17, 4)
    assert Duration.parse(timedelta(days=2)) == Duration(days=2)


def test_decisions_newest_first_and_deterministic_on_ties():
    t = datetime(2026, 5, 5, 5, tzinfo=UTC)
    snaps = [Snap("x", t), Snap("y", t), Snap("w", t - timedelta(days=1))]
    dec = apply_policy(snaps, RetentionPolicy(keep_daily=1), now=t)
    assert [d.snapshot.id for d in dec] == ["y", "x", "w"]
    assert [d.keep for d in dec] == [True, False, False]
