"""The tier commands end to end through the CLI, with the files source and moto S3."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

import pytest

from tests.support.trees import describe, make_tree
from tests.tiers.helpers import run

PW = "primary pw"
PW2 = "secondary pw"


@pytest.fixture
def env(tmp_path: Path, moto_endpoint: str) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD=PW, STRONGROOM_TO_PASSWORD=PW2,
                STRONGROOM_REPOSITORY=str(tmp_path / "primary"), AWS_ENDPOINT_URL=moto_endpoint)


def test_copy_restore_from_secondary_after_losing_primary(tmp_path: Path, env, s3_bucket):
    src = make_tree(tmp_path / "src", files=20, big=600_000)
    run(env, "init")
    first = json.loads(run(env, "backup", "files", str(src), "--kind", "full", "--json").stdout)
    (src / "a" / "late.txt").write_bytes(b"written after the first backup\n")
    second = json.loads(run(env, "backup", "files", str(src), "--json").stdout)
    secondary = f"s3://{s3_bucket}/secondary"
    out = json.loads(run(env, "copy", "--to", secondary, "--init", "--json").stdout)
    assert sorted(out["copied"]) == sorted([first["id"], second["id"]])
    again = run(env, "copy", "--to", secondary)
    assert "copied 0 snapshot(s), 2 already there" in again.stdout

    shutil.rmtree(tmp_path / "primary")
    sec_env = dict(env, STRONGROOM_REPOSITORY=secondary, STRONGROOM_PASSWORD=PW2)
    dest = tmp_path / "dest"
    run(sec_env, "restore", "latest", "--target", str(dest))
    assert describe(dest / str(src).lstrip("/")) == describe(src)
    assert run(sec_env, "verify", "--read-data").returncode == 0
    wrong = run(dict(sec_env, STRONGROOM_PASSWORD=PW), "snapshots", check=False)
    assert wrong.returncode == 11 and wrong.stderr.startswith("error: wrong password")


def test_forget_dry_run_prune_and_errors(tmp_path: Path, env) -> None:
    src = tmp_path / "src"
    src.mkdir()
    run(env, "init")
    for i in range(3):
        (src / f"f{i}.bin").write_bytes(os.urandom(300_000))
        run(env, "backup", "files", str(src), "--name", "app", "--kind", "full")
    dry = run(env, "forget", "--keep-last", "1", "--dry-run")
    assert dry.stdout.count("would forget") == 1 and dry.stdout.count("forget ") >= 2
    assert "keep   " in dry.stdout and "last" in dry.stdout and "no rule keeps it" in dry.stdout
    assert len(json.loads(run(env, "snapshots", "--json").stdout)) == 3
    plan = json.loads(run(env, "forget", "--keep-last", "1", "--json").stdout)
    assert plan["forget"] == 2 and len(plan["removed"]) == 2
    pruned = json.loads(run(env, "prune", "--grace", "0", "--json").stdout)
    assert pruned["swept"] and pruned["bytes_freed"] > 0 and pruned["deleted_packs"] > 0
    assert "marked 0 pack(s)" in run(env, "prune").stdout  # nothing to do: no mark
    (src / "f0.bin").write_bytes(os.urandom(300_000))
    run(env, "backup", "files", str(src), "--name", "app", "--kind", "full")
    run(env, "forget", "--keep-last", "1")
    marked = run(env, "prune")
    assert "deletion is due after" in marked.stdout and "deleted" not in marked.stdout
    assert "marked 0m ago" in run(env, "prune").stdout  # still pending, nothing deleted
    bad = run(env, "forget", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: no policy given")
    bad = run(env, "forget", "--keep-within", "3x", check=False)
    assert bad.returncode == 2 and "bad duration" in bad.stderr and "Traceback" not in bad.stderr
    bad = run(env, "copy", "--to", str(tmp_path / "nowhere"), check=False)
    assert bad.returncode == 10 and bad.stderr.startswith("error: no repository")


def test_status_three_two_one(tmp_path: Path, env, moto_endpoint: str, s3_bucket) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.bin").write_bytes(os.urandom(200_000) * 2)
    run(env, "init")
    run(env, "backup", "files", str(src), "--name", "orders-db")
    primary = f"{tmp_path / 'primary'},tier=primary,site=dc1"
    only = run(env, "status", "-R", primary, "--json", check=False)
    assert only.returncode == 4
    doc = json.loads(only.stdout)
    assert not doc["ok"] and doc["sources"][0]["copies"] == 2
    assert "orders-db: 2 copies (needs 3)" in only.stderr
    assert "no off-site copy" in only.stderr and "1 medium (needs 2)" in only.stderr

    secondary = f"s3://{s3_bucket}/sec"
    run(env, "copy", "--to", secondary, "--init")
    pwfile = tmp_path / "pw2"
    pwfile.write_text(PW2 + "\n")
    spec2 = f"{secondary},tier=secondary,site=eu-west,password-file={pwfile}"
    ok = json.loads(run(env, "status", "-R", primary, "-R", spec2, "--json").stdout)
    assert ok["ok"] and ok["failing"] == []
    src_row = ok["sources"][0]
    assert (src_row["copies"], src_row["media"], src_row["offsite"]) == (3, 2, True)
    assert src_row["backends"] == ["local", "s3"]
    repo_row = ok["repositories"][0]
    assert repo_row["dedup_ratio"] >= 1.9  # the file is the same 200 kB twice
    assert repo_row["bytes"]["data"] > 0 and repo_row["growth_bytes"]["7d"] > 0
    assert set(ok["tiers"]) == {"primary", "secondary"}
    text = run(env, "status", "-R", primary, "-R", spec2).stdout
    assert "ok  orders-db: 3 copies, 2 media, off-site" in text
    assert PW2 not in text and PW2 not in json.dumps(ok)
    bad = run(env, "status", "-R", primary, "-R", f"{secondary},password={PW2}", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: repository option password")
    assert PW2 not in bad.stderr


def test_archive_stage_cli(tmp_path: Path, env, moto_endpoint: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.bin").write_bytes(os.urandom(100_000))
    run(env, "init")
    run(env, "backup", "files", str(src))
    archive = f"s3://arch-{secrets.token_hex(4)}/a"
    run(env, "copy", "--to", archive, "--init", "--to-option", "storage_class=GLACIER",
        "--to-option", "object_lock_mode=GOVERNANCE", "--to-option", "object_lock_days=2")
    a_env = dict(env, STRONGROOM_REPOSITORY=archive, STRONGROOM_PASSWORD=PW2)
    dest = tmp_path / "dest"
    blocked = run(a_env, "restore", "latest", "--target", str(dest), check=False)
    assert blocked.returncode != 0 and "not staged" in blocked.stderr
    assert "Traceback" not in blocked.stderr
    # restore can stage first: with no wait it requests, gives AWS's typical wait, writes nothing
    asked = run(a_env, "restore", "latest", "--target", str(tmp_path / "asked"),
                "--stage-wait", "0", "--retrieval", "Expedited", check=False)
    assert asked.returncode == 16 and not (tmp_path / "asked").exists()
    assert "staging (GLACIER, Expedited retrieval): typically 1 min to 5 min; run the " \
           "restore again" in " ".join(asked.stderr.split())
    staged_dest = tmp_path / "staged"  # with a wait it stages, waits, then restores
    run(a_env, "restore", "latest", "--target", str(staged_dest), "--stage-wait", "5")
    assert (staged_dest / str(src).lstrip("/") / "x.bin").read_bytes() == \
        (src / "x.bin").read_bytes()
    staged = run(a_env, "archive", "stage", "latest", "--retrieval", "Expedited", "--wait", "5",
                 "-o", "storage_class=GLACIER")
    assert "readable" in staged.stdout
    dest = tmp_path / "dest2"
    run(a_env, "restore", "latest", "--target", str(dest))
    assert (dest / str(src).lstrip("/") / "x.bin").read_bytes() == (src / "x.bin").read_bytes()
    for extra in (["--dry-run"], []):  # a dry run must not promise what the lock forbids
        out = run(a_env, "forget", "--keep-tag", "none-has-it", *extra)
        text = " ".join(out.stdout.split())  # the console wraps long lines
        assert "keep 1, " in text and "forget 0" in text, text
        assert " full no rule keeps it, but object lock GOVERNANCE until " in text, text
        assert "object lock GOVERNANCE" in out.stderr
    assert len(json.loads(run(a_env, "snapshots", "--json").stdout)) == 1
