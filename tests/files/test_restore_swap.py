"""A files restore that replaces a live directory stages beside it, checks, swaps, keeps the old:
a damaged pack, a kill, a full disk, a symlinked target or a repository inside the target never
leave the live directory changed or emptied, and the kept contents put back byte for byte."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from strongroom.errors import ConfigError, IntegrityError, TargetNotEmpty, TargetTooSmall
from strongroom.repository import Repository
from strongroom.sources import registry, swap
from tests.support.trees import describe, make_tree

CONTENTS = {"layout": "contents", "check": "bytes"}


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(str(tmp_path / "repo"), password="pw")


@pytest.fixture
def files():
    return registry.get("files")


def _snapshot(repo: Repository, files, src: Path):
    return files.backup(repo, name="app", kind="full", tags=[], settings={"paths": [str(src)]})


def _beside(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name
                  and path.name in p.name)


def test_a_damaged_pack_leaves_the_live_directory_as_it_was(repo, files, tmp_path: Path
                                                            ) -> None:
    snap = _snapshot(repo, files, make_tree(tmp_path / "src", files=8))
    live = make_tree(tmp_path / "live", files=6, seed=7)
    before = describe(live)
    pack = max((p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="was not changed"):
        files.restore(repo, snap, str(live), replace=True, include=[], options=CONTENTS)
    assert describe(live) == before
    assert _beside(live) == []  # no staging, nothing kept: nothing was swapped


def test_a_symlinked_target_keeps_its_link_and_every_real_file(repo, files, tmp_path: Path
                                                               ) -> None:
    src = make_tree(tmp_path / "src", files=5)
    snap = _snapshot(repo, files, src)
    real = make_tree(tmp_path / "data" / "app", files=4, seed=3)
    before = describe(real)
    link = tmp_path / "srv-app"
    link.symlink_to(real)
    report = files.restore(repo, snap, str(link), replace=True, include=[], options=CONTENTS)
    assert link.is_symlink() and link.resolve() == real
    assert describe(real) == describe(src)
    assert Path(report["kept"]).parent == real.parent and describe(Path(report["kept"])) == before


def test_a_repository_inside_the_target_is_refused(files, tmp_path: Path) -> None:
    live = make_tree(tmp_path / "live", files=3)
    inner = Repository.init(str(live / "repo"), password="pw")
    snap = _snapshot(inner, files, make_tree(tmp_path / "src", files=2))
    before = describe(live)
    with pytest.raises(ConfigError, match="holds the repository"):
        files.restore(inner, snap, str(live), replace=True, include=[], options=CONTENTS)
    assert describe(live) == before


def test_an_include_replaces_only_its_path_and_keeps_what_it_displaced(repo, files,
                                                                        tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "conf").mkdir(parents=True)
    (src / "conf" / "app.yaml").write_text("restored: true\n")
    (src / "data.txt").write_text("old data\n")
    snap = _snapshot(repo, files, src)
    (src / "conf" / "app.yaml").write_text("broken\n")
    (src / "data.txt").write_text("new data, keep me\n")
    report = files.restore(repo, snap, "/", replace=True, include=[f"{src}/conf"], options={})
    assert (src / "conf" / "app.yaml").read_text() == "restored: true\n"
    assert (src / "data.txt").read_text() == "new data, keep me\n"
    assert (Path(report["kept"]) / "conf" / "app.yaml").read_text() == "broken\n"


def test_in_place_puts_every_path_back_where_it_was(repo, files, tmp_path: Path) -> None:
    one, two = make_tree(tmp_path / "one", files=3), make_tree(tmp_path / "two", files=3, seed=2)
    want = describe(one), describe(two)
    snap = files.backup(repo, name="app", kind="full", tags=[],
                        settings={"paths": [str(one), str(two)]})
    (one / "new-file").write_text("x")
    swap_two = make_tree(tmp_path / "elsewhere", files=1)
    two.rename(tmp_path / "two-gone")
    swap_two.rename(two)
    report = files.restore(repo, snap, files.in_place_target({}), replace=True, include=[],
                           options={})
    assert (describe(one), describe(two)) == want
    assert len(report["kept"].split(";")) == 2
    checked = files.verify_restored(repo, snap, "/", include=[], report=report)
    assert checked["files"] == checked["files_identical"] > 0


def test_the_kept_contents_put_back_byte_for_byte(repo, files, tmp_path: Path) -> None:
    snap = _snapshot(repo, files, make_tree(tmp_path / "src", files=4))
    live = make_tree(tmp_path / "live", files=4, seed=9)
    before = describe(live)
    report = files.restore(repo, snap, str(live), replace=True, include=[], options=CONTENTS)
    moved = swap.put_back(live, Path(report["kept"]), swap.stamp())
    assert describe(live) == before and moved is not None and moved.exists()


def test_no_room_beside_the_target_is_refused_before_anything(repo, files, tmp_path: Path
                                                              ) -> None:
    snap = _snapshot(repo, files, make_tree(tmp_path / "src", files=2))
    snap.stats.bytes_total = 1 << 60  # more than any disk here
    live = make_tree(tmp_path / "live", files=2)
    before = describe(live)
    with pytest.raises(TargetTooSmall, match="bytes free"):
        files.restore(repo, snap, str(live), replace=True, include=[], options=CONTENTS)
    assert describe(live) == before and _beside(live) == []


def test_a_killed_restore_leaves_the_target_and_the_next_one_cleans_up(tmp_path: Path) -> None:
    env = dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=str(tmp_path / "r"))
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"big{i}").write_bytes(os.urandom(12_000_000))
    cli = [shutil.which("strongroom") or "strongroom"]
    subprocess.run([*cli, "init"], env=env, check=True, capture_output=True)
    subprocess.run([*cli, "backup", "files", str(src)], env=env, check=True,
                   capture_output=True)
    live = make_tree(tmp_path / "live", files=5, seed=4)
    before = describe(live)
    proc = subprocess.Popen([*cli, "restore", "latest", "--target", str(live), "--replace",
                             "--restore-option", "layout=contents"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            p.name.startswith(".live.strongroom-staging-") and any(p.iterdir())
            for p in tmp_path.iterdir()):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert describe(live) == before
    done = subprocess.run([*cli, "restore", "latest", "--target", str(live), "--replace",
                           "--restore-option", "layout=contents"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert describe(live) == describe(src)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".live"))
    assert left == []


def test_an_include_restore_undone_puts_back_only_its_paths(repo, files, tmp_path: Path
                                                            ) -> None:
    src = tmp_path / "src"
    (src / "conf").mkdir(parents=True)
    (src / "conf" / "app.yaml").write_text("restored: true\n")
    (src / "extra").mkdir()
    (src / "extra" / "new.txt").write_text("only in the snapshot\n")
    snap = _snapshot(repo, files, src)
    (src / "conf" / "app.yaml").write_text("broken\n")
    shutil.rmtree(src / "extra")
    (src / "data.txt").write_text("written since, not in the snapshot\n")
    before = describe(src)
    report = files.restore(repo, snap, "/", replace=True,
                           include=[f"{src}/conf", f"{src}/extra"], options={})
    kept, _, roots = report["kept_only"].rpartition("=")
    assert kept == report["kept"] and sorted(roots.split(",")) == ["conf", "extra"]
    assert (src / "extra" / "new.txt").exists() and (src / "data.txt").exists()
    swap.put_back_entries(src, Path(kept), roots.split(","), swap.stamp())
    assert describe(src) == before  # the rest of the target never moved


def test_an_include_restore_never_moves_through_a_symlink(repo, files, tmp_path: Path
                                                          ) -> None:
    src = tmp_path / "app"
    (src / "data").mkdir(parents=True)
    (src / "data" / "x").write_text("d1")
    snap = _snapshot(repo, files, src)
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (elsewhere / "x").write_text("SHADOW")
    shutil.rmtree(src / "data")
    (src / "data").symlink_to(elsewhere)
    with pytest.raises(TargetNotEmpty, match="never followed"):
        files.restore(repo, snap, str(src), replace=True, include=[f"{src}/data/x"],
                      options={"layout": "contents"})
    assert (elsewhere / "x").read_text() == "SHADOW"


def test_a_repository_reached_through_a_symlinked_parent_is_refused(files, tmp_path: Path
                                                                    ) -> None:
    (tmp_path / "real" / "app").mkdir(parents=True)
    inner = Repository.init(str(tmp_path / "real" / "app" / "repo"), password="pw")
    snap = _snapshot(inner, files, make_tree(tmp_path / "src", files=2))
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with pytest.raises(ConfigError, match="holds the repository"):
        files.restore(inner, snap, str(tmp_path / "alias" / "app"), replace=True, include=[],
                      options=CONTENTS)
    assert (tmp_path / "real" / "app" / "repo" / "config").exists()


def test_overlapping_paths_restore_in_place_once(repo, files, tmp_path: Path) -> None:
    outer = make_tree(tmp_path / "ov", files=4)
    inner = next(p for p in sorted(outer.iterdir()) if p.is_dir() and not p.is_symlink())
    snap = files.backup(repo, name="ov", kind="full", tags=[],
                        settings={"paths": [str(outer), str(inner)]})
    want = describe(outer)
    (outer / "live-only.txt").write_text("x")
    report = files.restore(repo, snap, "/", replace=True, include=[], options={})
    assert describe(outer) == want and len(report["kept"].split(";")) == 1


def test_one_restore_into_a_target_at_a_time(repo, files, tmp_path: Path) -> None:
    from strongroom.errors import LockedError

    snap = _snapshot(repo, files, make_tree(tmp_path / "src", files=2))
    live = make_tree(tmp_path / "live", files=2, seed=5)
    with swap.target_lock(live), pytest.raises(LockedError, match="under way"):
        files.restore(repo, snap, str(live), replace=True, include=[], options=CONTENTS)
    assert _beside(live) == []


def test_a_kill_between_the_two_renames_keeps_the_old_contents(tmp_path: Path) -> None:
    """The old contents take their kept name first: a kill after it leaves no target, the
    kept contents, and a staging copy the next restore may remove without loss."""
    live = make_tree(tmp_path / "live", files=3)
    before = describe(live)
    when = swap.stamp()
    staging = swap.staging_dir(live, when)
    (staging / "new").write_text("restored")
    kept = live.with_name(f"live{swap.KEPT_MARK}{when}")
    os.rename(live, kept)  # the first rename of swap_entry, then the kill
    swap.remove_leftovers(live)  # what the next restore does first
    assert describe(kept) == before
    swap.put_back(live, kept, swap.stamp())  # an undo run then finishes the job
    assert describe(live) == before
