"""Names and paths a real file system holds must back up and restore exactly: names that are
not UTF-8, names with newlines, 250-byte names, deep trees, and paths given with '..'."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.trees import describe


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


def _roundtrip(cli, src: Path, dest: Path, *backup_args: str) -> dict:
    out = json.loads(cli("backup", "files", *backup_args, "--kind", "full", "--json").stdout)
    cli("restore", out["id"], "--target", str(dest))
    assert describe(dest / str(src).lstrip("/")) == describe(src)
    return out


def test_non_utf8_and_newline_names_round_trip(cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    raw = os.fsencode(src)
    with open(raw + b"/caf\xe9-latin1", "wb") as fh:
        fh.write(b"latin-1 name\n")
    os.mkdir(raw + b"/dir\xff\xfe")
    with open(raw + b"/dir\xff\xfe/inner", "wb") as fh:
        fh.write(b"inside a non-UTF-8 directory\n")
    with open(raw + b"/new\nline", "wb") as fh:
        fh.write(b"newline in the name\n")
    os.symlink(b"/target/\xff", raw + b"/link\xfe")
    cli("init")
    _roundtrip(cli, src, tmp_path / "dest", str(src))
    # the incremental path (parent lookups by name) copes as well
    cli("backup", "files", str(src))
    assert cli("verify", "--read-data").returncode == 0


def test_longest_names_restore(cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / ("n" * 255)).write_bytes(b"a name of 255 bytes\n")
    (src / ("d" * 250)).mkdir()
    (src / ("d" * 250) / ("f" * 254)).write_bytes(b"x" * 300_000)
    cli("init")
    _roundtrip(cli, src, tmp_path / "dest", str(src))


def _make_deep(root: Path, depth: int) -> str:
    rel = "/".join(["a"] * depth)
    path = str(root)
    os.mkdir(path)
    for _ in range(depth):  # os.makedirs, os.walk and shutil.rmtree recurse: do it by hand
        path += "/a"
        os.mkdir(path)
    return rel


def _remove_deep(root: Path, rel: str) -> None:
    parts = rel.split("/")
    for name in os.listdir(root / rel):
        os.unlink(root / rel / name)
    while parts:
        os.rmdir(root / "/".join(parts))
        parts.pop()


def test_deep_tree_backs_up_and_restores(cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    rel = _make_deep(src, 1500)  # about 3000 bytes of path: well inside PATH_MAX
    (src / rel / "bottom.txt").write_bytes(b"at the bottom\n")
    dest = tmp_path / "d"
    try:
        cli("init")
        snap = json.loads(cli("backup", "files", str(src), "--kind", "full", "--json").stdout)
        assert snap["stats"]["files"] == 1 and snap["stats"]["dirs"] >= 1500
        cli("restore", snap["id"], "--target", str(dest))
        restored = dest / str(src).lstrip("/")
        assert (restored / rel / "bottom.txt").read_bytes() == b"at the bottom\n"
        _remove_deep(restored, rel)
        inc = json.loads(cli("backup", "files", str(src), "--json").stdout)  # parent lookups
        assert inc["parent"] == snap["id"] and inc["stats"]["bytes_read"] == 0
        assert cli("ls", "latest").stdout.count("bottom.txt") == 1
        assert cli("verify", "--read-data").returncode == 0
    finally:
        _remove_deep(src, rel)


def test_relative_path_with_dotdot_and_trailing_slash(cli, repo_env, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_bytes(b"hello\n")
    work = tmp_path / "work" / "deeper"
    work.mkdir(parents=True)
    cli("init")
    for spelling in ("../../src", "../../src/", "./../../src/sub/.."):
        proc = subprocess.run(["strongroom", "backup", "files", spelling, "--kind", "full",
                               "--json"], env=repo_env, cwd=work, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        snap = json.loads(proc.stdout)
        assert snap["paths"] == [str(src)]
        dest = tmp_path / f"dest-{len(spelling)}"
        cli("restore", snap["id"], "--target", str(dest))
        assert describe(dest / str(src).lstrip("/")) == describe(src)
