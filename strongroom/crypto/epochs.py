"""Data-key epochs: the keys that seal a repository's objects, each wrapped under the master key.

Hierarchy (format 2): key slots unlock the master key; the master key unwraps the keyring
(``keyring/base``: the blob-id key, chunker seed and config-MAC key, which never change, and
``keyring/epoch-<n>``: one AES-256-GCM key per epoch). An object sealed under epoch ``n``
starts with ``EPOCH_MAGIC || u32le(n)``; that header is bound into the AEAD's associated data.
Objects of a format-1 repository carry no header: they are epoch 0, sealed under the key the
format-1 master derived (a migrated repository keeps it as ``keyring/epoch-00000000``).

Rotating the data key (a new epoch) writes one small object; rotating the master re-wraps the
keyring objects and the slots. Neither touches data.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import socket
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from strongroom.crypto.aead import SealError, open_sealed, seal
from strongroom.crypto.master import MasterKey
from strongroom.errors import IntegrityError, WrongKey

EPOCH_MAGIC = b"SRE\x01"
HEADER = struct.Struct("<4sI")
KEYRING_PREFIX = "keyring/"
BASE_KEY = "keyring/base"
LEGACY_EPOCH = 0  # format-1 objects: no header


def epoch_key_name(epoch: int) -> str:
    return f"{KEYRING_PREFIX}epoch-{epoch:08d}"


def _derive(master: MasterKey, label: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                info=b"strongroom/v2/" + label).derive(master.secret)


def master_id(master: MasterKey) -> str:
    """A fingerprint naming a master key in keyring objects (derived; reveals nothing)."""
    return _derive(master, b"master-id", 8).hex()


def _wrap_key(master: MasterKey) -> AESGCM:
    return AESGCM(_derive(master, b"keyring", 32))


def _aad(repo_id: str, name: str) -> bytes:
    return f"strongroom/v2/keyring/{repo_id}/{name}".encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# Subkeys a format-1 master derived for records that must stay verifiable after a migration
# and a master rotation (the audit log's MAC key): copied into the base keys by the migration.
V1_STABLE_LABELS = ("audit-mac", "settings")


def v1_subkey(master: MasterKey, label: str, length: int = 32) -> bytes:
    """HKDF-SHA256(master, info = "strongroom/v1/" + label): format 1's derivation."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                info=b"strongroom/v1/" + label.encode()).derive(master.secret)


@dataclass(frozen=True)
class BaseKeys:
    """Keys that never rotate: renaming blobs or re-chunking would defeat deduplication, and
    records MACed under a stable key (audit) must verify after any rotation."""

    id_key: bytes = field(repr=False)
    chunker_seed: int = field(repr=False)
    config_mac_key: bytes = field(repr=False)
    root: bytes = field(repr=False, default=b"")  # stable subkeys: HKDF(root, label)
    extra: dict[str, bytes] = field(repr=False, default_factory=dict)  # migrated v1 subkeys

    @classmethod
    def generate(cls) -> BaseKeys:
        return cls(os.urandom(32), (int.from_bytes(os.urandom(8), "little") >> 1) or 1,
                   os.urandom(32), os.urandom(32))

    @classmethod
    def of_format1(cls, master: MasterKey) -> BaseKeys:
        """The keys a format-1 master derives (so a migrated repository keeps its blob ids)."""
        return cls(master.id_key, master.chunker_seed, master.config_mac_key, os.urandom(32),
                   {label: v1_subkey(master, label) for label in V1_STABLE_LABELS})

    def stable_key(self, label: str, length: int = 32) -> bytes:
        """A subkey no rotation changes: a migrated format-1 one, else HKDF of the root."""
        if label in self.extra and length == len(self.extra[label]):
            return self.extra[label]
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                    info=b"strongroom/v2/stable/" + label.encode()).derive(self.root)

    def dump(self) -> bytes:
        return json.dumps({"id_key": _b64(self.id_key), "chunker_seed": self.chunker_seed,
                           "config_mac_key": _b64(self.config_mac_key),
                           "root": _b64(self.root),
                           "extra": {k: _b64(v) for k, v in self.extra.items()}}).encode()

    @classmethod
    def load(cls, raw: bytes) -> BaseKeys:
        doc = json.loads(raw)
        return cls(base64.b64decode(doc["id_key"]), int(doc["chunker_seed"]),
                   base64.b64decode(doc["config_mac_key"]), base64.b64decode(doc["root"]),
                   {k: base64.b64decode(v) for k, v in doc.get("extra", {}).items()})


