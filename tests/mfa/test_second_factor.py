"""The second factor: TOTP codes (wrong, replayed, missing, within the drift window), the stored
retention policy and which forgets/prunes it lets through, the CLI's exit 20 one-line errors
and audit records of refusals, the escrow key as break-glass, and the retention flow applying
the stored policy without a code -- on local disk and moto S3."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest

from strongroom import mfa, settings
from strongroom.audit import log as audit_log
from strongroom.errors import IntegrityError
from strongroom.policy.retention import RetentionPolicy
from strongroom.policy.stored import (
    StoredPolicy,
    beyond_policy,
    load_policy,
    save_policy,
    updated_policy,
)
from strongroom.repository.forget import plan_for
from tests.tiers.helpers import PASSWORD, backup, new_repo, random_files

T0 = 1_900_000_020.0  # a fixed moment, 20 s into its 30 s step


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGROOM_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(params=["local", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    if request.param == "local":
        return str(tmp_path / "r"), {}
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/r", {"endpoint": request.getfixturevalue("moto_endpoint")}


def _refusals(repo: Any) -> list[dict[str, Any]]:
    return [r.doc for r in audit_log.read_records(repo.backend) if r.doc["op"] == "mfa refused"]


def test_codes_wrong_replayed_missing_and_drift(target) -> None:
    url, opts = target
    repo = new_repo(url, options=opts)
    mfa.require_second_factor(repo, "key remove", None)  # not enabled: nothing needed
    secret, uri = mfa.enable(repo)
    assert uri.startswith("otpauth://totp/") and secret in uri
    raw = repo.backend.get("settings/mfa")
    assert secret.encode() not in raw  # sealed
    totp = pyotp.TOTP(secret)
    with pytest.raises(mfa.SecondFactorRequired, match="key remove needs the second factor"):
        mfa.require_second_factor(repo, "key remove", None, now=T0)
    with pytest.raises(mfa.WrongCode):
        mfa.require_second_factor(repo, "key remove", "123abc", now=T0)
    wrong = f"{(int(totp.at(T0)) + 1) % 10**6:06d}"
    with pytest.raises(mfa.WrongCode, match="wrong second-factor code for key remove"):
        mfa.require_second_factor(repo, "key remove", wrong, now=T0)
    with pytest.raises(mfa.WrongCode):  # three steps old: outside the drift window
        mfa.require_second_factor(repo, "key remove", totp.at(T0 - 90), now=T0)

    fresh = new_repo_handle(url, opts)
    mfa.require_second_factor(fresh, "key remove", totp.at(T0), now=T0)
    mfa.require_second_factor(fresh, "key remove", totp.at(T0), now=T0)  # same command: passed
    again = new_repo_handle(url, opts)
    with pytest.raises(mfa.ReplayedCode, match="already used"):
        mfa.require_second_factor(again, "key remove", totp.at(T0), now=T0 + 5)
    mfa.require_second_factor(again, "prune", totp.at(T0 - 30), now=T0)  # previous step: ok
    other = new_repo_handle(url, opts)
    with pytest.raises(mfa.ReplayedCode):  # that step is used up too, also seen as "next"
        mfa.require_second_factor(other, "prune", totp.at(T0), now=T0 + 30)

    refused = _refusals(repo)
    assert [r["outcome"] for r in refused] == ["refused"] * 6
    text = json.dumps(refused)
    assert secret not in text and totp.at(T0) not in text and wrong not in text
    assert {r["args"]["action"] for r in refused} == {"key remove", "prune"}


def new_repo_handle(url: str, opts: dict[str, Any]) -> Any:
    from tests.tiers.helpers import open_repo

    return open_repo(url, options=opts)


def test_settings_are_sealed_and_bound(target) -> None:
    url, opts = target
    repo = new_repo(url, options=opts)
    settings.save(repo, "x", {"a": 1})
    assert settings.load(repo, "x") == {"a": 1}
    repo.backend.put("settings/y", repo.backend.get("settings/x"))  # moved to another name
    with pytest.raises(IntegrityError, match="setting y is damaged or was altered"):
        settings.load(repo, "y")
    raw = bytearray(repo.backend.get("settings/x"))
    raw[-1] ^= 1
    repo.backend.put("settings/x", bytes(raw))
    with pytest.raises(IntegrityError, match="setting x is damaged"):
        settings.load(repo, "x")


def test_stored_policy_decides_what_needs_the_code(tmp_path: Path) -> None:
    repo = new_repo(str(tmp_path / "r"))
    snaps = [backup(repo, random_files(i, count=1, size=1000), source="db") for i in range(4)]
    plan = plan_for(repo, RetentionPolicy(keep_last=1), source_name="db")
    assert sorted(beyond_policy(repo, plan, None)) == sorted(s.id for s in snaps[:3])
    stored = save_policy(repo, updated_policy(None, RetentionPolicy(keep_last=2),
                                              min_grace="2h"))
    assert load_policy(repo) == stored and stored.min_grace_delta() == timedelta(hours=2)
    assert beyond_policy(repo, plan, stored) == [snaps[2].id]  # the policy keeps the 2 newest
    lenient = plan_for(repo, RetentionPolicy(keep_last=3), source_name="db")
    assert beyond_policy(repo, lenient, stored) == []
    per_schedule = updated_policy(stored, RetentionPolicy(keep_last=4), schedule="full")
    assert per_schedule.rule_for({"schedule": "full"}).keep_last == 4
    assert per_schedule.rule_for({"schedule": "incremental"}).keep_last == 2
    assert StoredPolicy().rule_for({"schedule": "x"}).is_empty()  # no rule: keep everything


# ---- the command line --------------------------------------------------------------------

@pytest.fixture
def env(target, tmp_path: Path) -> dict[str, str]:
    url, opts = target
    out = dict(os.environ, STRONGROOM_PASSWORD=PASSWORD, STRONGROOM_REPOSITORY=url,
               STRONGROOM_STATE_DIR=str(tmp_path / "state"))
    if opts.get("endpoint"):
        out["AWS_ENDPOINT_URL"] = opts["endpoint"]
    return out


def _cli(env: dict[str, str], *args: str, code: int = 0,
         extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["strongroom", *args], env={**env, **(extra or {})},
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == code, f"{args} -> {proc.returncode}\n{proc.stdout}{proc.stderr}"
    if code:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert "Traceback" not in proc.stderr
    return proc


def test_cli_second_factor(env: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    _cli(env, "init")
    for _ in range(3):
        _cli(env, "backup", "files", str(src), "--kind", "full")
    enabled = json.loads(_cli(env, "mfa", "enable", "--json").stdout)
    secret = enabled["secret"]
    totp = pyotp.TOTP(secret)
    assert "required for destructive" in _cli(env, "mfa", "status").stdout
    _cli(env, "backup", "files", str(src))  # backups never need it
    _cli(env, "restore", "latest", "--target", str(tmp_path / "out"))  # nor restores

    refused = _cli(env, "policy", "set", "--keep-last", "2", code=20)
    assert "policy set needs the second factor" in refused.stderr
    _cli(env, "policy", "set", "--keep-last", "2", "--otp", "000000", code=20)
    now_code = totp.now()
    _cli(env, "policy", "set", "--keep-last", "2", "--min-grace", "1h", "--otp", now_code)
    replay = _cli(env, "mfa", "check", "--otp", now_code, code=20)
    assert "already used" in replay.stderr
    assert "default: last 2" in _cli(env, "policy", "show").stdout

    beyond = _cli(env, "forget", "--keep-last", "1", code=20)
    assert "forget beyond the stored policy (2 snapshot(s) it keeps)" in beyond.stderr
    # the stored policy (per source and schedule: 2 of the 3 fulls) forgets the oldest full
    _cli(env, "forget", "--keep-last", "3")  # so does this: no code
    _cli(env, "prune", "--grace", "0", code=20)
    _cli(env, "prune", "--grace", "2h")
    _cli(env, "forget", "--keep-last", "1", "--dry-run")  # a dry run destroys nothing

    (tmp_path / "pw2").write_text("second password")
    added = json.loads(_cli(env, "key", "add", "--new-password-file", str(tmp_path / "pw2"),
                            "--json").stdout)
    _cli(env, "key", "remove", added["id"], code=20)
    _cli(env, "key", "remove", added["id"], "--otp", totp.at(time.time() + 30))

    # break-glass: the escrow holder's key opens the repository and passes the factor
    _cli(env, "key", "escrow-keygen", "--out", str(tmp_path / "esc"))
    _cli(env, "key", "add", "--escrow-public-key", str(tmp_path / "esc" / "escrow-public.pem"))
    no_password = {k: v for k, v in env.items() if k != "STRONGROOM_PASSWORD"}
    escrow = {"STRONGROOM_ESCROW_KEY": str(tmp_path / "esc" / "escrow-private.pem")}
    _cli(env, "mfa", "disable", code=20)
    _cli(no_password, "mfa", "disable", extra=escrow)
    assert "not enabled" in _cli(env, "mfa", "status").stdout
    _cli(env, "prune", "--grace", "0")  # no factor any more

    rows = json.loads(_cli(env, "audit", "--json").stdout)
    refusals = [r for r in rows if r["op"] == "mfa refused"]
    assert len(refusals) == 7 and {r["outcome"] for r in refusals} == {"refused"}
    assert {r["args"]["action"] for r in refusals} >= {"policy set", "mfa check", "key remove",
                                                       "mfa disable"}
    passed = [r for r in rows if r["args"].get("second_factor")]
    assert [(r["op"], r["args"]["second_factor"]) for r in passed] == [
        ("policy set", "totp"), ("key remove", "totp"), ("mfa disable", "escrow key")]
    everything = json.dumps(rows)
    assert secret not in everything and now_code not in everything
    assert _cli(env, "audit", "--verify").returncode == 0


def test_retention_flow_applies_stored_policy_without_code(prefect_harness, names: str,
                                                          tmp_path: Path) -> None:
    from blocks.keys import RepositoryKey
    from blocks.targets import RepositoryTarget
    from flows.storage import retention
    from tests.tiers.helpers import open_repo

    url = str(tmp_path / "p")
    repo = new_repo(url)
    snaps = [backup(repo, random_files(i, count=1, size=1000), source="db",
                    tags=("snapshot",), kind="snapshot") for i in range(4)]
    mfa.enable(repo)
    save_policy(repo, updated_policy(None, RetentionPolicy(keep_last=2), min_grace="2h"))
    RepositoryTarget(url=url, role="primary",
                     key=RepositoryKey(password=PASSWORD)).save(f"t-stored-{names}")
    [result] = retention([f"t-stored-{names}"], grace_s=0)
    assert result["policy"] == "stored" and result["removed"] == 2
    after = open_repo(url)
    assert [s.id for s in after.list_snapshots()] == [s.id for s in snaps[2:]]
    records = [r.doc for r in audit_log.read_records(after.backend)]
    forget_rec = next(r for r in records if r["op"] == "forget")
    prune_rec = next(r for r in records if r["op"] == "prune")
    assert forget_rec["context"].get("flow_run") and forget_rec["context"]["flow"] == "retention"
    assert sorted(forget_rec["snapshots"]) == sorted(s.id for s in snaps[:2])
    assert prune_rec["args"]["grace"] == "2:00:00"  # the stored minimum, not the flow's 0
