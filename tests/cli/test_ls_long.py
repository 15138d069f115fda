"""``ls -l`` shows what ``ls -l`` shows (mode as -rw-r-----, owner, group, size, mtime, symlink
targets), ``ls`` says which snapshot ``latest`` resolved to, and ``ls --name`` picks a source."""

from __future__ import annotations

import grp
import json
import os
import pwd
from datetime import datetime
from pathlib import Path


def _tree(root: Path) -> Path:
    (root / "d").mkdir(parents=True)
    secret = root / "d" / "secret.conf"
    secret.write_bytes(b"x" * 1234)
    os.chmod(secret, 0o640)
    os.utime(secret, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    os.symlink("d/secret.conf", root / "link")
    tool = root / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    os.chmod(tool, 0o4755)
    return root


def test_ls_long(cli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    cli("init")
    snap = json.loads(cli("backup", "files", str(src), "--json").stdout)
    proc = cli("ls", "latest", str(src), "-l")
    assert proc.stderr.strip() == f"latest is snapshot {snap['short_id']} of {src} " \
        f"({datetime.fromisoformat(snap['time']):%Y-%m-%d %H:%M:%S} UTC)"
    lines = {line.split()[-1] if " -> " not in line else line.split(" -> ")[0].split()[-1]:
             line for line in proc.stdout.splitlines()}
    rel = str(src).lstrip("/")
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    secret = lines[f"{rel}/d/secret.conf"].split()
    assert secret[:4] == ["-rw-r-----", user, group, "1234"]
    assert " ".join(secret[4:6]) == "2023-11-14 22:13:20"  # 1_700_000_000 s, in UTC
    assert lines[f"{rel}/link"].startswith("lrwxrwxrwx ")
    assert lines[f"{rel}/link"].endswith(f"{rel}/link -> d/secret.conf")
    assert lines[f"{rel}/tool"].startswith("-rwsr-xr-x ")
    assert lines[f"{rel}/d"].startswith("drwx")

    rows = {r["path"]: r for r in json.loads(cli("ls", "latest", str(src), "-l", "--json"
                                                 ).stdout)}
    row = rows[f"{rel}/d/secret.conf"]
    assert (row["permissions"], row["user"], row["group"], row["size"]) == (
        "-rw-r-----", user, group, 1234)
    assert row["mtime_ns"] == 1_700_000_000_123_456_789 and row["mode"] == "0o640"
    assert rows[f"{rel}/link"]["target"] == "d/secret.conf"
    short = json.loads(cli("ls", snap["id"], f"{src}/d/secret.conf", "--json").stdout)
    assert short == [{"path": f"{rel}/d/secret.conf", "type": "file", "size": 1234,
                      "mode": "0o640"}]  # the --json of plain ls is unchanged
    assert cli("ls", snap["id"], f"{src}/d").stderr == ""  # an id needs no resolving note


def test_ls_name_picks_the_latest_of_a_source(cli, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        d.mkdir()
        (d / f"{d.name}.txt").write_text(d.name)
    cli("init")
    first = json.loads(cli("backup", "files", str(one), "--name", "one", "--json").stdout)
    cli("backup", "files", str(two), "--name", "two")
    proc = cli("ls", "latest", "--name", "one")
    assert "one.txt" in proc.stdout and "two.txt" not in proc.stdout
    assert f"latest is snapshot {first['short_id']} of one " in proc.stderr
    assert "two.txt" in cli("ls", "latest").stdout
    proc = cli("ls", "latest", "--name", "three", check=False)
    assert proc.returncode == 12 and proc.stderr.startswith("error: no snapshots of source")