@dataclass
class KeyringObject:
    """One stored keyring document: a secret wrapped under one or more master keys."""

    name: str  # "base" or "epoch-<n>"
    meta: dict[str, Any]
    wrapped: dict[str, str]  # master id -> base64 sealed secret

    @property
    def key(self) -> str:
        return KEYRING_PREFIX + self.name

    def dump(self) -> bytes:
        return json.dumps({**self.meta, "wrapped": self.wrapped}, indent=1,
                          sort_keys=True).encode()

    @classmethod
    def parse(cls, key: str, raw: bytes) -> KeyringObject:
        try:
            doc = json.loads(raw)
            wrapped = doc.pop("wrapped")
            if not isinstance(wrapped, dict):
                raise ValueError
        except (ValueError, KeyError, AttributeError):
            raise IntegrityError(f"keyring object {key} is damaged") from None
        return cls(key.removeprefix(KEYRING_PREFIX), doc, wrapped)

    def wrap(self, master: MasterKey, repo_id: str, secret: bytes) -> None:
        self.wrapped[master_id(master)] = _b64(seal(_wrap_key(master), secret,
                                                    _aad(repo_id, self.name)))

    def unwrap(self, master: MasterKey, repo_id: str) -> bytes:
        sealed = self.wrapped.get(master_id(master))
        if sealed is None:
            raise WrongKey(f"keyring object {self.key} is not wrapped under this master key "
                           "(an unfinished master rotation? open with another key slot)")
        try:
            return open_sealed(_wrap_key(master), base64.b64decode(sealed),
                               _aad(repo_id, self.name))
        except (SealError, ValueError):
            raise IntegrityError(f"keyring object {self.key} is damaged") from None

    @property
    def epoch(self) -> int:
        return int(self.meta["epoch"])

    @property
    def retired(self) -> str | None:
        return self.meta.get("retired")


def new_epoch_object(epoch: int, master: MasterKey, repo_id: str, secret: bytes,
                     legacy: bool = False) -> KeyringObject:
    """The keyring document of a new epoch (``legacy``: epoch 0 of a migrated repository)."""
    meta: dict[str, Any] = {"version": 2, "kind": "epoch", "epoch": epoch,
                            "created": datetime.now(UTC).isoformat(timespec="seconds"),
                            "host": socket.gethostname(), "user": getpass.getuser()}
    if legacy:
        meta["legacy"] = True
    obj = KeyringObject(f"epoch-{epoch:08d}", meta, {})
    obj.wrap(master, repo_id, secret)
    return obj


def new_base_object(master: MasterKey, repo_id: str, base: BaseKeys) -> KeyringObject:
    obj = KeyringObject("base", {"version": 2, "kind": "base"}, {})
    obj.wrap(master, repo_id, base.dump())
    return obj


@dataclass
class EpochInfo:
    """What ``key list`` shows about an epoch (never the key)."""

    epoch: int
    created: str
    retired: str | None = None
    legacy: bool = False
    other_masters: int = 0  # wrappings under master keys other than the one in use


