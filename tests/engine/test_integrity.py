"""One flipped byte in any pack, index or snapshot file is detected, named, never restored."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.support.trees import make_tree


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    """Local only: we flip bytes in the files themselves (S3 objects hold the same bytes)."""
    return dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


@pytest.fixture
def local_repo(cli, repo_env, tmp_path: Path) -> tuple[Path, Path]:
    src = make_tree(tmp_path / "src", files=20, big=2_000_000)
    cli("init")
    cli("backup", "files", str(src))
    return Path(repo_env["STRONGROOM_REPOSITORY"]), src


def _flip(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x01
    path.write_bytes(bytes(data))


def _restored_files_are_correct(dest: Path, src: Path) -> None:
    """Whatever a failed restore left behind must be correct data, never damaged bytes."""
    base = dest / str(src).lstrip("/")
    for p in base.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert ".strongroom-partial" not in p.name
            want = src / p.relative_to(base)
            assert hashlib.sha256(p.read_bytes()).digest() == \
                hashlib.sha256(want.read_bytes()).digest()


@pytest.mark.parametrize("folder", ["data", "index", "snapshots"])
@pytest.mark.parametrize("at", [0.02, 0.5, 0.98])
def test_flipped_byte_is_detected_and_named(cli, local_repo, tmp_path: Path, folder: str,
                                            at: float) -> None:
    repo, src = local_repo
    victims = sorted(p for p in (repo / folder).rglob("*") if p.is_file())
    victim = max(victims, key=lambda p: p.stat().st_size)
    _flip(victim, at)

    check = cli("verify", "--read-data", check=False)
    assert check.returncode != 0
    assert victim.name[:16] in check.stderr, check.stderr
    assert "Traceback" not in check.stderr

    dest = tmp_path / "dest"
    ref = "latest"
    if folder == "snapshots":
        ref = victim.name  # the damaged snapshot, by id
    out = cli("restore", ref, "--target", str(dest), check=False)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
    if folder != "data":
        assert victim.name[:16] in out.stderr, out.stderr
    else:
        assert victim.name[:16] in out.stderr or "damaged" in out.stderr
    if dest.exists():
        _restored_files_are_correct(dest, src)


def test_truncated_pack_is_detected(cli, local_repo) -> None:
    repo, _src = local_repo
    pack = max((p for p in (repo / "data").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
    pack.write_bytes(pack.read_bytes()[: pack.stat().st_size // 2])
    out = cli("verify", check=False)  # the structure check alone sees the size
    assert out.returncode != 0 and pack.name in out.stderr


def test_missing_pack_names_the_snapshots(cli, local_repo) -> None:
    repo, _src = local_repo
    pack = next(p for p in (repo / "data").rglob("*") if p.is_file())
    pack.unlink()
    out = cli("verify", check=False)
    assert out.returncode != 0 and pack.name in out.stderr
