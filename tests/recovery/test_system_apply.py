"""Applying a staged system recovery entry by entry: every place holds the old or the new
entry, never neither; the staging directory is private."""

from __future__ import annotations

import subprocess

import pytest

from tasks import sysdiff


def _immutable(path, on: bool) -> bool:
    return subprocess.run(["chattr", "+i" if on else "-i", str(path)],
                          capture_output=True).returncode == 0


def test_staging_is_private(tmp_path):
    staging = sysdiff.make_staging(tmp_path, "20261208T000000Z")
    assert staging.parent == tmp_path and (staging.stat().st_mode & 0o777) == 0o700


def test_an_entry_that_cannot_move_in_puts_the_old_one_back(tmp_path):
    root, staging = tmp_path / "root", tmp_path / "staging"
    for base, text in ((root, "old"), (staging, "new")):
        (base / "etc").mkdir(parents=True)
        for n in ("a", "b", "c"):
            (base / "etc" / f"{n}.conf").write_text(f"{n} {text}\n")
    changed = [{"path": f"/etc/{n}.conf", "type": "file", "changes": ["content"]}
               for n in ("c", "a", "b")]
    if not _immutable(staging / "etc" / "b.conf", True):  # the staged b.conf cannot move
        pytest.skip("chattr +i is not available here")
    try:
        outcome = sysdiff.apply_staged(staging, root, changed, "20261208T000000Z")
    finally:
        _immutable(staging / "etc" / "b.conf", False)
    assert outcome["applied"] == ["/etc/a.conf"] and outcome["failed"] == "/etc/b.conf"
    assert outcome["error"] == "/etc/b.conf: Operation not permitted" and not outcome["left"]
    assert [(root / "etc" / f"{n}.conf").read_text() for n in ("a", "b", "c")] == \
        ["a new\n", "b old\n", "c old\n"]  # b moved aside, then back
    assert sorted(p.name for p in (root / "etc").iterdir()) == ["a.conf", "b.conf", "c.conf"]


def test_a_directory_becoming_a_file_keeps_nothing_aside(tmp_path):
    root, staging = tmp_path / "root", tmp_path / "staging"
    (root / "etc" / "app.d").mkdir(parents=True)
    (root / "etc" / "app.d" / "x").write_text("x")
    (staging / "etc").mkdir(parents=True)
    (staging / "etc" / "app.d").write_text("now a file\n")
    (staging / "etc" / "new").mkdir()
    (staging / "etc" / "new" / "n.conf").write_text("n\n")
    changed = [{"path": "/etc/app.d", "type": "file", "changes": ["type dir -> file"]},
               {"path": "/etc/new", "type": "dir", "changes": ["missing: would be created"]},
               {"path": "/etc/new/n.conf", "type": "file",
                "changes": ["missing: would be created"]}]
    outcome = sysdiff.apply_staged(staging, root, changed, "20261208T000000Z")
    assert outcome["failed"] is None
    assert outcome["applied"] == ["/etc/app.d", "/etc/new", "/etc/new/n.conf"]
    assert outcome["created"] == ["/etc/new"]
    assert (root / "etc" / "app.d").read_text() == "now a file\n"
    assert sorted(p.name for p in (root / "etc").iterdir()) == ["app.d", "new"]
