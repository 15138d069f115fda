"""Retention and 'latest' anchored in real time: a snapshot dated in the future (its host's
clock was ahead) is flagged, kept, counts toward no rule and is never the newest; keep-within
counts back from the storage's clock, and a group keeps its newest real snapshot whatever the
time rules say."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from strongroom.policy.retention import RetentionPolicy, apply_policy, plan_retention

# Re-date snapshots through the library, as an old client with a wrong clock would have
# written them: {"id": days from the storage's now, ...}; "keep" keeps the original too.
REDATE = """
import json, sys
from datetime import timedelta
from strongroom.repository import Repository
repo = Repository.from_env()
now = repo.storage_now()
out = {}
for ref, days in json.loads(sys.argv[1]).items():
    snap = repo.find_snapshot(ref)
    moved = snap.model_copy(update={"id": "", "time": now + timedelta(days=days)})
    out[ref] = repo.save_snapshot(moved).id
    if sys.argv[2] != "keep":
        repo.remove_snapshot(snap)
print(json.dumps(out))
"""


def redate(env: dict[str, str], days: dict[str, float], keep: bool = False) -> dict[str, str]:
    """Old id -> id of its copy dated ``days`` from now (the original removed unless ``keep``)."""
    proc = subprocess.run([sys.executable, "-c", REDATE, json.dumps(days),
                           "keep" if keep else "move"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def backup(cli, src: Path, n: int, kind: str = "incremental") -> dict:
    (src / f"file-{n}.txt").write_text(f"contents of backup {n}\n")
    return json.loads(cli("backup", "files", str(src), "--name", "app", "--kind", kind,
                          "--json").stdout)


def test_future_dated_snapshot_never_decides_retention_or_latest(cli, repo_env, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    cli("init")
    made = [backup(cli, src, 0, "full")] + [backup(cli, src, n) for n in (1, 2, 3)]
    # Four real snapshots 20, 15, 10 and 5 days old, then one from a host 30 days ahead.
    old = redate(repo_env, {s["id"]: -d for s, d in zip(made, (20, 15, 10, 5), strict=True)})
    d20, d15, d10, d5 = (old[s["id"]] for s in made)
    future = redate(repo_env, {d5: 30}, keep=True)[d5]
    # The fifth real snapshot, made now, is the latest; the future one, placed by when the
    # storage received it, was the newest backup before it (the fifth's parent).
    now = backup(cli, src, 4)
    restored = json.loads(cli("restore", "latest", "--target", str(tmp_path / "r"),
                              "--json").stdout)
    assert restored["snapshot"] == now["id"]
    assert (tmp_path / "r" / str(src).lstrip("/") / "file-4.txt").exists()
    after = backup(cli, src, 5)
    assert after["parent"] == now["id"]
    assert now["kind"] == "incremental" and now["parent"] == future

    listed = {s["id"]: s for s in json.loads(cli("snapshots", "--json").stdout)}
    assert set(listed) == {d20, d15, d10, d5, future, now["id"], after["id"]}
    assert [i for i, s in listed.items() if s["future_dated"]] == [future]
    assert all(s["stored_time"] for s in listed.values())
    assert list(listed)[-3:] == [future, now["id"], after["id"]]  # by time of arrival
    table = cli("snapshots")
    assert "(future-dated)" in table.stdout and f"snapshot {future[:8]} is future-dated" in \
        table.stderr

    # The seed's tier: the full (20 days) is within 4 weeks; of the incrementals only the one
    # 15 days old is past 14 days; the future one is kept for what it is.
    tier = json.loads(cli("forget", "--tier", "primary", "--dry-run", "--json").stdout)
    assert {s["id"] for g in tier["groups"] for s in g["snapshots"] if not s["keep"]} == {d15}
    decisions = {s["id"]: s for g in tier["groups"] for s in g["snapshots"]}
    assert decisions[future]["reasons"] == ["future-dated"] and decisions[future]["future_dated"]
    assert decisions[d10]["reasons"] == ["within 14d"]

    gone = json.loads(cli("forget", "--keep-within", "14d", "--json").stdout)
    assert sorted(gone["removed"]) == sorted([d20, d15])
    left = {s["id"] for s in json.loads(cli("snapshots", "--json").stdout)}
    assert left == {d10, d5, now["id"], after["id"], future}


def test_three_weeks_without_backups_keep_the_last_good_one(cli, repo_env, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    cli("init")
    made = [backup(cli, src, n, "full") for n in range(3)]
    old = redate(repo_env, {s["id"]: -d for s, d in zip(made, (40, 30, 21), strict=True)})
    future = redate(repo_env, {old[made[0]["id"]]: 30}, keep=True)
    plan = json.loads(cli("forget", "--keep-within", "14d", "--json").stdout)
    reasons = {s["id"]: s["reasons"] for g in plan["groups"] for s in g["snapshots"]}
    newest = old[made[2]["id"]]
    assert reasons[newest] == ["newest of its group"]
    assert reasons[next(iter(future.values()))] == ["future-dated"]
    assert sorted(plan["removed"]) == sorted([old[made[0]["id"]], old[made[1]["id"]]])


# --------------------------------------------------------------------------------------------
# The rules themselves, on synthetic snapshots.

@dataclass
class Snap:
    id: str
    time: datetime
    source_name: str = "db"
    host: str = "web-1"
    kind: str = "full"
    tags: list[str] = field(default_factory=list)


NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)


def days_ago(*days: float) -> list[Snap]:
    return [Snap(f"s{d:g}", NOW - timedelta(days=d)) for d in days]


def test_keep_within_counts_back_from_now_not_from_the_newest():
    snaps = days_ago(1, 5, 13, 15, 20)
    kept = {s.id for s in plan_retention(snaps, RetentionPolicy(keep_within="14d"),
                                         now=NOW).keep}
    assert kept == {"s1", "s5", "s13"}
    # Without a ``now``: this host's clock, never the newest snapshot.
    real = datetime.now(UTC)
    stale = [Snap(f"r{d}", real - timedelta(days=d)) for d in (15, 20, 40)]
    plan = plan_retention(stale, RetentionPolicy(keep_within="14d"))
    assert [(d.snapshot.id, d.reasons) for d in plan.groups[0].decisions] == [
        ("r15", ["newest of its group"]), ("r20", []), ("r40", [])]
    assert plan.groups[0].key == {"host": "web-1", "source_name": "db"}


def test_future_dated_takes_no_slot_and_no_bucket():
    snaps = [*days_ago(1, 2, 3), Snap("ahead", NOW + timedelta(days=30))]
    last = apply_policy(snaps, RetentionPolicy(keep_last=2), now=NOW)
    assert [(d.snapshot.id, d.keep, d.reasons) for d in last] == [
        ("ahead", True, ["future-dated"]), ("s1", True, ["last"]), ("s2", True, ["last"]),
        ("s3", False, [])]
    daily = apply_policy(snaps, RetentionPolicy(keep_daily=1), now=NOW)
    assert {d.snapshot.id for d in daily if d.keep} == {"ahead", "s1"}
    # Within the tolerance of now a snapshot is an ordinary one.
    near = apply_policy([Snap("near", NOW + timedelta(seconds=30)), *days_ago(1)],
                        RetentionPolicy(keep_last=1), now=NOW)
    assert [(d.snapshot.id, d.reasons) for d in near] == [("near", ["last"]), ("s1", [])]


def test_flagged_snapshot_is_placed_by_when_it_was_stored():
    @dataclass
    class Flagged(Snap):
        future_dated: bool = True
        order_time: datetime = NOW - timedelta(days=3, hours=12)

    ahead = Flagged("ahead", NOW - timedelta(hours=1))  # its date would make it the newest
    decisions = apply_policy([*days_ago(1, 5), ahead], RetentionPolicy(keep_within="2d"),
                             now=NOW)
    assert [(d.snapshot.id, d.reasons) for d in decisions] == [
        ("s1", ["within 2d"]), ("ahead", ["future-dated"]), ("s5", [])]


def test_newest_kept_by_time_rules_only_and_never_a_future_one():
    snaps = [*days_ago(20, 30), Snap("ahead", NOW + timedelta(days=30))]
    within = apply_policy(snaps, RetentionPolicy(keep_within="14d"), now=NOW)
    assert [(d.snapshot.id, d.reasons) for d in within] == [
        ("ahead", ["future-dated"]), ("s20", ["newest of its group"]), ("s30", [])]
    tagged = apply_policy(snaps, RetentionPolicy(keep_tag=("release",)), now=NOW)
    assert [d.keep for d in tagged] == [True, False, False]


def test_a_future_dated_snapshot_never_hides_a_backup_gap(cli, repo_env, tmp_path):
    """Metrics and status place a source's newest backup by arrival, not by a date ahead."""
    import time

    from strongroom.metrics import repository_facts
    from strongroom.repository import Repository

    src = tmp_path / "src"
    src.mkdir()
    cli("init")
    first = backup(cli, src, 0, "full")
    redate(repo_env, {first["id"]: -3})
    made = backup(cli, src, 1)
    redate(repo_env, {made["id"]: 30})  # the newest backup came from a clock 30 days ahead
    repo = Repository.open(repo_env["STRONGROOM_REPOSITORY"],
                           password=repo_env["STRONGROOM_PASSWORD"],
                           options={"endpoint": repo_env["AWS_ENDPOINT_URL"]}
                           if "AWS_ENDPOINT_URL" in repo_env else None)
    newest = max(e["time"] for e in repository_facts(repo, "primary")["backups"])
    assert newest <= time.time() + 5  # its arrival: the gap since stays visible
    status = json.loads(cli("status", "--json", check=False).stdout)  # 4: one copy only
    latest = status["repositories"][0]["sources"]["app"]["latest"]
    assert datetime.fromisoformat(latest) <= datetime.now(UTC) + timedelta(seconds=5)
