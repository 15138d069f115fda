"""``kms`` key slots: AWS KMS (or any service speaking its API) encrypts the master key under a
customer key, with an encryption context binding the repository id and the slot id. The AWS
identity comes from the usual boto3 chain (environment, profile, instance role)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from strongroom.crypto.errors import KeyServiceError, KeyServiceUnreachable
from strongroom.crypto.master import MASTER_SIZE, MasterKey
from strongroom.crypto.slots import KeySlot, KmsParams, SlotType, new_slot
from strongroom.errors import WrongKey

#: KMS error codes meaning "this key or ciphertext does not open the slot".
WRONG_KEY_CODES = {"IncorrectKeyException", "InvalidCiphertextException",
                   "InvalidKeyUsageException"}
UNUSABLE_STATES = {"Disabled": "disabled", "PendingDeletion": "scheduled for deletion",
                   "PendingReplicaDeletion": "scheduled for deletion",
                   "Unavailable": "unavailable", "PendingImport": "missing its key material"}


def context(repo_id: str, slot_id: str) -> dict[str, str]:
    """The encryption context: KMS refuses to decrypt under any other."""
    return {"strongroom:repository": repo_id, "strongroom:slot": slot_id}


def _client(region: str | None, endpoint: str | None,
            credentials: Mapping[str, str] | None = None) -> Any:
    """A KMS client; ``credentials`` (aws_access_key_id, aws_secret_access_key,
    aws_session_token) override the AWS chain."""
    import boto3
    from botocore.config import Config

    return boto3.client("kms", region_name=region, endpoint_url=endpoint,
                        config=Config(connect_timeout=5, read_timeout=20,
                                      retries={"max_attempts": 3, "mode": "standard"}),
                        **dict(credentials or {}))


def _call(what: str, key_id: str, fn: Any, **kwargs: Any) -> Any:
    """Call a KMS API; every failure becomes one line without the plaintext or credentials."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    try:
        return fn(**kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in WRONG_KEY_CODES:
            raise WrongKey(f"KMS key {key_id} does not open this key slot ({code})") from None
        if code == "NotFoundException":
            raise KeyServiceError(f"KMS key {key_id} does not exist (deleted?)") from None
        if code == "DisabledException":
            raise KeyServiceError(f"KMS key {key_id} is disabled") from None
        if code == "KMSInvalidStateException":
            raise KeyServiceError(f"KMS key {key_id} cannot be used in its state (disabled "
                                  "or scheduled for deletion)") from None
        if code in ("AccessDeniedException", "UnrecognizedClientException",
                    "InvalidSignatureException", "ExpiredTokenException"):
            raise KeyServiceError(f"KMS denied {what} with key {key_id} ({code})") from None
        raise KeyServiceError(f"KMS failed to {what} with key {key_id} ({code or 'error'})"
                              ) from None
    except NoCredentialsError:
        raise KeyServiceError("no AWS credentials for KMS (set AWS_PROFILE or the AWS_* "
                              "variables)") from None
    except NoRegionError:
        raise KeyServiceError("no AWS region for KMS (set AWS_DEFAULT_REGION or "
                              "--kms-region)") from None
    except ConnectionError as exc:
        raise KeyServiceUnreachable(f"KMS is unreachable ({type(exc).__name__})") from None
    except BotoCoreError as exc:
        raise KeyServiceError(f"KMS failed to {what} with key {key_id} "
                              f"({type(exc).__name__})") from None


def _check_state(client: Any, key_id: str) -> None:
    """Name a disabled or deleted key clearly. Best effort: a role allowed to decrypt but not
    to describe keys goes on to the decrypt call, which refuses such keys itself."""
    try:
        meta = _call("describe", key_id, client.describe_key, KeyId=key_id)["KeyMetadata"]
    except KeyServiceError as exc:
        if "denied" in str(exc):
            return
        raise
    state = meta.get("KeyState", "Enabled")
    if state in UNUSABLE_STATES:
        raise KeyServiceError(f"KMS key {key_id} is {UNUSABLE_STATES[state]}")


def make_kms_slot(master: MasterKey, repo_id: str, key_id: str, region: str | None = None,
                  endpoint: str | None = None, label: str = "", slot_id: str | None = None
                  ) -> KeySlot:
    """Encrypt ``master`` under the KMS key ``key_id`` (ARN, key id or alias)."""
    client = _client(region, endpoint)
    _check_state(client, key_id)
    slot = new_slot("kms", label, slot_id, kms=KmsParams(key_id=key_id, region=region or
                                                 client.meta.region_name, endpoint=endpoint))
    resp = _call("encrypt", key_id, client.encrypt, KeyId=key_id, Plaintext=master.secret,
                 EncryptionContext=context(repo_id, slot.id))
    assert slot.kms is not None
    slot.kms.key_id = resp.get("KeyId") or key_id  # the key's ARN: an alias may move
    slot.wrapped = base64.b64encode(resp["CiphertextBlob"]).decode()
    return slot


class KmsUnlocker:
    """Opens ``kms`` slots with the ambient AWS identity (or ``credentials``); ``endpoint`` and
    ``region`` override the slot's; ``key_id`` (ARN, id or alias) limits it to that key's
    slots."""

    kind: SlotType = "kms"

    def __init__(self, endpoint: str | None = None, region: str | None = None,
                 credentials: Mapping[str, str] | None = None, key_id: str | None = None
                 ) -> None:
        self.endpoint = endpoint
        self.region = region
        self.credentials = dict(credentials or {})
        self.key_id = key_id
        self._arns: dict[str, str] = {}  # alias -> the key ARN it names now

    def describe(self) -> str:
        return f"KMS key {self.key_id}" if self.key_id else "KMS"

    def _meant_for(self, client: Any, slot_key: str) -> bool:
        """Whether the slot's key (an ARN) is ``key_id`` (an ARN, a key id or an alias)."""
        wanted = self.key_id
        if not wanted or wanted == slot_key or slot_key.endswith(f":key/{wanted}"):
            return True
        if "alias/" not in wanted:
            return False
        if wanted not in self._arns:
            meta = _call("describe", wanted, client.describe_key, KeyId=wanted)["KeyMetadata"]
            self._arns[wanted] = str(meta.get("Arn", ""))
        return self._arns[wanted] == slot_key

    def unwrap(self, slot: KeySlot, repo_id: str) -> MasterKey | None:
        params = slot.kms
        if params is None:
            return None
        client = _client(self.region or params.region, self.endpoint or params.endpoint,
                         self.credentials)
        if not self._meant_for(client, params.key_id):
            return None
        _check_state(client, params.key_id)
        try:
            blob = base64.b64decode(slot.wrapped)
        except ValueError:
            raise WrongKey(f"key slot {slot.id} is damaged (bad base64)") from None
        resp = _call("decrypt", params.key_id, client.decrypt, CiphertextBlob=blob,
                     KeyId=params.key_id, EncryptionContext=context(repo_id, slot.id))
        secret = resp["Plaintext"]
        if len(secret) != MASTER_SIZE:
            raise WrongKey(f"key slot {slot.id} decrypted to a value of the wrong size")
        return MasterKey(bytes(secret))

    def close(self) -> None:
        """boto3 clients need no closing."""
