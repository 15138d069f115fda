"""Alerts end to end: a real Prefect server, the platform's automations and notification
blocks created by the deploy step, backups run against it, real receivers on loopback."""

from __future__ import annotations

import time

import pytest

from tests.alerts.conftest import platform

PASSWORD = "pw-alerts-secret"


def deploy(doc: dict) -> dict:
    from deployments.config import parse_config
    from deployments.register import register_platform

    return register_platform(parse_config(doc))["alerts"]


def strongroom_automations() -> list:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return [a for a in client.read_automations() if a.name.startswith("strongroom: ")]


def run_backup(source: str, schedule: str = "fast"):
    """The backup flow as a deployment runs it (its tags), in this process; final state."""
    from prefect import tags

    from flows.backup import backup_incremental

    with tags("strongroom", "backup", "incremental", f"schedule-{schedule}"):
        return backup_incremental(tier="incremental", sources=[source], return_state=True)


def test_failed_backup_alerts_critical_once_by_webhook_and_email(prefect_server, webhook, smtp,
                                                                  tmp_path):
    """A backup whose source is gone arrives as one critical message naming the source, the
    tier, the error and the run; by mail too; fixed, it does not alert again; no secret."""
    data = tmp_path / "data"
    doc = platform(tmp_path, {"payroll": {"kind": "files", "class": "files",
                                          "paths": [str(data)]}},
                   {"oncall": {"webhook": webhook.url, "levels": ["critical", "warning"]},
                    "mail": {"email": {"smtp_host": "127.0.0.1", "smtp_port": smtp.port,
                                       "from": "strongroom@example.com",
                                       "to": "oncall@example.com", "secure": "insecure"},
                             "levels": ["critical"]}},
                   metrics_textfile=str(tmp_path / "textfile" / "strongroom.prom"))
    deploy(doc)
    state = run_backup("files/payroll")
    assert state.is_failed()
    failed_at = state.timestamp.timestamp()
    is_critical = lambda m: "[critical]" in m.get("subject", "")  # noqa: E731
    arrived, msg = webhook.wait(is_critical, 60)
    print(f"critical alert latency (Failed state -> webhook POST): {arrived - failed_at:.2f} s")
    body = msg["body"]
    assert "files/payroll" in body and "tier: incremental" in body
    assert "payroll" in body.split("error:")[1]  # the one-line error names what failed
    assert "/runs/flow-run/" in body
    assert PASSWORD not in str(msg)
    mail = smtp.wait(lambda m: "[critical]" in m[1], 60)
    assert "files/payroll" in mail[2] and mail[3] == ["oncall@example.com"]
    print(f"critical alert latency (Failed state -> mail): {mail[0] - failed_at:.2f} s")

    # fixed: the next backup completes and nothing critical follows
    data.mkdir()
    (data / "salaries.csv").write_text("a,1\n")
    assert run_backup("files/payroll").is_completed()
    time.sleep(8)
    assert len(webhook.matching(is_critical)) == 1
    assert len([m for m in smtp.messages if "[critical]" in m[1]]) == 1

    # the backups kept the node-exporter textfile up to date: one failure, then a success
    from prometheus_client.parser import text_string_to_metric_families

    text = (tmp_path / "textfile" / "strongroom.prom").read_text()
    got = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    assert got["strongroom_backup_failures_total"].labels == {"source": "payroll",
                                                              "tier": "incremental"}
    assert got["strongroom_backup_failures_total"].value == 1
    assert got["strongroom_backup_last_success_timestamp_seconds"].labels["source"] == "payroll"
    assert got["strongroom_repository_snapshots"].value == 1


