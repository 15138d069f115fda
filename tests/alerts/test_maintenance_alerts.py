"""Maintenance alerts end to end on the alert tests' real Prefect server: each emitter's event
(capacity above the threshold, key rotation due, 3-2-1 broken, verify found damage, a WAL gap
in a real PostgreSQL 15 archive) reaches a webhook receiver through the maintenance
automation, and a source never drilled raises "drill overdue" a window after its deploy."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.alerts.conftest import platform
from tests.alerts.test_alerts import PASSWORD, deploy, run_backup
from tests.support import pg_cluster as pgc


def _subject(event: str):
    return lambda m: m.get("subject", "") == f"[maintenance] Strongroom: {event}"


def _occurred(msg: dict) -> float:
    """When the alerted event occurred (the body's ``at:`` line), for latencies."""
    from datetime import datetime

    line = next(x for x in msg["body"].splitlines() if x.startswith("at: "))
    return datetime.fromisoformat(line.removeprefix("at: ").strip()).timestamp()


def _flip_largest(folder: Path) -> None:
    victim = max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))


def test_alert_specs_start_the_drill_count_without_a_first_drill(tmp_path):
    """A source never drilled: its first backup or the deploy starts the count; only a drill
    satisfies it. A site: the deploy or a drill."""
    from deployments.alerts import alert_specs
    from deployments.config import parse_config

    doc = platform(tmp_path, {"x": {"kind": "files", "paths": ["/x"]}},
                   {"ops": {"webhook": "http://127.0.0.1:9/h", "levels": ["maintenance"]}})
    specs = {s["name"]: s["trigger"] for s in alert_specs(parse_config(doc))}
    source = specs["strongroom: maintenance: source drill overdue"]
    assert source["after"] == {"strongroom.drill.completed", "strongroom.drill.scheduled",
                               "strongroom.backup.completed"}
    assert source["expect"] == {"strongroom.drill.completed"}
    site = specs["strongroom: maintenance: site drill overdue"]
    assert site["after"] == {"strongroom.drill.completed", "strongroom.drill.scheduled"}
    assert set(specs["strongroom: maintenance: events"]["expect"]) >= {
        "strongroom.key.rotation-due", "strongroom.target.capacity-exceeded",
        "strongroom.verify.failed", "strongroom.storage.321-broken", "strongroom.wal.gap",
        "strongroom.drill.failed"}


def test_maintenance_emitters_reach_the_webhook(prefect_server, webhook, tmp_path):
    """Capacity (after a backup), key rotation due, 3-2-1 broken and verify damage each arrive
    once as a maintenance message with a one-line summary and no secret."""
    from flows.checks import verify_backups
    from flows.keys import key_rotation
    from flows.storage import three_two_one

    data = tmp_path / "ledger"
    data.mkdir()
    (data / "book.csv").write_text("a,1\n" * 1000)
    name = f"ledger-{secrets.token_hex(3)}"
    doc = platform(tmp_path, {name: {"kind": "files", "class": "files", "paths": [str(data)]}},
                   {"ops": {"webhook": webhook.url, "levels": ["maintenance"]}})
    doc["targets"]["primary"]["capacity_bytes"] = 1  # any repository is over 70% of 1 byte
    deploy(doc)
    sent: dict[str, float] = {}  # event -> when the run that emits it returned

    def step(event: str, run) -> None:
        run()
        sent[event] = time.time()

    step("strongroom.target.capacity-exceeded",
         lambda: run_backup(f"files/{name}").is_completed() or pytest.fail("backup failed"))
    step("strongroom.key.rotation-due",
         lambda: key_rotation(["primary"], rotate=False, max_age_days=-1.0))
    step("strongroom.storage.321-broken",
         lambda: three_two_one(["primary"], return_state=True).is_failed() or pytest.fail("ok"))
    _flip_largest(tmp_path / "repo" / "data")
    step("strongroom.verify.failed",
         lambda: verify_backups(target="primary", mode="read-data",
                                return_state=True).is_failed() or pytest.fail("verified"))

    for event, ended in sent.items():
        arrived, msg = webhook.wait(_subject(event), 60)
        print(f"{event}: webhook {arrived - _occurred(msg):.2f} s after the "
              f"event, {arrived - ended:+.2f} s from the end of the emitting run")
        assert "\n" in msg["body"] and msg["body"].split("\n")[0].strip()
        assert PASSWORD not in str(msg)
    assert "primary is" in webhook.wait(_subject("strongroom.target.capacity-exceeded"), 1)[1][
        "body"]
    time.sleep(3)
    for event in sent:
        assert len(webhook.matching(_subject(event))) == 1, event


