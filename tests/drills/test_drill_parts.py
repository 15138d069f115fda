"""Drill parts without servers: scratch targets a kind cannot make, the delivered RPO, the
history's size limit, the disaster's priority order, overdue drills."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from strongroom.errors import NotSupported
from strongroom.sources import registry


def test_neo4j_needs_a_scratch_server_from_the_platform_file(tmp_path):
    neo4j = registry.get("neo4j")
    with pytest.raises(NotSupported, match="Enterprise.*scratch_uri"):
        with neo4j.scratch_target(None, tmp_path, settings={"uri": "bolt://prod:7687"}):
            pass
    with pytest.raises(NotSupported, match="production server"):
        with neo4j.scratch_target(None, tmp_path, settings={"uri": "bolt://prod:7687",
                                                            "scratch_uri": "bolt://prod:7687"}):
            pass
    with neo4j.scratch_target(None, tmp_path, settings={"uri": "bolt://prod:7687",
                                                        "scratch_uri": "bolt://drill:7687"}
                              ) as scratch:
        assert scratch.target == "bolt://drill:7687"


def test_logical_postgres_snapshots_are_not_drilled(tmp_path):
    snap = SimpleNamespace(meta={"postgres": {"method": "logical"}})
    with pytest.raises(NotSupported, match="physical"):
        with registry.get("postgres").scratch_target(snap, tmp_path, settings={}):
            pass


def test_files_scratch_directory_is_removed(tmp_path):
    with registry.get("files").scratch_target(None, tmp_path, settings={}) as scratch:
        Path(scratch.target, "f").write_text("x")
    assert list(tmp_path.iterdir()) == []


def test_every_kind_answers_the_scratch_contract():
    for source in registry.all_sources():
        assert callable(source.scratch_target)


def test_delivered_rpo_is_the_largest_gap():
    from tasks.scratch import delivered_rpo

    now = datetime(2026, 12, 1, tzinfo=UTC)
    hours = [now - timedelta(hours=h) for h in (30, 26, 20, 2)]
    assert delivered_rpo(hours, now) == 18 * 3600  # 20 h -> 2 h
    assert delivered_rpo([now - timedelta(hours=5)], now) == 5 * 3600
    assert delivered_rpo([], now) is None
    old = [now - timedelta(days=60)]
    assert delivered_rpo(old, now) == 60 * 86400


def test_history_fits_prefect_variables_and_keeps_the_newest_of_each():
    from tasks.drill_history import MAX_CHARS, fit

    records = [{"scope": "source", "name": f"s{i % 5}", "n": i, "pad": "x" * 150}
               for i in range(100)]
    kept = fit(records)
    assert len(json.dumps(kept)) <= MAX_CHARS
    assert {r["name"] for r in kept} == {f"s{i}" for i in range(5)}
    assert kept[-1]["n"] == 99 and sorted(r["n"] for r in kept) == [r["n"] for r in kept]


def test_priority_order_and_overdue():
    from flows.drills import drill_overdue, priority_groups

    groups = priority_groups({"files/a": "files", "postgres/b": "database",
                              "files/etc": "system", "redis/c": "database",
                              "files/keys": "security"})
    assert groups == [["files/keys"], ["postgres/b", "redis/c"], ["files/a"], ["files/etc"]]
    assert drill_overdue(None)
    assert drill_overdue({"next_due": "2026-01-01"}, today=date(2026, 2, 1))
    assert not drill_overdue({"next_due": "2026-03-01"}, today=date(2026, 2, 1))