class Keyring:
    """Seals under the current epoch and opens objects of any epoch whose key it holds.

    Duck-types the ``seal``/``open`` pair the repository's codec uses; one instance is shared by
    every writer of an open repository, so :meth:`replace` makes them all seal under a newer
    epoch at once.
    """

    def __init__(self, keys: dict[int, bytes], current: int, legacy: bytes | None = None,
                 retired: set[int] | None = None, infos: list[EpochInfo] | None = None) -> None:
        self._aeads = {n: AESGCM(k) for n, k in keys.items()}
        self._legacy = AESGCM(legacy) if legacy is not None else None
        self.current = current
        self.retired = retired or set()
        self.infos = infos or []

    @classmethod
    def format1(cls, master: MasterKey) -> Keyring:
        """A format-1 repository: one headerless epoch 0 under the master-derived key."""
        return cls({}, LEGACY_EPOCH, legacy=master.encryption_key,
                   infos=[EpochInfo(0, "", legacy=True)])

    @property
    def epochs(self) -> list[int]:
        """Epochs whose keys are held, oldest first."""
        held = set(self._aeads) | ({LEGACY_EPOCH} if self._legacy is not None else set())
        return sorted(held)

    def replace(self, other: Keyring) -> None:
        """Take the keys and current epoch of a freshly loaded keyring."""
        self._aeads, self._legacy = other._aeads, other._legacy
        self.retired, self.infos, self.current = other.retired, other.infos, other.current

    def seal(self, plaintext: bytes | memoryview, aad: bytes) -> bytes:
        current = self.current
        if current == LEGACY_EPOCH:
            if self._legacy is None:
                raise SealError("no key to seal with")
            return seal(self._legacy, plaintext, aad)
        header = HEADER.pack(EPOCH_MAGIC, current)
        return header + seal(self._aeads[current], plaintext, header + aad)

    def open(self, sealed: bytes | memoryview, aad: bytes) -> bytes:
        epoch = epoch_of(sealed)
        if epoch != LEGACY_EPOCH:
            aead = self._aeads.get(epoch)
            if aead is not None:
                try:
                    head = bytes(memoryview(sealed)[:HEADER.size])
                    return open_sealed(aead, memoryview(sealed)[HEADER.size:], head + aad)
                except SealError:
                    if self._legacy is None:
                        raise
            elif self._legacy is None:
                state = "retired" if epoch in self.retired else "unknown"
                raise SealError(f"sealed under epoch {epoch}, whose key is {state}")
        if self._legacy is None:
            raise SealError("sealed under epoch 0 (format 1), whose key is retired")
        return open_sealed(self._legacy, sealed, aad)


def epoch_of(sealed: bytes | memoryview) -> int:
    """The epoch named by a sealed object's header (0: no header, a format-1 object)."""
    if len(sealed) >= HEADER.size and bytes(memoryview(sealed)[:4]) == EPOCH_MAGIC:
        return HEADER.unpack_from(sealed)[1]
    return LEGACY_EPOCH


def load_keyring(objects: list[KeyringObject], master: MasterKey, repo_id: str
                 ) -> tuple[BaseKeys, Keyring]:
    """Unwrap the base keys and every live epoch key; the newest epoch is the current one."""
    base_obj = next((o for o in objects if o.name == "base"), None)
    if base_obj is None:
        raise IntegrityError("the repository's keyring has no base object (keyring/base)")
    base = BaseKeys.load(base_obj.unwrap(master, repo_id))
    keys: dict[int, bytes] = {}
    legacy: bytes | None = None
    retired: set[int] = set()
    infos: list[EpochInfo] = []
    mine = master_id(master)
    for obj in objects:
        if obj.name == "base":
            continue
        info = EpochInfo(obj.epoch, str(obj.meta.get("created", "")), obj.retired,
                         bool(obj.meta.get("legacy")),
                         sum(1 for m in obj.wrapped if m != mine))
        infos.append(info)
        if obj.retired:
            retired.add(obj.epoch)
            continue
        if mine not in obj.wrapped:
            continue  # written by a holder of another master (never current for us)
        secret = obj.unwrap(master, repo_id)
        if obj.epoch == LEGACY_EPOCH:
            legacy = secret
        else:
            keys[obj.epoch] = secret
    if not keys and legacy is None:
        raise IntegrityError("the repository's keyring holds no usable epoch key")
    current = max(keys) if keys else LEGACY_EPOCH
    infos.sort(key=lambda i: i.epoch)
    return base, Keyring(keys, current, legacy, retired, infos)
