"""Key blocks of every kind a flow can open with: a backup flow run opens its repository through
a pkcs11 key block on a real SoftHSM2 token and through a kms key block on moto's KMS; the PIN
and the KMS key pair never show in the block documents the API returns; bad blocks and platform
file keys give one-line errors."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from strongroom import audit
from tests.keys.conftest import SOFTHSM_MODULE
from tests.keys.conftest import kms_key as kms_key  # noqa: F401 (fixture)
from tests.keys.conftest import softhsm as softhsm  # noqa: F401 (fixture)
from tests.prefect.conftest import backup_one, make_tree, save_files_source

PASSWORD = "key-blocks-test-password"


def _secret_free_document(name: str) -> str:
    """The target block document as the API serves it to the UI (secrets obfuscated)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        doc = client.read_block_document_by_name(name, "strongroom-repository-target",
                                                 include_secrets=False)
    return json.dumps(doc.data, default=str)


def _backup_through(target_name: str, repo_path: str, slot_id: str, tmp_path: Path,
                    names: str, options: dict | None = None) -> None:
    """A full backup flow run with ``target_name``: the snapshot is written and the audit
    record of the backup names the slot the block opened."""
    from blocks.loading import load_target

    data = make_tree(tmp_path / "data", files=6, size=2000)
    src = save_files_source(f"docs-{names}", [data])
    result = backup_one("full", src, primary=target_name)
    assert result["snapshot"]["kind"] == "full"
    repo = load_target(target_name).open()
    try:
        assert repo.slot_id == slot_id
        assert [s.id for s in repo.list_snapshots()] == [result["snapshot"]["id"]]
        backups = [r.doc for r in audit.read_records(repo.backend)
                   if r.doc.get("op") == "backup"]
        assert backups and backups[-1]["slot"] == slot_id and backups[-1]["outcome"] == "ok"
    finally:
        repo.close()


