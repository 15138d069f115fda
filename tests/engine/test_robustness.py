"""Concurrent writers, kill -9 mid-backup, and clear one-line errors for bad input."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.trees import describe, make_tree


def _random_tree(root: Path, files: int, size: int, seed: int) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    for i in range(files):
        (root / f"f{i:04}").write_bytes(rng.randbytes(size))
    return root


def test_two_backups_at_once_both_succeed(cli, repo_env, tmp_path: Path) -> None:
    one = _random_tree(tmp_path / "one", 40, 200_000, 1)
    two = _random_tree(tmp_path / "two", 40, 200_000, 2)
    cli("init", "--pack-size", "1")
    procs = [subprocess.Popen(["strongroom", "backup", "files", str(p), "--json"],
                              env=repo_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for p in (one, two)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    cli("verify", "--read-data")
    for src, (out, _err) in zip((one, two), results, strict=True):
        snap = json.loads(out)
        dest = tmp_path / f"dest-{src.name}"
        cli("restore", snap["id"], "--target", str(dest))
        assert describe(dest / str(src).lstrip("/")) == describe(src)


def test_kill_9_during_backup_leaves_earlier_snapshots_intact(cli, repo_env,
                                                              tmp_path: Path) -> None:
    if repo_env["STRONGROOM_REPOSITORY"].startswith("s3://"):
        data_dir = None
    else:
        data_dir = Path(repo_env["STRONGROOM_REPOSITORY"]) / "data"
    first = make_tree(tmp_path / "first", files=10)
    cli("init", "--pack-size", "1")
    cli("backup", "files", str(first), "--kind", "full")
    big = _random_tree(tmp_path / "big", 120, 1_000_000, 3)
    proc = subprocess.Popen(["strongroom", "backup", "files", str(big)], env=repo_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    packs_before = len(list(data_dir.rglob("*"))) if data_dir else 0
    while time.monotonic() < deadline:
        if data_dir is None:
            time.sleep(1.0)
            break
        if len(list(data_dir.rglob("*"))) >= packs_before + 6:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    snaps = json.loads(cli("snapshots", "--json").stdout)
    assert len(snaps) == 1  # the killed backup left no snapshot, and the first is intact
    check = cli("verify", "--read-data", "--json")
    report = json.loads(check.stdout)
    assert report["ok"] and report["errors"] == []
    dest = tmp_path / "dest"
    cli("restore", "latest", "--target", str(dest))
    assert describe(dest / str(first).lstrip("/")) == describe(first)
    # the next backup works and reuses what the killed one already stored
    again = json.loads(cli("backup", "files", str(big), "--json").stdout)
    assert again["stats"]["files"] == 120
    cli("verify")


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode not in (0, None)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]


def test_clear_errors(cli, repo_env, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", files=4)
    _one_line_error(cli("snapshots", check=False), "no repository")
    cli("init")
    _one_line_error(cli("init", check=False), "already exists")
    _one_line_error(cli("snapshots", check=False, env={"STRONGROOM_PASSWORD": "wrong"}),
                    "wrong password")
    cli("backup", "files", str(src))
    _one_line_error(cli("restore", "deadbeef", "--target", str(tmp_path / "x"), check=False),
                    "no snapshot 'deadbeef'")
    _one_line_error(cli("backup", "files", str(tmp_path / "missing"), check=False),
                    "no such file")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    _one_line_error(cli("restore", "latest", "--target", str(busy), check=False),
                    "not empty")
    assert (busy / "keep.txt").read_text() == "mine"
    _one_line_error(cli("backup", "files", str(src), "--kind", "weekly", check=False),
                    "unknown snapshot kind")


def test_unreadable_source_file_is_named(cli, repo_env, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", files=4)
    locked = src / "a" / "locked.bin"
    locked.write_bytes(b"x" * 100)
    locked.chmod(0)
    cli("init")
    cmd = ["strongroom", "backup", "files", str(src)]
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that let it
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    proc = subprocess.run(cmd, env=repo_env, capture_output=True, text=True, timeout=120)
    _one_line_error(proc, "could not be read")
    assert "locked.bin" in proc.stderr and "Permission denied" in proc.stderr
    assert proc.returncode == 3  # the snapshot exists, but incomplete: say so in the exit code


def test_key_slots(cli, tmp_path: Path) -> None:
    cli("init")
    pw2 = tmp_path / "pw2"
    pw2.write_text("second password\n")
    keyfile = tmp_path / "k.key"
    cli("key", "add", "--new-password-file", str(pw2), "--label", "ops")
    cli("key", "add", "--new-key-file", str(keyfile))
    slots = json.loads(cli("key", "list", "--json").stdout)
    assert sorted(s["type"] for s in slots) == ["keyfile", "password", "password"]
    # the key file alone opens the repository
    assert cli("snapshots", env={"STRONGROOM_PASSWORD": "", "STRONGROOM_KEYFILE": str(keyfile)}
               ).returncode == 0
    # change the second password; the old one stops working, data untouched
    pw3 = tmp_path / "pw3"
    pw3.write_text("third")
    cli("key", "passwd", "--new-password-file", str(pw3), env={"STRONGROOM_PASSWORD":
                                                               "second password"})
    assert cli("snapshots", check=False, env={"STRONGROOM_PASSWORD": "second password"}
               ).returncode != 0
    assert cli("snapshots", env={"STRONGROOM_PASSWORD": "third"}).returncode == 0
    current = next(s for s in slots if s["current"])
    _one_line_error(cli("key", "remove", current["id"], check=False), "in use")
    ops = next(s for s in json.loads(cli("key", "list", "--json").stdout)
               if s["type"] == "keyfile")
    cli("key", "remove", ops["id"])
    assert len(json.loads(cli("key", "list", "--json").stdout)) == 2


def test_socket_is_noted_and_repository_inside_source_is_skipped(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.txt").write_text("keep me")
    os.mkfifo(src / "fifo")  # kept as a node; a socket is noted, not kept
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(src / "pipe"))
    listener.close()
    env = dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(src / "repo"))
    run = lambda *a: subprocess.run(["strongroom", *a], env=env, capture_output=True,  # noqa: E731
                                    text=True, timeout=120)
    assert run("init").returncode == 0
    for _ in range(2):
        out = run("backup", "files", str(src), "--json")
        assert out.returncode == 0, out.stderr
    snap = json.loads(out.stdout)
    assert snap["meta"]["skipped_special"] == [str(src / "pipe")]
    paths = {e["path"] for e in json.loads(run("ls", "latest", "--json").stdout)}
    assert {str(src / n).lstrip("/") for n in ("data.txt", "fifo")} <= paths
    assert not any("/repo" in p for p in paths)


def test_password_in_a_restore_target_is_refused(cli, repo_env, tmp_path: Path) -> None:
    cli("init")
    for target in ("host=127.0.0.1 password=hunter2 dbname=x", "redis://:hunter2@127.0.0.1:1"):
        proc = cli("restore", "latest", "--target", target, check=False)
        assert proc.returncode == 2
        assert "hunter2" not in proc.stderr + proc.stdout
        _one_line_error(proc, "holds a password")
