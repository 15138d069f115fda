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


def test_recover_onto_a_new_token_with_the_escrow_key(local_cli, softhsm, tmp_path: Path
                                                      ) -> None:
    """The token (or its PIN) is lost: the escrow key adds a pkcs11 slot on a new token,
    which then opens the repository on its own; the audit record never holds the PIN."""
    cli = local_cli
    cli("init")
    src = make_tree(tmp_path / "src")
    cli("backup", "files", str(src))
    holder = tmp_path / "holder"
    keygen = json.loads(cli("key", "escrow-keygen", "--out", str(holder), "--json").stdout)
    cli("key", "add", "--escrow-public-key", keygen["public"])
    pin = softhsm["STRONGROOM_PKCS11_PIN"]
    pin_file = tmp_path / "pin"
    pin_file.write_text(pin + "\n")
    recover = ("key", "recover", "--escrow-key", keygen["private"],
               "--pkcs11-module", softhsm["STRONGROOM_PKCS11_MODULE"],
               "--pkcs11-token", softhsm["STRONGROOM_PKCS11_TOKEN"],
               "--pkcs11-key", softhsm["STRONGROOM_PKCS11_KEY"], "--pkcs11-create-key")
    hsm_conf = {"SOFTHSM2_CONF": softhsm["SOFTHSM2_CONF"]}
    no_pin = cli(*recover, check=False, env=hsm_conf, unset=NO_PW)
    one_line_error(no_pin, 2, "no PKCS#11 PIN")
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("99999999\n")
    one_line_error(cli(*recover, "--pkcs11-pin-file", str(wrong), check=False, env=hsm_conf,
                       unset=NO_PW), 11, "wrong PIN", secrets_=("99999999",))
    mixed = cli(*recover, "--pkcs11-pin-file", str(pin_file), "--new-password-file",
                str(pin_file), check=False, env=hsm_conf, unset=NO_PW)
    one_line_error(mixed, 2, "one slot kind")

    rec = json.loads(cli(*recover, "--pkcs11-pin-file", str(pin_file), "--json", env=hsm_conf,
                         unset=NO_PW).stdout)
    assert rec["type"] == "pkcs11" and softhsm["STRONGROOM_PKCS11_TOKEN"] in rec["detail"]
    # the new token alone (no password, no escrow key) opens and restores
    assert_restored(cli, src, tmp_path / "out", env=softhsm, unset=NO_PW)
    rows = json.loads(cli("audit", "--json").stdout)
    ops = [(r["op"], r["outcome"]) for r in rows]
    assert ("key recover", "ok") in ops and ("key recover", "failed") in ops
    assert pin not in json.dumps(rows) and "99999999" not in json.dumps(rows)