@pytest.fixture
def hsm(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """The SoftHSM2 token of tests/keys, visible to this process's PKCS#11 library (loaded
    afresh, unloaded after: the library reads SOFTHSM2_CONF when it initialises)."""
    import pkcs11

    env = request.getfixturevalue("softhsm")
    monkeypatch.setenv("SOFTHSM2_CONF", env["SOFTHSM2_CONF"])
    pkcs11.unload(SOFTHSM_MODULE)
    yield env
    pkcs11.unload(SOFTHSM_MODULE)


def test_flow_opens_repository_through_pkcs11_key_block(prefect_harness, hsm, tmp_path, names,
                                                        monkeypatch):
    from blocks import RepositoryKey, RepositoryTarget
    from blocks.keys import Pkcs11Key
    from strongroom.crypto.pkcs11_slot import TokenRef, make_pkcs11_slot
    from strongroom.repository import Repository

    token, key_label, pin = (hsm["STRONGROOM_PKCS11_TOKEN"], hsm["STRONGROOM_PKCS11_KEY"],
                             hsm["STRONGROOM_PKCS11_PIN"])
    path = str(tmp_path / "repo")
    repo = Repository.init(path, PASSWORD)
    slot = repo.put_slot(make_pkcs11_slot(repo.master, repo.id,
                                          TokenRef(SOFTHSM_MODULE, token, key_label), pin,
                                          create_key=True, label="hsm"))
    repo.close()

    # the PIN as a secret field of the block: saved, loaded, never served to the UI
    name = f"hsm-{names}"
    RepositoryTarget(url=path, key=RepositoryKey(pkcs11=Pkcs11Key(
        token=token, module=SOFTHSM_MODULE, pin=SecretStr(pin)))).save(name, overwrite=True)
    assert pin not in _secret_free_document(name)
    _backup_through(name, path, slot.id, tmp_path, names)

    # the PIN from an environment variable named in the block (token and key: the slot's)
    env_name = f"hsm-env-{names}"
    monkeypatch.setenv("TEST_HSM_PIN", pin)
    RepositoryTarget(url=path, key=RepositoryKey(pkcs11=Pkcs11Key(pin_env="TEST_HSM_PIN"))
                     ).save(env_name, overwrite=True)
    from blocks.loading import load_target

    reopened = load_target(env_name).open()
    assert reopened.slot_id == slot.id
    reopened.close()

    # a wrong PIN: one line naming the token, not the PIN; the password still opens it
    from strongroom.errors import WrongKey

    monkeypatch.setenv("TEST_HSM_PIN", "0000wrong")
    with pytest.raises(WrongKey, match="wrong PIN") as exc:
        load_target(env_name).open()
    assert "0000wrong" not in str(exc.value) and "\n" not in str(exc.value)
    monkeypatch.delenv("TEST_HSM_PIN")
    from strongroom.errors import ConfigError

    with pytest.raises(ConfigError, match="TEST_HSM_PIN"):
        load_target(env_name).open()
    Repository.open(path, PASSWORD).close()


def test_flow_opens_repository_through_kms_key_block(prefect_harness, kms_key, tmp_path,
                                                     names):
    from blocks import RepositoryKey, RepositoryTarget
    from blocks.keys import KmsKey
    from strongroom.crypto.kms_slot import make_kms_slot
    from strongroom.repository import Repository

    path = str(tmp_path / "repo")
    repo = Repository.init(path, PASSWORD)
    slot = repo.put_slot(make_kms_slot(repo.master, repo.id, kms_key["alias"], "us-east-1",
                                       kms_key["endpoint"]))
    repo.close()
    name = f"kms-{names}"
    key_pair_secret = f"kms-secret-{secrets.token_hex(4)}"  # moto accepts any key pair
    RepositoryTarget(url=path, key=RepositoryKey(kms=KmsKey(
        key_id=kms_key["alias"], endpoint_url=kms_key["endpoint"], region="us-east-1",
        access_key_id=SecretStr("test"), secret_access_key=SecretStr(key_pair_secret)))
    ).save(name, overwrite=True)
    assert key_pair_secret not in _secret_free_document(name)
    _backup_through(name, path, slot.id, tmp_path, names)

    # a block naming another KMS key opens nothing (one line), the slot is untouched
    from blocks.loading import load_target
    from strongroom.errors import WrongKey
    from tests.keys.conftest import kms_client

    other = kms_client(kms_key["endpoint"]).create_key()["KeyMetadata"]["Arn"]
    RepositoryTarget(url=path, key=RepositoryKey(kms=KmsKey(
        key_id=other, endpoint_url=kms_key["endpoint"]))).save(f"{name}-other", overwrite=True)
    with pytest.raises(WrongKey, match="no key slot"):
        load_target(f"{name}-other").open()
    with pytest.raises(Exception, match="password or key file"):  # cannot create with KMS
        RepositoryTarget(url=str(tmp_path / "new"), key=RepositoryKey(kms=KmsKey(
            key_id=other))).open(create=True)


def test_key_blocks_and_platform_keys_validate_in_one_line(tmp_path):
    from blocks import RepositoryKey
    from deployments.config import load_config

    with pytest.raises(ValidationError, match="exactly one of password, keyfile, pkcs11 or "
                       r"kms \(got password, pkcs11\)"):
        RepositoryKey(password="x", pkcs11={"token": "t"})
    with pytest.raises(ValidationError, match="at most one of pin, pin_env or pin_file"):
        RepositoryKey(pkcs11={"pin": "1", "pin_env": "X"})
    with pytest.raises(ValidationError, match="access_key_id and secret_access_key"):
        RepositoryKey(kms={"access_key_id": "a"})

    base = ("targets: {main: {url: /srv/repo, key: k}}\n"
            "sources: {docs: {kind: files, paths: [/srv]}}\n")
    good = tmp_path / "good.yaml"
    good.write_text("keys: {k: {pkcs11: {token: hsm, key: wrap, pin_env: HSM_PIN}}, "
                    "c: {kms: {key_id: alias/sr, region: eu-west-1}}}\n" + base)
    config = load_config(good)
    assert config.keys["k"].pkcs11.pin_env == "HSM_PIN"
    from deployments.key_specs import key_block

    block = key_block(config.keys["k"])
    assert block.kind == "pkcs11" and block.pkcs11.token == "hsm"
    assert key_block(config.keys["c"]).kms.key_id == "alias/sr"
    for keys, needle in [
            ("{k: {password: x, kms: {key_id: a}}}", "keys.k: give exactly one of password, "
             "keyfile, pkcs11 or kms (got password, kms)"),
            ("{k: {pkcs11: {pin: '1', pin_file: /p}}}", "keys.k.pkcs11: give at most one"),
            ("{k: {pkcs11: {pin_env: 'not a name'}}}", "keys.k.pkcs11.pin_env"),
            ("{k: {kms: {key: a}}}", "keys.k.kms.key")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"keys: {keys}\n" + base)
        with pytest.raises(Exception) as exc:
            load_config(bad)
        text = str(exc.value)
        assert needle in text and "\n" not in text, text


def test_platform_keys_and_key_block_share_the_engine_key_models():
    """One definition of a key: the block and the platform file subclass the engine's models
    (saved blocks keep their type slug and fields); the platform file loads without prefect."""
    import subprocess
    import sys

    from blocks.keys import KmsKey, Pkcs11Key, RepositoryKey
    from deployments.config import KeyConfig
    from strongroom.crypto import key_models

    assert issubclass(RepositoryKey, key_models.KeyModel)
    assert issubclass(KeyConfig, key_models.KeyModel)
    assert (Pkcs11Key, KmsKey) == (key_models.Pkcs11Key, key_models.KmsKey)
    assert RepositoryKey.get_block_type_slug() == "strongroom-repository-key"
    assert list(RepositoryKey.model_fields) == ["password", "keyfile", "pkcs11", "kms"]
    assert KeyConfig.model_config["extra"] == "forbid"
    assert RepositoryKey.model_config["extra"] == "allow"  # Prefect's, as before
    code = ("import sys, deployments.config, strongroom.crypto.key_models; "
            "sys.exit(1 if 'prefect' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
