"""A recovery's undo (snapshots tagged safety, pre-restore or forensic) is kept for the undo
period after it arrived, whatever the retention policy says, by the storage's clock; it takes
nothing from the recovery points of its group, and after the period the policy applies."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from strongroom.errors import ConfigError
from strongroom.policy.retention import (
    DEFAULT_UNDO_KEEP,
    Duration,
    RetentionPolicy,
    apply_policy,
    plan_retention,
    undo_keep,
)
from strongroom.policy.stored import load_policy
from strongroom.repository import Repository
from strongroom.repository.forget import forget, plan_for
from strongroom.storage.local import LocalBackend
from tests.tiers.helpers import backup, new_repo

ROOT = Path(__file__).resolve().parents[2]
SKEWED = ROOT / "tests" / "support" / "skewed_clock"
# The README's example stored policy.
README_POLICY = ("--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12")
SAFETY = ("safety", "pre-restore")


def open_env_repo(env: dict[str, str]) -> Repository:
    endpoint = env.get("AWS_ENDPOINT_URL")
    return Repository.open(env["STRONGROOM_REPOSITORY"], password=env["STRONGROOM_PASSWORD"],
                           options={"endpoint": endpoint} if endpoint else None)


def backup_at(repo: Repository, name: str, tags: tuple[str, ...], arrived: datetime) -> str:
    """A real snapshot of source ``name``, re-sealed as if the storage had received it at
    ``arrived`` (dated then too), as a backup then would have been; its id."""
    snap = backup(repo, {"f.txt": f"{name} {arrived.isoformat()}".encode()}, source=name,
                  kind="snapshot", tags=tags)
    moved = repo.save_snapshot(snap.model_copy(update={"id": "", "time": arrived,
                                                       "arrived": arrived}))
    repo.remove_snapshot(snap)
    return moved.id


def day_at(now: datetime, days: int, hour: int) -> datetime:
    return (now - timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)


def reasons_of(plan: dict) -> dict[str, list[str]]:
    return {s["id"]: s["reasons"] for g in plan["groups"] for s in g["snapshots"]}


def kept_of(plan: dict) -> set[str]:
    return {s["id"] for g in plan["groups"] for s in g["snapshots"] if s["keep"]}


def until(arrived: datetime, days: int = 30) -> str:
    return f"recovery undo (until {arrived + timedelta(days=days):%Y-%m-%d})"


@pytest.fixture
def history(cli, repo_env) -> dict[str, dict[str, Any]]:
    """``<name>``: arrival. A safety snapshot under the source's own name taken before a
    regular snapshot of the same day (the contract's default safety backup), two pairs of
    ``app-safety`` snapshots (5 and 40 days old) and a forensic pair (5 and 40 days)."""
    cli("init")
    cli("policy", "set", *README_POLICY)
    repo = open_env_repo(repo_env)
    now = repo.storage_now()
    plan = {
        "own-safety": ("app", SAFETY, day_at(now, 3, 9)),
        "regular": ("app", (), day_at(now, 3, 11)),
        "young": ("app-safety", SAFETY, day_at(now, 5, 12)),
        "young-early": ("app-safety", SAFETY, day_at(now, 5, 10)),
        "old": ("app-safety", SAFETY, day_at(now, 40, 12)),
        "old-early": ("app-safety", SAFETY, day_at(now, 40, 10)),
        "forensic": ("db-forensic", ("forensic",), day_at(now, 5, 12)),
        "forensic-early": ("db-forensic", ("forensic",), day_at(now, 5, 10)),
        "forensic-old": ("db-forensic", ("forensic",), day_at(now, 40, 12)),
        "forensic-old-early": ("db-forensic", ("forensic",), day_at(now, 40, 10)),
    }
    return {"ids": {label: backup_at(repo, name, tags, arrived)
                    for label, (name, tags, arrived) in plan.items()},
            "arrived": {label: arrived for label, (_, _, arrived) in plan.items()}}


def test_stored_policy_keeps_a_recovery_undo_for_the_period(cli, repo_env, history) -> None:
    """The README's example stored policy, by the CLI's forget and as the scheduled retention
    applies it (dry run, then for real)."""
    ids, arrived = history["ids"], history["arrived"]
    # The CLI with the same rules (grouped by host and source): the dry run says why.
    dry = cli("forget", *README_POLICY, "--dry-run")
    assert f"{ids['own-safety'][:8]}" in dry.stdout
    line = next(x for x in dry.stdout.splitlines() if ids["own-safety"][:8] in x)
    assert line.split()[0] == "keep" and until(arrived["own-safety"]) in line
    plan = json.loads(cli("forget", *README_POLICY, "--dry-run", "--json").stdout)
    assert plan["undo_keep"] == "30d"
    assert set(ids.values()) - kept_of(plan) == {ids["old-early"], ids["forensic-old-early"]}

    # The stored policy, as the scheduled retention applies it, by the storage's clock.
    repo = open_env_repo(repo_env)
    stored = load_policy(repo)
    assert stored is not None
    stored_plan = stored.plan(repo.list_snapshots(), now=repo.storage_now())
    reasons = reasons_of(stored_plan.to_dict())
    for label in ("own-safety", "young", "young-early", "forensic", "forensic-early"):
        assert reasons[ids[label]] == [until(arrived[label])], label
    # The regular snapshot keeps its day: the undo took no bucket from it.
    assert reasons[ids["regular"]] == ["daily", "weekly", "monthly"]
    # Past the period: the policy (the later of the day keeps the buckets).
    assert reasons[ids["old"]] == ["daily", "weekly", "monthly"]
    assert reasons[ids["forensic-old"]] == ["daily", "weekly", "monthly"]
    assert not reasons[ids["old-early"]] and not reasons[ids["forensic-old-early"]]

    dry_report = forget(repo, stored_plan, dry_run=True)
    assert dry_report.removed == [] and len(repo.list_snapshots()) == len(ids)
    report = forget(repo, stored_plan)
    assert sorted(report.removed) == sorted([ids["old-early"], ids["forensic-old-early"]])
    left = {s.id for s in open_env_repo(repo_env).list_snapshots()}
    assert left == set(ids.values()) - set(report.removed)


def test_policy_show_states_the_undo_period(cli, repo_env, history) -> None:
    shown = cli("policy", "show").stdout
    assert "recovery undo: snapshots tagged forensic, pre-restore, safety are kept 30d" in shown
    longer = cli("policy", "show", env={"STRONGROOM_UNDO_KEEP": "90d"}).stdout
    assert "kept 90d after they arrived" in longer


def test_undo_keep_lengthens_the_period(cli, history) -> None:
    ids, arrived = history["ids"], history["arrived"]
    plan = json.loads(cli("forget", *README_POLICY, "--dry-run", "--json",
                          env={"STRONGROOM_UNDO_KEEP": "90d"}).stdout)
    assert plan["undo_keep"] == "90d"
    assert kept_of(plan) == set(ids.values())
    reasons = reasons_of(plan)
    assert reasons[ids["old-early"]] == [until(arrived["old-early"], 90)]
    gone = json.loads(cli("forget", *README_POLICY, "--json",
                          env={"STRONGROOM_UNDO_KEEP": "90d"}).stdout)
    assert gone["removed"] == []


def test_too_short_an_undo_period_is_refused(cli, history) -> None:
    for value, said in (("3d", "too short"), ("soon", "bad duration")):
        proc = cli("forget", *README_POLICY, "--dry-run", check=False,
                   env={"STRONGROOM_UNDO_KEEP": value})
        assert proc.returncode == 2, proc.stderr
        assert said in proc.stderr and "STRONGROOM_UNDO_KEEP" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    left = json.loads(cli("snapshots", "--json").stdout)
    assert len(left) == len(history["ids"])


def test_a_skewed_host_clock_does_not_shorten_the_undo(cli, history) -> None:
    """A host whose clock is 40 days ahead: the storage's clock still decides."""
    ids, arrived = history["ids"], history["arrived"]
    skewed = {"PYTHONPATH": os.pathsep.join(filter(None, [str(SKEWED), str(ROOT),
                                                          os.environ.get("PYTHONPATH")])),
              "STRONGROOM_TEST_CLOCK_SKEW": str(40 * 86400)}
    plan = json.loads(cli("forget", *README_POLICY, "--dry-run", "--json", env=skewed).stdout)
    reasons = reasons_of(plan)
    assert reasons[ids["young-early"]] == [until(arrived["young-early"])]
    assert reasons[ids["forensic-early"]] == [until(arrived["forensic-early"])]
    assert set(ids.values()) - kept_of(plan) == {ids["old-early"], ids["forensic-old-early"]}
    refused = cli("forget", *README_POLICY, check=False, env=skewed)
    assert refused.returncode == 19, refused.stderr


def test_the_storage_clock_not_this_hosts_ages_an_undo(tmp_path: Path, monkeypatch) -> None:
    """The storage's clock runs 40 days behind this host's (as a host 40 days ahead sees it):
    a safety snapshot that arrived 5 days ago by the storage's clock is kept."""
    repo = new_repo(str(tmp_path / "r"))
    behind = timedelta(days=40)
    now = repo.storage_now() - behind
    safety = backup_at(repo, "app-safety", SAFETY, day_at(now, 5, 10))
    later = backup_at(repo, "app-safety", SAFETY, day_at(now, 5, 12))
    real_clock = LocalBackend.clock
    monkeypatch.setattr(LocalBackend, "clock",
                        lambda self: real_clock(self) - behind.total_seconds())
    plan = plan_for(repo, RetentionPolicy(keep_within="14d"))
    assert plan.now is not None and abs(plan.now - now) < timedelta(minutes=1)
    assert {s.id for s in plan.keep} == {safety, later}
    assert plan.decision(safety).reasons == [until(day_at(now, 5, 10))]


# --------------------------------------------------------------------------------------------
# The rule itself, on synthetic snapshots.

@dataclass
class Snap:
    id: str
    time: datetime
    tags: list[str] = field(default_factory=list)
    source_name: str = "db"
    host: str = "web-1"
    kind: str = "snapshot"
    arrival: datetime | None = None


NOW = datetime(2026, 12, 8, 12, tzinfo=UTC)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def test_an_undo_takes_no_slot_no_bucket_and_is_never_the_newest() -> None:
    snaps = [Snap("safety", ago(1), list(SAFETY)), Snap("s2", ago(2)), Snap("s3", ago(3))]
    last = apply_policy(snaps, RetentionPolicy(keep_last=1), now=NOW)
    assert [(d.snapshot.id, d.keep, d.reasons) for d in last] == [
        ("safety", True, ["recovery undo (until 2027-01-06)"]), ("s2", True, ["last"]),
        ("s3", False, [])]
    old = [Snap("safety", ago(1), ["forensic"]), Snap("s20", ago(20)), Snap("s30", ago(30))]
    within = apply_policy(old, RetentionPolicy(keep_within="14d"), now=NOW)
    assert [(d.snapshot.id, d.reasons) for d in within] == [
        ("safety", ["recovery undo (until 2027-01-06)"]), ("s20", ["newest of its group"]),
        ("s30", [])]


def test_a_group_of_undos_is_kept_in_the_period_and_follows_the_policy_after() -> None:
    snaps = [Snap(f"u{d}", ago(d), ["safety"]) for d in (1, 2, 29, 31, 32)]
    decisions = apply_policy(snaps, RetentionPolicy(keep_within="14d"), now=NOW)
    assert [(d.snapshot.id, d.keep) for d in decisions] == [
        ("u1", True), ("u2", True), ("u29", True), ("u31", True), ("u32", False)]
    assert decisions[3].reasons == ["newest of its group"]


def test_the_period_counts_from_arrival_not_the_snapshots_date() -> None:
    """Dated 40 days back by a host whose clock was behind, it arrived two days ago."""
    late = Snap("late", ago(40), ["pre-restore"], arrival=ago(2))
    newer = Snap("newer", ago(1))
    decisions = apply_policy([late, newer], RetentionPolicy(keep_last=1), now=NOW)
    assert [(d.snapshot.id, d.reasons) for d in decisions] == [
        ("newer", ["last"]), ("late", ["recovery undo (until 2027-01-05)"])]


def test_the_period_is_measured_against_the_given_now() -> None:
    snap = Snap("safety", ago(10), ["safety"])
    later = NOW + timedelta(days=40)
    plan = plan_retention([snap, Snap("s1", ago(1))], RetentionPolicy(keep_last=1), now=NOW)
    assert plan.decision("safety").keep and plan.undo_keep == DEFAULT_UNDO_KEEP
    expired = plan_retention([snap, Snap("s1", ago(1))], RetentionPolicy(keep_last=1),
                             now=later)
    assert not expired.decision("safety").keep


def test_undo_keep_reads_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("STRONGROOM_UNDO_KEEP", raising=False)
    assert undo_keep() == Duration(days=30)
    for value, expected in (("90d", Duration(days=90)), ("168h", Duration(hours=168)),
                            ("1m", Duration(months=1))):
        monkeypatch.setenv("STRONGROOM_UNDO_KEEP", value)
        assert undo_keep() == expected
    for value in ("6d", "167h", "0h", "later"):
        monkeypatch.setenv("STRONGROOM_UNDO_KEEP", value)
        with pytest.raises(ConfigError, match="STRONGROOM_UNDO_KEEP"):
            undo_keep()


def test_the_docs_state_the_default_period() -> None:
    for doc in ("README.md", "docs/TIERS.md"):
        text = (ROOT / doc).read_text()
        assert "STRONGROOM_UNDO_KEEP" in text and f"default {DEFAULT_UNDO_KEEP}" in text, doc
