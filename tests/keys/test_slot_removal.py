"""Removing key slots never leaves the repository without a way in."""

from __future__ import annotations

import json
from pathlib import Path

from tests.keys.conftest import one_line_error


def test_last_slot_and_slot_in_use_are_kept(local_cli, tmp_path: Path) -> None:
    cli = local_cli
    cli("init")
    (only,) = json.loads(cli("key", "list", "--json").stdout)
    one_line_error(cli("key", "remove", only["id"], check=False), 2, "last key slot")

    cli("key", "escrow-keygen", "--out", str(tmp_path / "h"))
    private = tmp_path / "h" / "escrow-private.pem"
    cli("key", "add", "--escrow-public-key", str(tmp_path / "h" / "escrow-public.pem"))
    one_line_error(cli("key", "remove", only["id"], check=False), 2, "in use")

    by_escrow = {"STRONGROOM_ESCROW_KEY": str(private)}
    no_pw = ("STRONGROOM_PASSWORD",)
    cli("key", "remove", only["id"], env=by_escrow, unset=no_pw)  # another slot opens it
    (escrow,) = json.loads(cli("key", "list", "--json", env=by_escrow, unset=no_pw).stdout)
    assert escrow["type"] == "escrow" and escrow["current"]
    one_line_error(cli("key", "remove", escrow["id"], check=False, env=by_escrow, unset=no_pw),
                   2, "last key slot")
    one_line_error(cli("snapshots", check=False), 11, "wrong password")
    # the escrow key still opens it and gives it a password back
    new_pw = tmp_path / "pw"
    new_pw.write_text("again\n")
    cli("key", "recover", "--escrow-key", str(private), "--new-password-file", str(new_pw),
        unset=no_pw)
    assert cli("snapshots", env={"STRONGROOM_PASSWORD": "again"}).returncode == 0
