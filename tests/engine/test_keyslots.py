"""A damaged key slot is named and skipped: the repository still opens with any other slot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


@pytest.fixture
def repo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_PASSWORD="first", STRONGROOM_REPOSITORY=str(tmp_path / "r"))


DAMAGE = {
    "wrapped-not-base64": lambda s: s.update(wrapped=s["wrapped"][:-3]),
    "kdf-time-cost-zero": lambda s: s["kdf"].update(time_cost=0),
    "kdf-salt-damaged": lambda s: s["kdf"].update(salt="@"),
    "kdf-missing": lambda s: s.update(kdf=None),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_slot_does_not_lock_out_the_others(cli, repo_env, tmp_path: Path,
                                                   damage: str) -> None:
    cli("init")
    second = tmp_path / "second.pw"
    second.write_text("second\n")
    cli("key", "add", "--new-password-file", str(second))
    keys = Path(repo_env["STRONGROOM_REPOSITORY"]) / "keys"
    first_id = next(s["id"] for s in json.loads(cli("key", "list", "--json").stdout)
                    if s["current"])
    slot = json.loads((keys / first_id).read_text())
    DAMAGE[damage](slot)
    (keys / first_id).write_text(json.dumps(slot))

    ok = cli("snapshots", env={"STRONGROOM_PASSWORD": "second"}, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "Traceback" not in ok.stderr

    bad = cli("snapshots", check=False)  # the only slot for this password is the damaged one
    assert bad.returncode == 11
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and first_id in last and "damaged" in last
    assert "first" not in bad.stderr.replace(first_id, "")


def test_only_slot_unreadable_is_named_as_damage(cli, repo_env) -> None:
    cli("init")
    keys = Path(repo_env["STRONGROOM_REPOSITORY"]) / "keys"
    (slot,) = keys.iterdir()
    slot.write_bytes(slot.read_bytes()[:40])  # truncated JSON
    proc = cli("snapshots", check=False)
    assert proc.returncode == 13, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no usable key slot") and slot.name in last


def test_passwd_never_replaces_a_key_file_slot(cli, repo_env, tmp_path: Path) -> None:
    cli("init")
    keyfile = tmp_path / "k.key"
    cli("key", "add", "--new-key-file", str(keyfile))
    new_pw = tmp_path / "new.pw"
    new_pw.write_text("changed\n")
    by_keyfile = {"STRONGROOM_PASSWORD": "", "STRONGROOM_KEYFILE": str(keyfile)}
    proc = cli("key", "passwd", "--new-password-file", str(new_pw), env=by_keyfile,
               check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
    assert cli("snapshots", env=by_keyfile).returncode == 0  # the key file still opens it
    assert sorted(s["type"] for s in json.loads(cli("key", "list", "--json").stdout)) == \
        ["keyfile", "password"]
    cli("key", "passwd", "--new-password-file", str(new_pw))  # with the password: fine
    assert cli("snapshots", env={"STRONGROOM_PASSWORD": "changed"}).returncode == 0
