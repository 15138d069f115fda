"""``strongroom backup redis`` and ``strongroom restore`` end to end, and their one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from strongroom.sources.redis.inventory import db_facts, keyspace_dbs
from strongroom.sources.redis.proc import RedisProcess, free_port
from tests.support.redis_server import PASSWORD, redis_server


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["strongroom", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def facts(proc: RedisProcess) -> dict:
    return {db: db_facts(proc.client(db)).as_meta() for db in keyspace_dbs(proc.client())}


def test_cli_backup_and_restore(source: RedisProcess, tmp_path: Path) -> None:
    env = dict(os.environ, STRONGROOM_REPOSITORY=str(tmp_path / "repo"),
               STRONGROOM_PASSWORD="pw", REDIS_PW=PASSWORD)
    assert run(env, "init").returncode == 0
    url = f"redis://127.0.0.1:{source.port}"
    out = run(env, "backup", "redis", "--url", url, "--password-env", "REDIS_PW",
              "--name", "cache", "--json")
    assert out.returncode == 0, out.stderr
    snap = json.loads(out.stdout)
    assert snap["source_kind"] == "redis" and snap["meta"]["keys"] > 300
    assert PASSWORD not in out.stdout + out.stderr
    human = run(env, "backup", "redis", "--url", url, "--password-env", "REDIS_PW",
                "--name", "cache")
    assert "keys (db0 " in human.stdout and "checksum ok" in human.stdout

    with redis_server(tmp_path / "target") as target:
        t_url = f"redis://127.0.0.1:{target.port}"
        out = run(env, "restore", snap["id"][:12], "--target", t_url, "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["verified"] is True
        assert facts(target) == facts(source)
        again = run(env, "restore", "latest", "--name", "cache", "--target", t_url)
        assert again.returncode == 15 and again.stderr.startswith("error: restore target")
        assert len(again.stderr.strip().splitlines()) == 1
    out = run(env, "restore", "latest", "--target", str(tmp_path / "datadir"),
              "--restore-option", "appendonly=yes", "--json")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "datadir" / "appendonlydir").is_dir()


def test_cli_errors_are_one_line(source: RedisProcess, tmp_path: Path) -> None:
    env = dict(os.environ, STRONGROOM_REPOSITORY=str(tmp_path / "repo"),
               STRONGROOM_PASSWORD="pw", BAD_PW="wrong-one")
    run(env, "init")
    cases = [
        (["--url", f"redis://127.0.0.1:{free_port()}"], 14, "cannot reach redis"),
        (["--url", f"redis://127.0.0.1:{source.port}", "--password-env", "BAD_PW"], 14,
         "authentication failed"),
        (["--url", "http://127.0.0.1:1"], 2, "not a redis URL"),
    ]
    for args, code, text in cases:
        out = run(env, "backup", "redis", *args, "--name", "x")
        assert out.returncode == code, out.stderr
        assert out.stderr.startswith("error: ") and text in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "wrong-one" not in out.stderr


def test_cli_restore_errors_and_no_secret_on_the_command_line(tmp_path: Path) -> None:
    """Restore-side bad input through the CLI: one `error:` line, its exit code, the target
    untouched; a password on the command line (ps, history, the report) is refused."""
    env = dict(os.environ, STRONGROOM_REPOSITORY=str(tmp_path / "repo"),
               STRONGROOM_PASSWORD="pw", SRC_PW="src-secret", T_PW="target-secret",
               BAD_PW="wrong-one")
    run(env, "init")
    with redis_server(tmp_path / "src", password="src-secret") as src, \
            redis_server(tmp_path / "t", password="target-secret") as target:
        src.client(0).set("k", "v")
        src.client(2).rpush("l", "a", "b")
        url, t_url = f"redis://127.0.0.1:{src.port}", f"redis://127.0.0.1:{target.port}"
        ok = run(env, "backup", "redis", "--url", url, "--password-env", "SRC_PW", "--name", "c")
        assert ok.returncode == 0, ok.stderr
        target.client(0).set("keep-me", "1")
        restore = ["restore", "latest", "--name", "c", "--target"]
        cases = [
            ([f"redis://127.0.0.1:{free_port()}", "--restore-option", "password_env=T_PW"],
             14, "cannot reach restore target"),
            ([t_url, "--restore-option", "password_env=BAD_PW"], 14, "authentication failed"),
            ([t_url], 14, "authentication failed"),
            ([t_url, "--restore-option", "password_env=T_PW"], 15, "already holds keys in db 0"),
            ([f"redis://:target-secret@127.0.0.1:{target.port}", "--replace"], 2,
             "--target holds a password"),
            ([t_url, "--replace", "--restore-option", "password=target-secret"], 2,
             "option password would put a secret on the command line"),
            ([t_url, "--replace", "--restore-option", "password_env=T_PW", "--restore-option",
              "flsh=yes"], 2, "unknown redis restore option(s) flsh"),  # typo: never ignored
        ]
        for args, code, text in cases:
            out = run(env, *restore, *args)
            assert out.returncode == code, (args, out.stderr)
            assert out.stderr.startswith("error: ") and text in out.stderr, out.stderr
            assert len(out.stderr.strip().splitlines()) == 1
            assert "target-secret" not in out.stdout + out.stderr
            assert "wrong-one" not in out.stdout + out.stderr
        refused = run(env, "backup", "redis", "--url", f"redis://:src-secret@127.0.0.1:{src.port}",
                      "--name", "c")
        assert refused.returncode == 2 and "--url holds a password" in refused.stderr
        assert "src-secret" not in refused.stdout + refused.stderr

        for pack in (tmp_path / "repo" / "data").rglob("*"):  # now damage the snapshot
            if pack.is_file():
                data = bytearray(pack.read_bytes())
                data[len(data) // 2] ^= 1
                pack.write_bytes(bytes(data))
        out = run(env, *restore, t_url, "--replace", "--restore-option", "flush=yes",
                  "--restore-option", "password_env=T_PW")
        assert out.returncode == 13 and out.stderr.startswith("error: ")
        assert "damaged" in out.stderr and len(out.stderr.strip().splitlines()) == 1
        out = run(env, *restore, str(tmp_path / "datadir"))
        assert out.returncode == 13 and "damaged" in out.stderr
        assert not (tmp_path / "datadir").exists()  # not even the directory it would create
        assert target.client(0).get("keep-me") == b"1"  # flush=yes never ran: nothing touched
        assert keyspace_dbs(target.client()) == [0]
