"""Key slots: the master key wrapped under a passphrase (Argon2id) or a key file (HKDF).

A slot is a small JSON document stored at ``keys/<slot id>``. Adding, removing or re-wrapping a
slot never touches data: the master key stays the same.
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

SlotType = Literal["password", "keyfile"]


def _default_memory_kib() -> int:
    """Argon2id memory; STRONGROOM_ARGON2_MEMORY_KIB lowers it (for test suites only)."""
    return int(os.environ.get("STRONGROOM_ARGON2_MEMORY_KIB", 65536))


class Argon2Params(BaseModel):
    name: Literal["argon2id"] = "argon2id"
    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 2
    salt: str


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
    wrapped: str

    def _aad(self, repo_id: str) -> bytes:
        return f"strongroom-keyslot/{repo_id}/{self.id}/{self.type}".encode()


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


def write_new_keyfile(path: Path) -> None:
    """Create a key file with 64 random bytes (base64), readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64encode(os.urandom(64)) + b"\n")


class SlotDamaged(IntegrityError):
    """A key slot whose fields cannot be used (bad base64, KDF parameters, missing salt)."""


def _kek(slot_type: SlotType, secret: bytes, kdf: Argon2Params | None,
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


def make_slot(master: MasterKey, repo_id: str, slot_type: SlotType, secret: bytes,
              label: str = "") -> KeySlot:
    """Wrap ``master`` under a password or key file secret."""
    kdf = None
    keyfile_salt = None
    if slot_type == "password":
        kdf = Argon2Params(salt=_b64(os.urandom(16)), memory_kib=_default_memory_kib())
    else:
        keyfile_salt = _b64(os.urandom(16))
    slot = KeySlot(id=secrets.token_hex(8), type=slot_type, label=label,
                   created=datetime.now(UTC), host=socket.gethostname(),
                   user=getpass.getuser(), kdf=kdf, keyfile_salt=keyfile_salt, wrapped="")
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
