"""pkcs11 key slots on a real SoftHSM2 token: add, open, restore, and every bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.keys.conftest import SOFTHSM_MODULE, assert_restored, make_tree, one_line_error

HSM_OPEN = ("STRONGROOM_PKCS11_MODULE", "STRONGROOM_PKCS11_TOKEN", "STRONGROOM_PKCS11_KEY",
            "STRONGROOM_PKCS11_PIN")


def _add_token_slot(cli, softhsm: dict[str, str]) -> dict:
    """Add a pkcs11 slot with a key generated on the token (opened with the password)."""
    proc = cli("key", "add", "--pkcs11-module", SOFTHSM_MODULE,
               "--pkcs11-token", softhsm["STRONGROOM_PKCS11_TOKEN"],
               "--pkcs11-key", softhsm["STRONGROOM_PKCS11_KEY"], "--pkcs11-create-key",
               "--label", "hsm", "--json",
               env={"SOFTHSM2_CONF": softhsm["SOFTHSM2_CONF"],
                    "STRONGROOM_PKCS11_PIN": softhsm["STRONGROOM_PKCS11_PIN"]})
    return json.loads(proc.stdout)


def test_token_slot_opens_and_restores(cli, softhsm, tmp_path: Path) -> None:
    cli("init")
    src = make_tree(tmp_path / "src")
    cli("backup", "files", str(src))
    added = _add_token_slot(cli, softhsm)
    assert added["type"] == "pkcs11"

    # the token alone (no password) opens the repository and restores byte for byte
    assert_restored(cli, src, tmp_path / "out", env=softhsm, unset=("STRONGROOM_PASSWORD",))
    rows = json.loads(cli("key", "list", "--json", env=softhsm,
                          unset=("STRONGROOM_PASSWORD",)).stdout)
    current = next(r for r in rows if r["current"])
    assert current["id"] == added["id"] and current["type"] == "pkcs11"
    assert softhsm["STRONGROOM_PKCS11_TOKEN"] in current["detail"]

    # --pkcs11-* options open it too; the slot records token and key, so the PIN file is
    # the only thing the options must add
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm["STRONGROOM_PKCS11_PIN"] + "\n")
    rows = json.loads(cli("key", "list", "--json", "--pkcs11-module", SOFTHSM_MODULE,
                          "--pkcs11-pin-file", str(pin_file),
                          env={"SOFTHSM2_CONF": softhsm["SOFTHSM2_CONF"]},
                          unset=("STRONGROOM_PASSWORD",)).stdout)
    assert next(r for r in rows if r["current"])["id"] == added["id"]
    # a backup with the token adds data under the same master key
    (src / "later.txt").write_text("after the token slot\n")
    cli("backup", "files", str(src), env=softhsm, unset=("STRONGROOM_PASSWORD",))
    assert_restored(cli, src, tmp_path / "out2")  # and the password still restores it


def test_token_faults_are_one_line_and_leave_the_repository_openable(
        local_cli, softhsm, tmp_path: Path) -> None:
    cli = local_cli
    cli("init")
    _add_token_slot(cli, softhsm)
    no_pw = ("STRONGROOM_PASSWORD",)
    pin = softhsm["STRONGROOM_PKCS11_PIN"]

    wrong_pin = cli("snapshots", check=False, unset=no_pw,
                    env={**softhsm, "STRONGROOM_PKCS11_PIN": "999999"})
    one_line_error(wrong_pin, 11, "wrong PIN", secrets_=("999999", pin))

    missing_token = cli("snapshots", check=False, unset=no_pw,
                        env={**softhsm, "STRONGROOM_PKCS11_TOKEN": "no-such-token"})
    one_line_error(missing_token, 19, "no-such-token", secrets_=(pin,))

    missing_module = cli("snapshots", check=False, unset=no_pw,
                         env={**softhsm, "STRONGROOM_PKCS11_MODULE": "/nonexistent/p11.so"})
    one_line_error(missing_module, 2, "/nonexistent/p11.so", secrets_=(pin,))

    not_a_module = cli("snapshots", check=False, unset=no_pw,
                       env={**softhsm, "STRONGROOM_PKCS11_MODULE": "/etc/hostname"})
    one_line_error(not_a_module, 2, "cannot be loaded", secrets_=(pin,))

    no_pin = cli("snapshots", check=False, unset=(*no_pw, "STRONGROOM_PKCS11_PIN"),
                 env={k: v for k, v in softhsm.items() if k != "STRONGROOM_PKCS11_PIN"})
    one_line_error(no_pin, 2, "STRONGROOM_PKCS11_PIN")

    no_key = cli("snapshots", check=False, unset=no_pw,
                 env={**softhsm, "STRONGROOM_PKCS11_KEY": "other-key"})
    one_line_error(no_key, 11, "other-key", secrets_=(pin,))

    # the PIN is refused on the command line: there is no option for it
    on_cli = cli("key", "list", "--pkcs11-pin", pin, check=False, unset=no_pw, env=softhsm)
    assert on_cli.returncode == 2 and pin not in on_cli.stderr

    # afterwards both keys still open it (the wrong PIN did not lock the token)
    assert cli("snapshots").returncode == 0
    assert cli("snapshots", env=softhsm, unset=no_pw).returncode == 0


def test_existing_key_must_be_non_extractable_and_unique(local_cli, softhsm) -> None:
    import pkcs11
    from pkcs11 import Attribute, KeyType

    os.environ["SOFTHSM2_CONF"] = softhsm["SOFTHSM2_CONF"]
    try:
        token = pkcs11.lib(SOFTHSM_MODULE).get_token(
            token_label=softhsm["STRONGROOM_PKCS11_TOKEN"])
        with token.open(user_pin=softhsm["STRONGROOM_PKCS11_PIN"], rw=True) as session:
            session.generate_key(KeyType.AES, 256, label="leaky", store=True,
                                 template={Attribute.EXTRACTABLE: True,
                                           Attribute.SENSITIVE: False})
    finally:
        del os.environ["SOFTHSM2_CONF"]
    local_cli("init")
    env = {"SOFTHSM2_CONF": softhsm["SOFTHSM2_CONF"],
           "STRONGROOM_PKCS11_PIN": softhsm["STRONGROOM_PKCS11_PIN"]}
    token_opts = ("--pkcs11-module", SOFTHSM_MODULE,
                  "--pkcs11-token", softhsm["STRONGROOM_PKCS11_TOKEN"])
    leaky = local_cli("key", "add", *token_opts, "--pkcs11-key", "leaky", check=False, env=env)
    one_line_error(leaky, 2, "extractable")
    again = local_cli("key", "add", *token_opts, "--pkcs11-key", "leaky",
                      "--pkcs11-create-key", check=False, env=env)
    one_line_error(again, 2, "already has a key")
    assert len(json.loads(local_cli("key", "list", "--json").stdout)) == 1
