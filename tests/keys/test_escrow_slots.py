"""escrow key slots: added with only the public key, opened only by the offline private key;
`key recover` turns a lost password back into a working one."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.keys.conftest import assert_restored, make_tree, one_line_error

NO_PW = ("STRONGROOM_PASSWORD",)


def test_recover_a_lost_password_with_the_escrow_key(cli, tmp_path: Path) -> None:
    cli("init")
    src = make_tree(tmp_path / "src")
    cli("backup", "files", str(src))
    holder = tmp_path / "holder"
    keygen = json.loads(cli("key", "escrow-keygen", "--out", str(holder), "--json").stdout)
    private, public = Path(keygen["private"]), Path(keygen["public"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    added = json.loads(cli("key", "add", "--escrow-public-key", str(public), "--json").stdout)
    assert added["type"] == "escrow" and keygen["fingerprint"] in added["detail"]

    # the password is lost: recover with the private key, set a new password
    new_pw = tmp_path / "new.pw"
    new_pw.write_text("a brand new password\n")
    rec = json.loads(cli("key", "recover", "--escrow-key", str(private), "--new-password-file",
                         str(new_pw), "--json", unset=NO_PW).stdout)
    assert rec["type"] == "password" and rec["opened_with"] == added["id"]
    new = {"STRONGROOM_PASSWORD": "a brand new password"}
    assert_restored(cli, src, tmp_path / "out", env=new)
    # a key file can be the new slot too, and the private key opens directly (break glass)
    keyfile = tmp_path / "new.key"
    cli("key", "recover", "--escrow-key", str(private), "--new-key-file", str(keyfile),
        unset=NO_PW)
    assert_restored(cli, src, tmp_path / "out2", env={"STRONGROOM_KEYFILE": str(keyfile)},
                    unset=NO_PW)
    assert_restored(cli, src, tmp_path / "out3", env={"STRONGROOM_ESCROW_KEY": str(private)},
                    unset=NO_PW)
    types = sorted(r["type"] for r in json.loads(cli("key", "list", "--json").stdout))
    assert types == ["escrow", "keyfile", "password", "password"]


def test_escrow_faults(local_cli, tmp_path: Path) -> None:
    cli = local_cli
    cli("init")
    phrase = tmp_path / "phrase"
    phrase.write_text("escrow passphrase 1\n")
    cli("key", "escrow-keygen", "--out", str(tmp_path / "h"), "--passphrase-file", str(phrase))
    private, public = tmp_path / "h" / "escrow-private.pem", tmp_path / "h" / "escrow-public.pem"
    assert b"ENCRYPTED" in private.read_bytes()
    again = cli("key", "escrow-keygen", "--out", str(tmp_path / "h"), check=False)
    one_line_error(again, 2, "already exists")
    cli("key", "add", "--escrow-public-key", str(public))
    new_pw = tmp_path / "new.pw"
    new_pw.write_text("new\n")
    recover = ("key", "recover", "--escrow-key", str(private), "--new-password-file",
               str(new_pw))

    one_line_error(cli(*recover, check=False, unset=NO_PW), 2, "passphrase-protected")
    wrong_phrase = tmp_path / "wrong"
    wrong_phrase.write_text("not it\n")
    one_line_error(cli(*recover, "--escrow-passphrase-file", str(wrong_phrase), check=False,
                       unset=NO_PW), 11, "wrong passphrase", secrets_=("not it",))

    cli("key", "escrow-keygen", "--out", str(tmp_path / "other"))
    other = ("key", "recover", "--escrow-key", str(tmp_path / "other" / "escrow-private.pem"),
             "--new-password-file", str(new_pw))
    one_line_error(cli(*other, check=False, unset=NO_PW), 11, "no key slot")
    one_line_error(cli("key", "recover", "--escrow-key", str(public), "--new-password-file",
                       str(new_pw), check=False, unset=NO_PW), 2, "not a PEM private key")
    one_line_error(cli("key", "add", "--escrow-public-key", str(private), check=False), 2,
                   "PUBLIC")
    # nothing was added by the failures; the right passphrase recovers
    assert len(json.loads(cli("key", "list", "--json").stdout)) == 2
    cli(*recover, "--escrow-passphrase-file", str(phrase), unset=NO_PW)
    assert cli("snapshots", env={"STRONGROOM_PASSWORD": "new"}).returncode == 0
    assert cli("snapshots").returncode == 0  # the old password still works
