"""Key slots: the master key wrapped under a passphrase (Argon2id), a key file (HKDF), a key
inside a PKCS#11 token, a KMS customer key, or an escrow holder's public key.

A slot is a small JSON document stored at ``keys/<slot id>``. Adding, removing or re-wrapping a
slot never touches data: the master key stays the same. This module holds the slot document and
the password and key-file kinds; :mod:`strongroom.crypto.pkcs11_slot`,
:mod:`strongroom.crypto.kms_slot` and :mod:`strongroom.crypto.escrow` hold the others.
"""

from __future__ import annotations

import base64
import getpass
import os
import secrets
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from argon2.exceptions import Argon2Error
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel

from strongroom.crypto.aead import SealError, open_sealed, seal
from strongroom.crypto.master import MasterKey
from strongroom.errors import ConfigError, IntegrityError

SlotType = Literal["password", "keyfile", "pkcs11", "kms", "escrow"]
SecretSlotType = Literal["password", "keyfile"]


def _default_memory_kib() -> int:
    """Argon2id memory; STRONGROOM_ARGON2_MEMORY_KIB lowers it (for test suites only)."""
    return int(os.environ.get("STRONGROOM_ARGON2_MEMORY_KIB", 65536))


class Argon2Params(BaseModel):
    name: Literal["argon2id"] = "argon2id"
    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 2
    salt: str


class Pkcs11Params(BaseModel):
    """Where the wrapping key lives: token and key labels (the module path is a hint)."""

    module: str = ""
    token: str
    key: str
    mechanism: Literal["aes-256-gcm"] = "aes-256-gcm"
    iv: str


class KmsParams(BaseModel):
    """The KMS customer key that encrypted the master key."""

    key_id: str
    region: str | None = None
    endpoint: str | None = None


class EscrowParams(BaseModel):
    """Ephemeral-static X25519: the ephemeral public key and the recipient's fingerprint."""

    algorithm: Literal["x25519-hkdf-sha256-aes-256-gcm"] = "x25519-hkdf-sha256-aes-256-gcm"
    ephemeral_public: str
    recipient: str


class KeySlot(BaseModel):
    """One wrapping of the master key."""

    version: int = 1
    id: str
    type: SlotType
    label: str = ""
    created: datetime
    host: str
    user: str
    kdf: Argon2Params | None = None
    keyfile_salt: str | None = None
    pkcs11: Pkcs11Params | None = None
    kms: KmsParams | None = None
    escrow: EscrowParams | None = None
    wrapped: str

    def _aad(self, repo_id: str) -> bytes:
        return f"strongroom-keyslot/{repo_id}/{self.id}/{self.type}".encode()

    def aad(self, repo_id: str) -> bytes:
        """Associated data binding a wrapping to this repository, slot id and kind."""
        return self._aad(repo_id)

    def detail(self) -> str:
        """Where this slot's key lives, for listings (never a secret)."""
        if self.pkcs11:
            return f"token {self.pkcs11.token!r} key {self.pkcs11.key!r}"
        if self.kms:
            return f"kms {self.kms.key_id}"
        if self.escrow:
            return f"escrow recipient {self.escrow.recipient}"
        return ""

    def dump(self) -> bytes:
        """The stored JSON; fields of other kinds are left out."""
        return self.model_dump_json(indent=1, exclude_none=True).encode()


def new_slot(slot_type: SlotType, label: str = "", slot_id: str | None = None,
             **fields: object) -> KeySlot:
    """A slot document with a fresh id (or ``slot_id``: a slot re-wrapped in place), creation
    time, host and user; ``wrapped`` still empty."""
    return KeySlot(id=slot_id or secrets.token_hex(8), type=slot_type, label=label,
                   created=datetime.now(UTC), host=socket.gethostname(),
                   user=getpass.getuser(), wrapped="", **fields)  # type: ignore[arg-type]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def read_keyfile(path: Path) -> bytes:
    """The secret bytes of a key file (at least 32 bytes)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from None
    if len(data.strip()) < 32:
        raise ConfigError(f"key file {path} is too short (needs at least 32 bytes)")
    return data.strip()


def read_secret_file(path: Path, what: str) -> str:
    """The first line of a PIN or passphrase file."""
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} file {path} is not UTF-8 text") from None


def write_new_keyfile(path: Path) -> None:
    """Create a key file with 64 random bytes (base64), readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64encode(os.urandom(64)) + b"\n")


class SlotDamaged(IntegrityError):
    """A key slot whose fields cannot be used (bad base64, KDF parameters, missing salt)."""


def _kek(slot_type: SecretSlotType | SlotType, secret: bytes, kdf: Argon2Params | None,
         keyfile_salt: str | None) -> bytes:
    if slot_type == "password":
        if kdf is None:
            raise ValueError("password slot without kdf")
        return hash_secret_raw(secret, _unb64(kdf.salt), time_cost=kdf.time_cost,
                               memory_cost=kdf.memory_kib, parallelism=kdf.parallelism,
                               hash_len=32, type=Type.ID)
    if keyfile_salt is None:
        raise ValueError("key file slot without keyfile_salt")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_unb64(keyfile_salt),
                info=b"strongroom/v1/keyfile").derive(secret)


def make_slot(master: MasterKey, repo_id: str, slot_type: SecretSlotType, secret: bytes,
              label: str = "", slot_id: str | None = None) -> KeySlot:
    """Wrap ``master`` under a password or key file secret."""
    if slot_type not in ("password", "keyfile"):
        raise ValueError(f"make_slot makes password and key file slots, not {slot_type}")
    kdf = None
    keyfile_salt = None
    if slot_type == "password":
        kdf = Argon2Params(salt=_b64(os.urandom(16)), memory_kib=_default_memory_kib())
    else:
        keyfile_salt = _b64(os.urandom(16))
    slot = new_slot(slot_type, label, slot_id, kdf=kdf, keyfile_salt=keyfile_salt)
    kek = _kek(slot_type, secret, kdf, keyfile_salt)
    slot.wrapped = _b64(seal(AESGCM(kek), master.secret, slot._aad(repo_id)))
    return slot


def unwrap(slot: KeySlot, repo_id: str, secret: bytes) -> MasterKey | None:
    """The master key if ``secret`` opens ``slot``, else None; SlotDamaged if the slot's
    fields are unusable (so the caller can go on to the other slots)."""
    try:
        kek = _kek(slot.type, secret, slot.kdf, slot.keyfile_salt)
        wrapped = _unb64(slot.wrapped)
    except (ValueError, Argon2Error) as exc:
        raise SlotDamaged(f"key slot {slot.id} is damaged ({exc})") from None
    try:
        return MasterKey(open_sealed(AESGCM(kek), wrapped, slot._aad(repo_id)))
    except SealError:
        return None
