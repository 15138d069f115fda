"""Safe writes of files restores: nothing is written through a symlink planted in the staging
directory (by a crafted snapshot or a race), setuid/setgid bits come back only in place as
root or with keep_setuid, and drill scratch directories are private."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongroom.errors import StrongroomError
from strongroom.repository import Node, Repository, Snapshot
from strongroom.repository import writer as writer_mod
from strongroom.sources import registry
from strongroom.sources.files import restore as restore_mod

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="owners, in-place and nobody: root")

REPO_ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
SETID = stat.S_ISUID | stat.S_ISGID


def _backup(repo: Repository, src: Path) -> Snapshot:
    return registry.get("files").backup(repo, name="safe", kind="full", tags=[],
                                        settings={"paths": [str(src)]})


def _restore(repo: Repository, snap: Snapshot, dest: Path | str, replace: bool = False,
             **options: Any) -> dict[str, Any]:
    return registry.get("files").restore(repo, snap, str(dest), replace=replace, include=[],
                                         options=options)


def _listing(path: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``path`` with its mode and mtime, and ``path``'s own."""
    out = {".": (os.lstat(path).st_mode, os.lstat(path).st_mtime_ns)}
    for p in path.rglob("*"):
        st = os.lstat(p)
        out[str(p.relative_to(path))] = (st.st_mode, st.st_mtime_ns)
    return out


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    (outside / "keep.txt").write_bytes(b"not the restore's")
    os.chmod(outside, 0o755)
    return outside


def _crafted_snapshot(repo: Repository, tmp_path: Path, outside: Path,
                      monkeypatch: pytest.MonkeyPatch) -> Snapshot:
    """A snapshot whose root holds a symlink ``a`` to ``outside`` and then a directory
    ``a`` (the same name) with a file ``x``: the tree format has no rule against it."""
    src = tmp_path / "src"
    (src / "b").mkdir(parents=True)
    (src / "b" / "x").write_bytes(b"must land inside the target")
    os.symlink(outside, src / "a")
    real = writer_mod.encode_tree

    def renamed(nodes: list[Node]) -> bytes:
        for node in nodes:
            if node.name == "b" and node.type == "dir":
                node.name = "a"
        return real(sorted(nodes, key=lambda n: (n.name, n.type != "symlink")))

    with monkeypatch.context() as m:
        m.setattr(writer_mod, "encode_tree", renamed)
        snap = _backup(repo, src)
    names = [(rel.rsplit("/", 1)[-1], n.type) for rel, n in repo.reader(snap).walk(
        str(src).lstrip("/"))]
    assert names == [("a", "symlink"), ("a", "dir"), ("x", "file")]
    return snap


def test_crafted_snapshot_never_writes_through_its_own_symlink(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = _outside(tmp_path)
    before = _listing(outside)
    repo = Repository.init(str(tmp_path / "repo"), password="pw")
    snap = _crafted_snapshot(repo, tmp_path, outside, monkeypatch)
    dest = tmp_path / "dest"
    with pytest.raises(StrongroomError) as stopped:
        _restore(repo, snap, dest)
    assert _listing(outside) == before
    assert "never followed" in str(stopped.value)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if "staging" in p.name] == []


