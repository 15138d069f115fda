"""Copy after a target pack is lost, or while one vanishes: the data is uploaded again (never
deduplicated against the missing pack), or the copy fails with nothing saved."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from strongroom.errors import LockedError
from strongroom.repository import Repository
from strongroom.repository.copy import copy_snapshots, find_copy
from strongroom.repository.format import pack_key
from strongroom.repository.presence import PacksVanished
from tests.support.trees import describe
from tests.tiers.helpers import backup, new_repo, open_repo, random_files, read_all, run

PW = "primary pw"
PW2 = "secondary pw"
FILE_SIZE = 250_000  # one blob per file (below the minimum chunk), four to a 1 MiB pack


def _target(kind: str, tmp_path: Path, request: pytest.FixtureRequest
            ) -> tuple[str, dict[str, Any], dict[str, str]]:
    """A target URL, its backend options and the environment the CLI needs for it."""
    if kind == "local":
        return str(tmp_path / "target"), {}, {}
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return (f"s3://{bucket}/target", {"endpoint": endpoint},
            {"AWS_ENDPOINT_URL": endpoint})


def _packs_of(repo: Repository, snap_id: str, root: Path) -> dict[str, str]:
    """Relative file path -> the target pack holding its (single) blob."""
    reader = repo.reader(repo.find_snapshot(snap_id))
    prefix = str(root).strip("/") + "/"
    out = {}
    for path, node in reader.walk():
        if node.type == "file" and path.strip("/").startswith(prefix):
            (blob,) = node.content
            loc = repo.index.get(bytes.fromhex(blob))
            assert loc is not None
            out[path.strip("/")[len(prefix):]] = loc.pack
    return out


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_copy_after_a_lost_target_pack_restores(tmp_path: Path, request: pytest.FixtureRequest,
                                                kind: str) -> None:
    url, opts, extra_env = _target(kind, tmp_path, request)
    env = dict(os.environ, STRONGROOM_PASSWORD=PW, STRONGROOM_TO_PASSWORD=PW2,
               STRONGROOM_REPOSITORY=str(tmp_path / "primary"), **extra_env)
    target_env = dict(env, STRONGROOM_REPOSITORY=url, STRONGROOM_PASSWORD=PW2)
    src = tmp_path / "src"
    rng = random.Random(5)
    for name in ("a/0", "a/1", "a/2", "b/0", "b/1", "b/2"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / f"{name}.bin").write_bytes(rng.randbytes(FILE_SIZE))
    run(env, "init")
    run(target_env, "init", "--pack-size", "1")
    first = json.loads(run(env, "backup", "files", str(src), "--json").stdout)
    copied = json.loads(run(env, "copy", "latest", "--to", url, "--json").stdout)
    old_copy = copied["snapshots"][first["id"]]

    # Lose the target pack holding a/0.bin; it also holds files of a/ and of b/.
    dst = Repository.open(url, password=PW2, options=opts)
    packs = _packs_of(dst, old_copy, src)
    lost = packs["a/0.bin"]
    in_lost = sorted(p for p, pid in packs.items() if pid == lost)
    assert "a/1.bin" in in_lost and "b/0.bin" in in_lost, packs  # a changed dir, a same one
    dst.backend.delete(pack_key(lost))

    # a/0.bin changes: its old content lives only in the lost pack (the old copy stays
    # damaged); the rest of that pack is needed again, in a changed directory (a/, through
    # the copy map) and an unchanged one (b/, a whole subtree the map names).
    (src / "a" / "0.bin").write_bytes(rng.randbytes(FILE_SIZE))
    second = json.loads(run(env, "backup", "files", str(src), "--json").stdout)
    again = json.loads(run(env, "copy", "latest", "--to", url, "--json").stdout)
    assert again["copied"] == [second["id"]]
    new_copy = again["snapshots"][second["id"]]

    dest = tmp_path / "dest"
    run(target_env, "restore", new_copy, "--target", str(dest))
    assert describe(dest / str(src).lstrip("/")) == describe(src)
    checked = run(target_env, "verify", "--read-data", "--json", check=False)
    report = json.loads(checked.stdout)
    assert report["errors"], report  # the lost pack, and the old copy's a/0.bin
    assert any(old_copy[:8] in e for e in report["errors"]), report
    assert all(new_copy[:8] not in e for e in report["errors"]), report


def _copy_with_hook(kind: str, tmp_path: Path, request: pytest.FixtureRequest,
                    hook: Any) -> tuple[Repository, str, dict[str, Any], dict[str, bytes]]:
    """Copy one snapshot, back up a changed one, and copy again calling ``hook(dst)`` when
    the second copy stores its first index file (its data is uploaded, nothing committed).
    Returns the target as the second copy left it, the exception it raised, the target's URL
    and options, and what the second snapshot holds."""
    url, opts, _env = _target(kind, tmp_path, request)
    src_url = str(tmp_path / "src")
    src = new_repo(src_url)
    first = random_files(11, count=6)
    backup(src, first)
    copy_snapshots(src, new_repo(url, password=PW2, options=opts))
    second = {**first, "dir0/f00.bin": random_files(12)["dir0/f00.bin"]}
    backup(open_repo(src_url), second)

    dst = open_repo(url, PW2, opts)
    real_put, fired = dst.backend.put, []

    def put(key: str, data: bytes | memoryview) -> None:
        if key.startswith("index/") and not fired:
            fired.append(key)
            hook(dst)
        real_put(key, data)

    dst.backend.put = put  # type: ignore[method-assign]
    with pytest.raises(Exception) as err:
        copy_snapshots(open_repo(src_url), dst)
    assert fired
    return open_repo(url, PW2, opts), err.value, {"url": url, "opts": opts}, second


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_target_pack_vanishing_during_copy_saves_nothing(
        tmp_path: Path, request: pytest.FixtureRequest, kind: str) -> None:
    def lose_a_reused_pack(dst: Repository) -> None:
        (old,) = dst.list_snapshots()
        reused = dst.reader(old).node("dir1/f01.bin").content[0]  # unchanged in the second
        dst.backend.delete(pack_key(dst.index.get(bytes.fromhex(reused)).pack))

    dst, exc, where, second = _copy_with_hook(kind, tmp_path, request, lose_a_reused_pack)
    assert isinstance(exc, PacksVanished) and exc.exit_code == 13, exc
    assert "nothing was saved" in str(exc)
    assert len(dst.list_snapshots()) == 1  # only the first copy
    # Run again: the lost data is uploaded anew and the copy restores.
    result = copy_snapshots(open_repo(str(tmp_path / "src")), dst)
    assert len(result["copied"]) == 1
    fresh = open_repo(where["url"], PW2, where["opts"])
    assert read_all(fresh, find_copy(fresh, result["copied"][0])) == second


def test_target_lock_lost_during_copy_saves_nothing(tmp_path: Path,
                                                     request: pytest.FixtureRequest) -> None:
    from strongroom.repository import locks

    def lose_the_lock(dst: Repository) -> None:
        (held,) = [lk for lk in locks._HELD if lk.info.get("purpose") == "copy (target)"]
        dst.backend.delete(held.key)  # as a prune that judged its holder dead would
        with held._beat:
            assert not held._renew()  # the next renewal finds it gone

    dst, exc, _where, _second = _copy_with_hook("local", tmp_path, request, lose_the_lock)
    assert isinstance(exc, LockedError), exc
    assert len(dst.list_snapshots()) == 1
