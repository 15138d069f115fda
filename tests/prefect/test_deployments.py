"""Deployments: the seed's schedule table exactly (cron, time zone, parameters), from YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "deployments" / "platform.example.yaml"
TZ = "America/New_York"
# The seed's table, written out independently of deployments/seed.py:
# deployment -> (flow name, cron, kept, covered sources of the example platform)
SEED = {
    "daily-incremental": ("backup-incremental", "0 2 * * *", "14d",
                          ["app-files", "platform-config", "orders-db"]),
    "weekly-full": ("backup-full", "0 1 * * 0", "4w",
                    ["app-files", "platform-config", "orders-db"]),
    "weekly-differential": ("backup-differential", "0 1 * * 3", "2w",
                            ["app-files", "platform-config", "orders-db"]),
    "monthly-full": ("backup-monthly-archive", "0 0 1 * *", "12m",
                     ["app-files", "platform-config", "orders-db"]),
    # the example's own row: the files RPO (4 h) needs more than a daily incremental
    "four-hourly-incremental": ("backup-incremental", "0 */4 * * *", "2d", ["app-files"]),
    "hourly-snapshot": ("backup-snapshot", "0 * * * *", "7d", ["orders-db"]),
    "continuous-replication": ("backup-replication", "*/15 * * * *", "24h", ["orders-db"]),
}
KIND = {"app-files": "files", "platform-config": "files", "orders-db": "postgres"}
RECOVERY = {"recover-files": "recover-files", "recover-database": "recover-database",
            "disaster-recovery": "disaster-recovery", "verify-backups": "verify-backups"}
# reports and drills (deployments/operations.py)
OPERATIONS = {"report-daily", "report-weekly", "report-monthly", "report-quarterly",
              "drill-app-files", "drill-platform-config", "drill-orders-db", "disaster-drill",
              # deployments/recovery_specs.py
              "replication-orders-db", "recover-incident", "recover-system", "undo-recovery",
              # deployments/key_specs.py
              "key-rotation", "key-rotation-check"}


@pytest.fixture
def example_env(monkeypatch):
    for var in ("STRONGROOM_PASSWORD", "STRONGROOM_S3_ENDPOINT", "ORDERS_DB_PASSWORD"):
        monkeypatch.setenv(var, f"value-of-{var.lower()}")
    monkeypatch.setenv("STRONGROOM_S3_ENDPOINT", "http://127.0.0.1:9")


def test_example_file_is_the_seed_table(example_env):
    from deployments.build import schedule_specs
    from deployments.config import load_config

    config = load_config(EXAMPLE)
    specs = schedule_specs(config)
    assert set(specs) == set(SEED) | set(RECOVERY) | {"retention"} | OPERATIONS
    assert [(s["cron"], s["timezone"], s["active"]) for s in specs["retention"]["schedules"]
            ] == [("30 3 * * *", TZ, True)]
    assert specs["retention"]["parameters"] == {
        "targets": ["primary", "secondary", "archive"],
        "policies": {"incremental": "retention-daily-incremental", "full": "retention-weekly-full",
                     "differential": "retention-weekly-differential",
                     "monthly-archive": "retention-monthly-full",
                     "snapshot": "retention-hourly-snapshot",
                     "replication": "retention-continuous-replication"}}
    for name, (_flow, cron, keep, sources) in SEED.items():
        spec = specs[name]
        assert spec["parameters"]["keep"] == keep
        assert spec["parameters"]["sources"] == [f"{KIND[s]}/{s}" for s in sources]
        assert spec["parameters"]["tier"] == spec["flow"]
        # one schedule per deployment (the UI shows no "+1"), its time zone named in words
        assert [(s["cron"], s["timezone"], s["active"]) for s in spec["schedules"]
                ] == [(cron, TZ, True)]
        assert f"(cron {cron})" in spec["description"] and TZ in spec["description"]
    assert specs["daily-incremental"]["description"].startswith(
        "incremental backup daily at 02:00 America/New_York (cron 0 2 * * *); the UI shows "
        "next runs in your browser's zone")
    assert specs["monthly-full"]["parameters"]["replicas"] == ["secondary", "archive"]
    assert specs["daily-incremental"]["parameters"]["replicas"] == ["secondary"]


def test_deployments_registered_with_the_seed_schedules(prefect_harness, example_env):
    from prefect.client.orchestration import get_client

    from deployments.build import build_deployments
    from deployments.config import load_config

    config = load_config(EXAMPLE)
    for dep in build_deployments(config):
        dep.apply()
    with get_client(sync_client=True) as client:
        for name, (flow_name, cron, keep, sources) in SEED.items():
            dep = client.read_deployment_by_name(f"{flow_name}/{name}")
            assert [(s.schedule.cron, s.schedule.timezone, s.active, s.parameters)
                    for s in dep.schedules] == [(cron, TZ, True, {})], name
            assert dep.parameters["sources"] == [f"{KIND[s]}/{s}" for s in sources]
            assert dep.parameters["keep"] == keep and dep.parameters["primary"] == "primary"
        for name, flow_name in RECOVERY.items():
            dep = client.read_deployment_by_name(f"{flow_name}/{name}")
            assert dep.schedules == []
        assert client.read_deployment_by_name("disaster-recovery/disaster-recovery"
                                              ).parameters == {
            "site": "example", "from_role": "secondary",
            "priority": ["security", "database", "files", "system"]}
        # one supervised WAL replication per PostgreSQL source, at most one run at a time
        repl = client.read_deployment_by_name("wal-replication/replication-orders-db")
        assert repl.parameters["source"] == "postgres/orders-db"
        assert repl.parameters["secondaries"] == ["secondary"]
        assert repl.global_concurrency_limit.limit == 1
        assert repl.concurrency_options.collision_strategy == "CANCEL_NEW"


def test_example_file_registers_with_the_seed_objectives(prefect_harness, example_env):
    """The README's file registers as is; its objectives (incl. 15m: minutes) are the seed's."""
    from datetime import timedelta

    from blocks import RecoveryObjectives, StrongroomSite
    from deployments.config import load_config
    from deployments.register import register_platform

    result = register_platform(load_config(EXAMPLE))
    assert result["site"] == "example" and len(result["limits"]) == 3
    objs = RecoveryObjectives.load("default")
    h = timedelta(hours=1)
    assert [(objs.for_class(c).rto, objs.for_class(c).rpo)
            for c in ("database", "files", "system", "security")] == [
        (4 * h, h), (2 * h, 4 * h), (8 * h, 24 * h), (h, timedelta(minutes=15))]
    assert StrongroomSite.load("example").secondary == ["secondary"]


def test_retention_applies_the_platform_files_keep_values(prefect_harness, tmp_path, names):
    """keep in the platform file (no code) decides what the retention deployment keeps."""
    from deployments.build import schedule_specs
    from deployments.config import parse_config
    from deployments.register import register_platform
    from flows.backup import TIER_FLOWS
    from flows.storage import retention
    from strongroom.policy.retention import Duration
    from tests.prefect.conftest import make_tree

    data = make_tree(tmp_path / "data", files=6)
    config = parse_config({
        "site": f"site-{names}", "keys": {"k": {"password": "pw-retention"}},
        "targets": {f"repo-{names}": {"url": str(tmp_path / "repo"), "key": "k"}},
        "sources": {f"docs-{names}": {"kind": "files", "paths": [str(data)]}},
        "schedules": {
            f"inc-{names}": {"tier": "incremental", "cron": "0 2 * * *",
                             "classes": ["files"], "keep": "30d"},
            f"full-{names}": {"tier": "full", "cron": "0 1 * * 0", "classes": ["files"],
                              "keep": "8w"}},
        "retention_cron": "15 4 * * *"})
    register_platform(config)
    spec = schedule_specs(config)["retention"]
    assert spec["schedules"][0]["cron"] == "15 4 * * *"
    primary = f"repo-{names}"
    TIER_FLOWS["full"]("full", [f"files/docs-{names}"], primary=primary)
    (data / "new.txt").write_text("changed")
    TIER_FLOWS["incremental"]("incremental", [f"files/docs-{names}"], primary=primary)

    [report] = retention(**spec["parameters"])
    policies = {g["schedule"]: g["policy"] for g in report["groups"]}
    assert Duration.parse(policies["incremental"].removeprefix("within ")) == \
        Duration.parse("30d")
    assert Duration.parse(policies["full"].removeprefix("within ")) == Duration.parse("8w")
    assert (report["keep"], report["forget"], report["removed"]) == (2, 0, 0)


def test_a_schedule_without_sources_stays_visible_but_paused():
    from deployments.build import schedule_specs
    from deployments.config import parse_config

    config = parse_config({"keys": {"k": {"password": "x"}},
                           "targets": {"primary": {"url": "/srv/repo", "key": "k"}},
                           "sources": {"docs": {"kind": "files", "paths": ["/srv/docs"]}}})
    hourly = schedule_specs(config)["hourly-snapshot"]
    assert hourly["schedules"] == [{"cron": "0 * * * *", "timezone": TZ, "active": False,
                                    "slug": "hourly-snapshot"}]
    assert hourly["parameters"]["sources"] == []


@pytest.mark.parametrize(("patch", "message"), [
    ({"schedules": {"x": {"tier": "full", "cron": "61 2 * * *", "classes": ["files"],
                          "keep": "1d"}}},
     "schedules.x.cron: invalid cron expression '61 2 * * *'"),
    ({"timezone": "Mars/Olympus"}, "timezone: unknown time zone 'Mars/Olympus'"),
    ({"schedules": {"x": {"tier": "hourly", "cron": "0 * * * *", "classes": ["files"],
                          "keep": "1d"}}}, "schedules.x.tier"),
    ({"targets": {"primary": {"url": "/r", "key": "nokey"}}}, "unknown key 'nokey'"),
    ({"sources": {"d": {"kind": "tape"}}},
     "sources.d.kind: unknown source kind 'tape' (known: files, "),
    ({"sources": {"d": {"kind": "files", "runs_on": "host a"}}}, "sources.d.runs_on"),
    ({"objectives": {"files": {"rto": "two hours"}}}, "bad objective 'two hours'"),
])
def test_bad_platform_file_gives_one_line(tmp_path, patch, message):
    import yaml

    from deployments.config import load_config

    doc = {"keys": {"k": {"password": "x"}},
           "targets": {"primary": {"url": "/srv/repo", "key": "k"}},
           "sources": {"docs": {"kind": "files", "paths": ["/srv/docs"]}}} | patch
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_environment_variable_is_named(tmp_path, monkeypatch):
    from deployments.config import load_config

    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = tmp_path / "p.yaml"
    path.write_text("keys: {k: {password: '${NOT_SET_ANYWHERE}'}}\n"
                    "targets: {primary: {url: /r, key: k}}\nsources: {}\n")
    with pytest.raises(ConfigError, match="keys.k.password: environment variable "
                                          "NOT_SET_ANYWHERE is not set"):
        load_config(path)


def test_prefect_block_register_finds_every_block_type(prefect_harness):
    import os
    import subprocess
    import sys

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    import blocks

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    proc = subprocess.run([sys.executable, "-m", "prefect", "block", "register", "-m", "blocks"],
                          env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Successfully registered {len(blocks.BLOCK_TYPES)} blocks" in proc.stdout
    with get_client(sync_client=True) as client:
        slugs = {t.slug for t in client.read_block_types()}
    assert {cls.get_block_type_slug() for cls in blocks.BLOCK_TYPES} <= slugs


def test_kinds_and_default_classes_come_from_the_source_registry():
    from deployments.config import parse_config
    from strongroom.sources import registry

    config = parse_config({"keys": {"k": {"password": "x"}},
                           "targets": {"primary": {"url": "/srv/repo", "key": "k"}},
                           "sources": {kind: {"kind": kind} for kind in registry.kinds()}})
    for kind in registry.kinds():
        assert config.source_class(kind) == registry.get(kind).default_class


def test_work_pool_deployments_split_by_host():
    """runs_on puts a source's backups and restores on its host's queue (<row>@<host>); the
    rest and the host-independent flows on the default queue."""
    from deployments.build import pool_specs
    from deployments.config import parse_config

    config = parse_config({
        "site": "s", "keys": {"k": {"password": "x"}},
        "targets": {"primary": {"url": "/srv/repo", "key": "k"}},
        "sources": {"a-files": {"kind": "files", "paths": ["/a"], "runs_on": "host-a"},
                    "b-files": {"kind": "files", "paths": ["/b"], "runs_on": "host-b"},
                    "b-etc": {"kind": "files", "class": "system", "paths": ["/etc"],
                              "runs_on": "host-b"},
                    "shared": {"kind": "files", "paths": ["/nfs"]}},
        "schedules": {"daily-incremental": {"tier": "incremental", "cron": "0 2 * * *",
                                            "classes": ["files", "system"], "keep": "14d"}}})
    specs = pool_specs(config)
    got = {name: (s["work_queue"], s["parameters"].get("sources")) for name, s in specs.items()}
    assert got == {
        "daily-incremental": ("default", ["files/shared"]),
        "daily-incremental@host-a": ("host-a", ["files/a-files"]),
        "daily-incremental@host-b": ("host-b", ["files/b-files", "files/b-etc"]),
        "recover-files": ("default", None), "recover-database": ("default", None),
        "recover-files@host-a": ("host-a", None), "recover-database@host-a": ("host-a", None),
        "recover-files@host-b": ("host-b", None), "recover-database@host-b": ("host-b", None),
        "disaster-recovery": ("default", None), "retention": ("default", None),
        "verify-backups": ("default", None),
        # reports and drills (deployments/operations.py): a drill runs on its source's host
        "report-daily": ("default", None), "report-weekly": ("default", None),
        "report-monthly": ("default", None), "report-quarterly": ("default", None),
        "drill-a-files": ("host-a", None), "drill-b-files": ("host-b", None),
        "drill-b-etc": ("host-b", None), "drill-shared": ("default", None),
        "disaster-drill": ("default", None),
        # a host's system files are recovered by that host's worker
        "recover-incident": ("default", None), "recover-system": ("default", None),
        "recover-system@host-a": ("host-a", None), "recover-system@host-b": ("host-b", None),
        "undo-recovery": ("default", None),
        # key rotation of every target and its daily check
        "key-rotation": ("default", None), "key-rotation-check": ("default", None)}
    assert [len(s["schedules"]) for n, s in specs.items() if n.startswith("daily")] == [1, 1, 1]