@pytest.fixture
def work() -> Iterator[Path]:
    """A directory that user nobody can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="strongroom-safe-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _restore_as_nobody(work: Path, snap: Snapshot, dest: Path,
                       options: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    script = (
        "import json, sys\n"
        "from strongroom.repository import Repository\n"
        "from strongroom.sources import registry\n"
        "repo = Repository.open(sys.argv[1], password='pw')\n"
        "snap = repo.find_snapshot(sys.argv[2])\n"
        "report = registry.get('files').restore(repo, snap, sys.argv[3], replace=False,\n"
        "                                       include=[], options=json.loads(sys.argv[4]))\n"
        "print(json.dumps(report))\n")
    home = work / "home"
    home.mkdir(exist_ok=True)
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(work / "repo"), str(home),
                    str(dest.parent)], check=True)
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-c", script, str(work / "repo"), snap.id,
                           str(dest), json.dumps(options)], preexec_fn=_as_nobody, env=env,
                          cwd=home, capture_output=True, text=True, timeout=300)


def test_crafted_snapshot_restored_by_nobody_writes_nothing_outside(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = _outside(work)
    os.chown(outside, NOBODY, NOBODY)  # writable for nobody: only the restore's care stops it
    before = _listing(outside)
    repo = Repository.init(str(work / "repo"), password="pw")
    snap = _crafted_snapshot(repo, work, outside, monkeypatch)
    (work / "into").mkdir()
    proc = _restore_as_nobody(work, snap, work / "into" / "dest", {})
    assert _listing(outside) == before
    assert proc.returncode != 0 and "never followed" in proc.stderr, proc.stderr
    assert list((work / "into").iterdir()) == []


def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(6):
        (src / "d" / f"f{i}").write_bytes(b"restored %d" % i)
    os.chmod(src / "d", 0o700)
    os.utime(src / "d", ns=(1_500_000_000_000_000_000,) * 2)
    return src


def _swap_for_link(staging_parent: Path, rel: str, outside: Path) -> None:
    """From another thread: the staged directory ``rel`` moved aside, a symlink to
    ``outside`` in its place."""
    def plant() -> None:
        (staging,) = [p for p in staging_parent.iterdir() if "strongroom-staging" in p.name]
        victim = staging / rel
        victim.rename(victim.with_name("moved-aside"))
        os.symlink(outside, victim)

    planter = threading.Thread(target=plant)
    planter.start()
    planter.join()


def test_directory_swapped_for_a_symlink_before_its_files_gets_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = _outside(tmp_path)
    before = _listing(outside)
    repo = Repository.init(str(tmp_path / "repo"), password="pw")
    src = _tree(tmp_path)
    snap = _backup(repo, src)
    real = restore_mod._write_file
    planted = threading.Event()

    def racing(*args: Any, **kwargs: Any) -> None:
        if not planted.is_set():
            planted.set()
            _swap_for_link(tmp_path, str(src / "d").lstrip("/"), outside)
        real(*args, **kwargs)

    monkeypatch.setattr(restore_mod, "_write_file", racing)
    dest = tmp_path / "dest"
    with pytest.raises(StrongroomError) as stopped:
        _restore(repo, snap, dest)
    assert planted.is_set()
    assert _listing(outside) == before
    assert "never followed" in str(stopped.value)
    assert not dest.exists()


def test_directory_swapped_for_a_symlink_before_its_metadata_keeps_outside_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = _outside(tmp_path)
    before = _listing(outside)
    repo = Repository.init(str(tmp_path / "repo"), password="pw")
    src = _tree(tmp_path)
    snap = _backup(repo, src)
    real = restore_mod._Workers.wait

    def then_plant(self: Any) -> None:
        real(self)  # every file written: only the directories' metadata is left
        _swap_for_link(tmp_path, str(src / "d").lstrip("/"), outside)

    monkeypatch.setattr(restore_mod._Workers, "wait", then_plant)
    with pytest.raises(StrongroomError) as stopped:
        _restore(repo, snap, tmp_path / "dest")
    assert _listing(outside) == before  # no chmod (0700) or utime through the link
    assert "never followed" in str(stopped.value)


def _setuid_tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    for name, mode in (("su", 0o4755), ("wall", 0o2755), ("plain", 0o755)):
        (src / "bin" / name).write_bytes(b"\x7fELF " + name.encode())
        os.chmod(src / "bin" / name, mode)
    (src / "shared").mkdir()
    os.chmod(src / "shared", 0o2775)  # a setgid directory: group inheritance, kept
    return src


def _modes(root: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(os.lstat(p).st_mode)
            for p in (root / "bin" / "su", root / "bin" / "wall", root / "bin" / "plain",
                      root / "shared")}


def test_setuid_dropped_in_a_scratch_directory_and_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = _setuid_tree(tmp_path)
    repo = Repository.init(str(tmp_path / "repo"), password="pw")
    snap = _backup(repo, src)
    dest = tmp_path / "scratch"
    with caplog.at_level(logging.WARNING, logger="strongroom"):
        report = _restore(repo, snap, dest, check="bytes")
    assert _modes(dest / str(src).lstrip("/")) == {
        "su": 0o755, "wall": 0o755, "plain": 0o755, "shared": 0o2775}
    assert report["not_restored_setuid"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "--keep-setuid" in warnings[0], warnings
    checked = registry.get("files").verify_restored(repo, snap, str(dest), include=[],
                                                    report=report)
    assert checked["files"] == checked["files_identical"] == 3


def test_setuid_kept_restoring_in_place_as_root(tmp_path: Path) -> None:
    src = _setuid_tree(tmp_path)
    before = _modes(src)
    repo = Repository.init(str(tmp_path / "repo"), password="pw")
    snap = _backup(repo, src)
    report = _restore(repo, snap, "/", replace=True, check="bytes")
    assert not [k for k in report if k.startswith("not_restored")]
    assert _modes(src) == before
    assert report["kept"].startswith(str(src))


def test_setuid_kept_with_keep_setuid(tmp_path: Path) -> None:
    src = _setuid_tree(tmp_path)
    before = _modes(src)
    repo_url = str(tmp_path / "repo")
    snap = _backup(Repository.init(repo_url, password="pw"), src)
    env = dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=repo_url)
    dest = tmp_path / "scratch"
    proc = subprocess.run(["strongroom", "restore", snap.id, "--target", str(dest),
                           "--keep-setuid", "--json"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "not_restored_setuid" not in json.loads(proc.stdout)
    assert _modes(dest / str(src).lstrip("/")) == before


def test_keep_setuid_not_a_boolean_is_one_line_and_exit_2(tmp_path: Path) -> None:
    src = _setuid_tree(tmp_path)
    repo_url = str(tmp_path / "repo")
    snap = _backup(Repository.init(repo_url, password="pw"), src)
    env = dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=repo_url)
    proc = subprocess.run(["strongroom", "restore", snap.id, "--target",
                           str(tmp_path / "scratch"), "--restore-option",
                           "keep_setuid=maybe"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "keep_setuid" in proc.stderr
    assert not (tmp_path / "scratch").exists()


def test_setuid_as_nobody_dropped_unless_kept(work: Path) -> None:
    src = _setuid_tree(work)
    for p in [src, *src.rglob("*")]:
        mode = stat.S_IMODE(os.lstat(p).st_mode)
        os.chown(p, NOBODY, NOBODY)  # chown clears the bits: put them back
        os.chmod(p, mode)
    before = _modes(src)
    repo = Repository.init(str(work / "repo"), password="pw")
    snap = _backup(repo, src)
    (work / "into").mkdir()
    modes = []
    for options in ({}, {"keep_setuid": True}):
        dest = work / "into" / f"dest{len(options)}"
        proc = _restore_as_nobody(work, snap, dest, options | {"check": "bytes"})
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report.get("not_restored_setuid", 0) == (0 if options else 2)
        modes.append(_modes(dest / str(src).lstrip("/")))
    assert modes[0] == {**before, "su": 0o755, "wall": 0o755}
    assert modes[1] == before


def test_drill_scratch_directory_is_private(tmp_path: Path) -> None:
    umask = os.umask(0)
    try:
        with registry.get("files").scratch_target(None, tmp_path, settings={}) as scratch:
            target = Path(scratch.target)
            assert stat.S_IMODE(os.lstat(target).st_mode) == 0o700
            assert stat.S_IMODE(os.lstat(target.parent).st_mode) == 0o700
            assert list(target.iterdir()) == []
    finally:
        os.umask(umask)
    assert list(tmp_path.iterdir()) == []
