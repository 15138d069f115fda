"""Backup then restore gives identical trees with identical metadata, on both backends."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.support.trees import describe, make_tree


def test_full_backup_restores_identical_tree(cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    cli("init")
    out = json.loads(cli("backup", "files", str(src), "--kind", "full", "--tag", "t1",
                         "--json").stdout)
    assert out["kind"] == "full" and out["parent"] is None and out["tags"] == ["t1"]
    assert out["stats"]["files"] == len([1 for e in describe(src).values()
                                         if e["type"] != "dir"])
    dest = tmp_path / "dest"
    cli("restore", out["id"][:10], "--target", str(dest))
    assert describe(dest / str(src).lstrip("/")) == describe(src)
    assert cli("verify", "--read-data").returncode == 0


def test_include_restores_only_that_path(cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", files=8)
    cli("init")
    cli("backup", "files", str(src))
    dest = tmp_path / "dest"
    cli("restore", "latest", "--target", str(dest), "--include", f"{src}/a/b")
    restored = dest / str(src).lstrip("/")
    assert (restored / "a" / "b" / "c").is_dir()
    assert not (restored / "big.bin").exists()
    assert describe(restored / "a" / "b") == describe(src / "a" / "b")


def test_incremental_and_differential_reuse_unchanged_files(cli, tmp_path: Path) -> None:
    rng = random.Random(7)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(100):
        (src / f"f{i:03}").write_bytes(rng.randbytes(64 * 1024))
    cli("init")
    full = json.loads(cli("backup", "files", str(src), "--kind", "full", "--json").stdout)
    again = json.loads(cli("backup", "files", str(src), "--json").stdout)
    assert again["kind"] == "incremental" and again["parent"] == full["id"]
    assert again["stats"]["bytes_read"] == 0
    # only trees of ancestor dirs whose mtime moved (/tmp is busy) may be new
    assert again["stats"]["bytes_stored"] < 4096

    changed = 5
    for i in range(changed):
        (src / f"f{i:03}").write_bytes(rng.randbytes(64 * 1024))
    inc = json.loads(cli("backup", "files", str(src), "--json").stdout)
    stored = inc["stats"]["bytes_stored"]
    assert inc["stats"]["bytes_read"] == changed * 64 * 1024
    assert changed * 64 * 1024 <= stored <= changed * 64 * 1024 * 1.1 + 8192

    diff = json.loads(cli("backup", "files", str(src), "--kind", "differential",
                          "--json").stdout)
    assert diff["parent"] == full["id"]  # differential compares with the latest full
    assert diff["stats"]["bytes_read"] == changed * 64 * 1024
    assert diff["stats"]["bytes_new"] < 4096  # the incremental already stored those chunks

    for snap in (full, inc, diff):  # every snapshot restores on its own
        dest = tmp_path / f"r-{snap['id'][:8]}"
        cli("restore", snap["id"], "--target", str(dest))
        assert json.loads(cli("ls", snap["id"], "--json").stdout)
    assert describe(tmp_path / f"r-{diff['id'][:8]}" / str(src).lstrip("/")) == describe(src)


def test_exclude_patterns(cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", files=8)
    cli("init")
    cli("backup", "files", str(src), "--exclude", "*.log", "--exclude", f"{src}/a/b")
    paths = {e["path"] for e in json.loads(cli("ls", "latest", "--json").stdout)}
    assert not any(p.endswith("text.log") for p in paths)
    excluded = f"{src}/a/b".lstrip("/")
    assert not any(p == excluded or p.startswith(excluded + "/") for p in paths)
    assert f"{src}/a/tool.sh".lstrip("/") in paths
    assert any(p.endswith("big.bin") for p in paths)
