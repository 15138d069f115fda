"""Restoring over a partial or dirty target with --replace: the snapshot is staged beside it and
swapped in, the old contents kept beside it; nothing outside it is ever followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.trees import describe, make_tree


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


def test_replace_swaps_a_dirty_target_and_keeps_it_without_following_symlinks(cli, tmp_path: Path
                                                                    ) -> None:
    src = make_tree(tmp_path / "src", files=12)
    cli("init")
    cli("backup", "files", str(src))
    dest = tmp_path / "dest"
    base = dest / str(src).lstrip("/")
    (base / "a").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (base / "a" / "b").symlink_to(outside)          # a symlink where a directory belongs
    (base / "big.bin").write_bytes(b"stale partial data")
    (base / "link-rel").write_bytes(b"a file where a symlink belongs")
    (base / "extra.txt").write_bytes(b"not in the snapshot")

    refused = cli("restore", "latest", "--target", str(dest), check=False)
    assert refused.returncode != 0 and "not empty" in refused.stderr

    cli("restore", "latest", "--target", str(dest), "--replace")
    assert list(outside.iterdir()) == []
    assert describe(base) == describe(src)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("dest.before-restore-")]
    assert len(kept) == 1   # the dirty target, whole: nothing of it deleted
    old = kept[0] / str(src).lstrip("/")
    assert (old / "extra.txt").read_bytes() == b"not in the snapshot"
    assert (old / "a" / "b").is_symlink() and (old / "big.bin").read_bytes() == \
        b"stale partial data"