def test_never_drilled_source_raises_drill_overdue(prefect_server, webhook, tmp_path,
                                                   monkeypatch):
    """With a 9 s drill interval (+1 s grace), a source deployed but never drilled gets one
    "drill overdue" message a window after the deploy (a first backup would start the count
    too, but never restart one: see the spec test above)."""
    import deployments.alerts as alerts

    monkeypatch.setitem(alerts.DRILL_INTERVAL, "source", timedelta(seconds=9))
    data = tmp_path / "wiki"
    data.mkdir()
    (data / "page.md").write_text("hello")
    name = f"wiki-{secrets.token_hex(3)}"
    doc = platform(tmp_path, {name: {"kind": "files", "class": "files", "paths": [str(data)]}},
                   {"ops": {"webhook": webhook.url, "levels": ["maintenance"]}})
    doc["notifications"]["drill_grace"] = "1s"
    result = deploy(doc)
    announced = time.time()
    assert f"strongroom.source.{name}" in result["drills_announced"]
    overdue = lambda m: m.get("subject", "").endswith(f"drill overdue for {name}")  # noqa: E731
    arrived, msg = webhook.wait(overdue, 90)
    print(f"never-drilled source: drill overdue {arrived - announced:.1f} s after the deploy "
          "announced its drill (window 10 s)")
    assert arrived - announced >= 9
    assert "the deploy that scheduled it" in msg["body"] and f"source: {name}" in msg["body"]
    time.sleep(3)
    assert len(webhook.matching(overdue)) == 1


@pytest.mark.skipif(not pgc.available(), reason="PostgreSQL 15 not installed")
def test_wal_gap_in_a_real_archive_alerts(prefect_server, webhook, tmp_path):
    """A WAL segment lost from a real PostgreSQL 15 archive: the verify flow finds the gap and
    the maintenance message names the cluster and the missing segment; the replication
    flow's watch alerts once for it too, and not again for the same gap."""
    from flows.checks import verify_backups
    from strongroom.sources.postgres import walstore
    from strongroom.sources.postgres.physical import backup_full
    from tasks.walgaps import WalGapWatch
    from tests.postgres.helpers import drop_wal_file, receiver, wait_archived

    with pgc.workdir() as root:
        cluster = pgc.initdb(root / "c")
        try:
            url = pgc.make_repo(root)
            with receiver(cluster, url, root, name="ledger"):
                backup_full(pgc.open_repo(url), cluster.dsn(), "ledger", wal="none")
                for _ in range(3):
                    cluster.sql("CREATE TABLE IF NOT EXISTS g AS SELECT 1 AS x")
                    cluster.sql("INSERT INTO g SELECT generate_series(1, 20000)")
                    lsn = cluster.sql("SELECT pg_switch_wal()::text")[0][0]
                wait_archived(url, "ledger", lsn)
        finally:
            pgc.stop(cluster)
        repo = pgc.open_repo(url)
        segs = sorted(walstore.WalCatalog.load(repo, "ledger").segments().values())
        victim = segs[len(segs) // 2]
        drop_wal_file(repo, "ledger", victim)
        repo.close()

        doc = platform(tmp_path, {"docs": {"kind": "files", "paths": [str(tmp_path)]}},
                       {"ops": {"webhook": webhook.url, "levels": ["maintenance"]}})
        doc["keys"]["main"]["password"] = pgc.REPO_PASSWORD
        doc["targets"]["primary"]["url"] = url
        deploy(doc)

        is_gap = _subject("strongroom.wal.gap")
        state = verify_backups(target="primary", mode="structure", return_state=True)
        found = time.time()
        assert state.is_completed(), state.message  # a gap is an alert, not a failed verify
        report = state.result()
        assert report["wal"].startswith(f"ledger: 1 segment(s) missing from {victim}")
        arrived, msg = webhook.wait(is_gap, 60)
        print(f"WAL gap: webhook {arrived - _occurred(msg):.2f}"
              f" s after the event, {arrived - found:+.2f} s from the end of the verify run")
        assert f"WAL archive of ledger in primary has a gap: 1 segment(s) missing ({victim})" \
            in msg["body"]
        assert "source: ledger" in msg["body"]
        assert pgc.REPO_PASSWORD not in str(msg) and pgc.SUPERUSER_PASSWORD not in str(msg)

        watch = WalGapWatch("primary", "ledger", every_s=0)
        assert watch.poll()["missing"] == [victim]
        assert watch.poll() is None  # the same gap: no second alert
        webhook.wait(lambda m: is_gap(m) and len(webhook.matching(is_gap)) == 2, 60)
