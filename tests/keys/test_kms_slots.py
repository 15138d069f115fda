"""kms key slots against moto's KMS: add, open, restore; disabled, deleted, denied, unreachable
and wrong keys give one line and a documented exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.keys.conftest import assert_restored, kms_client, make_tree, one_line_error
from tests.support.moto_server import free_port

NO_PW = ("STRONGROOM_PASSWORD",)


def test_kms_slot_opens_and_restores(cli, kms_key, tmp_path: Path) -> None:
    cli("init")
    src = make_tree(tmp_path / "src")
    cli("backup", "files", str(src))
    added = json.loads(cli("key", "add", "--kms-key-id", kms_key["alias"], "--kms-endpoint",
                           kms_key["endpoint"], "--json").stdout)
    assert added["type"] == "kms" and kms_key["arn"] in added["detail"]  # alias resolved
    by_kms = {"STRONGROOM_KMS": "1"}
    assert_restored(cli, src, tmp_path / "out", env=by_kms, unset=NO_PW)
    rows = json.loads(cli("key", "list", "--json", env=by_kms, unset=NO_PW).stdout)
    assert next(r for r in rows if r["current"])["id"] == added["id"]
    # the stored slot holds KMS ciphertext only: the master key is not in it
    slot = next(r for r in rows if r["type"] == "kms")
    assert slot["detail"] == f"kms {kms_key['arn']}"


def test_kms_faults(local_cli, kms_key, tmp_path: Path) -> None:
    cli = local_cli
    cli("init")
    cli("key", "add", "--kms-key-id", kms_key["arn"], "--kms-endpoint", kms_key["endpoint"])
    by_kms = {"STRONGROOM_KMS": "1"}
    client = kms_client(kms_key["endpoint"])

    dead = f"http://127.0.0.1:{free_port()}"
    unreachable = cli("snapshots", check=False, unset=NO_PW,
                      env={"STRONGROOM_KMS_ENDPOINT": dead})
    one_line_error(unreachable, 19, "unreachable")
    add_unreachable = cli("key", "add", "--kms-key-id", kms_key["arn"], "--kms-endpoint", dead,
                          check=False)
    one_line_error(add_unreachable, 19, "unreachable")

    client.disable_key(KeyId=kms_key["id"])
    disabled = cli("snapshots", check=False, unset=NO_PW, env=by_kms)
    one_line_error(disabled, 19, kms_key["arn"], "disabled")
    add_disabled = cli("key", "add", "--kms-key-id", kms_key["arn"], "--kms-endpoint",
                       kms_key["endpoint"], check=False)
    one_line_error(add_disabled, 19, "disabled")
    assert cli("snapshots").returncode == 0  # the password still opens it
    client.enable_key(KeyId=kms_key["id"])
    assert cli("snapshots", env=by_kms, unset=NO_PW).returncode == 0

    missing = cli("key", "add", "--kms-key-id", "alias/no-such-key", "--kms-endpoint",
                  kms_key["endpoint"], check=False)
    one_line_error(missing, 19, "alias/no-such-key", "does not exist")

    # the slot copied into another repository: the encryption context no longer matches
    other = tmp_path / "other"
    cli("init", env={"STRONGROOM_REPOSITORY": str(other)})
    keys = tmp_path / "repo" / "keys"
    kms_slot = next(p for p in keys.iterdir() if json.loads(p.read_text())["type"] == "kms")
    shutil.copy(kms_slot, other / "keys" / kms_slot.name)
    wrong = cli("snapshots", check=False, unset=NO_PW,
                env={**by_kms, "STRONGROOM_REPOSITORY": str(other)})
    one_line_error(wrong, 11, "does not open")

    client.schedule_key_deletion(KeyId=kms_key["id"], PendingWindowInDays=7)
    deleted = cli("snapshots", check=False, unset=NO_PW, env=by_kms)
    one_line_error(deleted, 19, "scheduled for deletion")
    assert cli("snapshots").returncode == 0
    client.cancel_key_deletion(KeyId=kms_key["id"])
    client.enable_key(KeyId=kms_key["id"])
    assert cli("snapshots", env=by_kms, unset=NO_PW).returncode == 0