def test_missing_backup_raises_the_delay_warning_once(prefect_server, webhook, tmp_path):
    """After a completed backup, silence longer than the row's window (20 s here) produces
    one delay warning naming the source; it does not repeat while the silence goes on."""
    data = tmp_path / "docs"
    data.mkdir()
    (data / "a.txt").write_text("a")
    doc = platform(tmp_path, {"docs": {"kind": "files", "class": "files", "paths": [str(data)]}},
                   {"oncall": {"webhook": webhook.url, "levels": ["warning"]}})
    deploy(doc)
    state = run_backup("files/docs")
    assert state.is_completed()
    done = time.time()
    is_late = lambda m: "backup of docs is late" in m.get("subject", "")  # noqa: E731
    arrived, msg = webhook.wait(is_late, 90)
    print(f"delay warning {arrived - done:.1f} s after the last backup (window 20 s)")
    assert arrived - done >= 19
    assert "source: docs" in msg["body"] and "tier: incremental" in msg["body"]
    time.sleep(25)
    assert len(webhook.matching(is_late)) == 1


def test_redeploy_is_idempotent_and_removing_a_channel_removes_its_alerts(
        prefect_server, webhook, tmp_path):
    from prefect.client.orchestration import get_client

    data = tmp_path / "d"
    data.mkdir()
    sources = {"x": {"kind": "files", "paths": [str(data)]}}
    both = {"oncall": {"webhook": webhook.url},
            "chat": {"slack": "https://hooks.slack.com/services/T000/B000/XXXX",
                     "levels": ["critical", "info"]}}
    first = deploy(platform(tmp_path, sources, both))
    autos = strongroom_automations()
    names = sorted(a.name for a in autos)
    assert len(names) == len(set(names))  # one automation per alert
    assert "strongroom: critical: run failed" in names
    assert "strongroom: info: backup completed" in names  # chat opted in
    again = deploy(platform(tmp_path, sources, both))
    assert again["created"] == [] and again["updated"] == [] and again["deleted"] == []
    assert sorted(a.name for a in strongroom_automations()) == names
    assert {a.id for a in strongroom_automations()} == {a.id for a in autos}
    assert first["channels"] == ["strongroom-alert-oncall", "strongroom-alert-chat"]

    only = deploy(platform(tmp_path, sources,
                           {"oncall": {"webhook": webhook.url + "?token=hook-token-secret"}}))
    assert "strongroom: info: backup completed" in only["deleted"]
    after = {a.name: a for a in strongroom_automations()}
    assert "strongroom: info: backup completed" not in after
    assert all(len(a.actions) == 1 for a in after.values())  # chat's action is gone
    with get_client(sync_client=True) as client:
        blocks = {d.name for d in client.read_block_documents(include_secrets=False)}
    assert "strongroom-alert-chat" not in blocks and "strongroom-alert-oncall" in blocks
    # secrets stay masked in what the API (and UI) shows
    with get_client(sync_client=True) as client:
        docs = client.read_block_documents(include_secrets=False)
    assert not any("XXXX" in str(d.data) for d in docs)
    assert not any("hook-token-secret" in str(d.data) for d in docs)  # a webhook URL too


@pytest.mark.parametrize("channel", [{"webhook": "ftp://x"}, {}, {"webhook": "http://a",
                                                                   "slack": "http://b"}])
def test_bad_channels_are_refused_naming_the_field(channel, tmp_path):
    from deployments.config import parse_config
    from strongroom.errors import ConfigError

    with pytest.raises(ConfigError, match="notifications.channels.c"):
        parse_config(platform(tmp_path, {"x": {"kind": "files", "paths": ["/x"]}},
                              {"c": channel}))


def test_mailto_url_takes_the_password_from_the_environment(monkeypatch):
    from deployments.notifications import EmailChannel, mailto_url
    from strongroom.errors import ConfigError

    mail = EmailChannel.model_validate({"smtp_host": "smtp.example.com", "smtp_port": 587,
                                        "from": "a@example.com", "to": ["b@example.com"],
                                        "username": "bob", "password_env": "SMTP_PW"})
    monkeypatch.delenv("SMTP_PW", raising=False)
    with pytest.raises(ConfigError, match="SMTP_PW"):
        mailto_url(mail)
    monkeypatch.setenv("SMTP_PW", "p@ss/word")
    url = mailto_url(mail)
    assert url.startswith("mailto://bob:p%40ss%2Fword@smtp.example.com:587?")
    assert "mode=starttls" in url


