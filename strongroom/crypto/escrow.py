"""``escrow`` key slots: the master key sealed to an escrow holder's X25519 public key.

Anyone holding only the public key can add the slot; only the offline private key opens it.
Ephemeral-static X25519, KEK = HKDF-SHA256(shared secret, salt = ephemeral public key ||
recipient public key, info = ``strongroom/v1/escrow``), then AES-256-GCM with the slot's AAD.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from strongroom.crypto.aead import SealError, open_sealed, seal
from strongroom.crypto.master import MASTER_SIZE, MasterKey
from strongroom.crypto.slots import EscrowParams, KeySlot, SlotType, new_slot, read_secret_file
from strongroom.errors import ConfigError, WrongKey

PRIVATE_NAME = "escrow-private.pem"
PUBLIC_NAME = "escrow-public.pem"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def fingerprint(public: X25519PublicKey) -> str:
    """SHA-256 of the raw public key, first 16 bytes in hex: names the recipient in a slot."""
    return hashlib.sha256(public.public_bytes(*_RAW)).hexdigest()[:32]


def passphrase_from(passphrase_file: Path | None, env: Mapping[str, str] | None = None
                    ) -> str | None:
    """The private key's passphrase: a file, STRONGROOM_ESCROW_PASSPHRASE(_FILE), or none."""
    env = os.environ if env is None else env
    if passphrase_file is None and env.get("STRONGROOM_ESCROW_PASSPHRASE_FILE"):
        passphrase_file = Path(env["STRONGROOM_ESCROW_PASSPHRASE_FILE"])
    if passphrase_file is not None:
        return read_secret_file(passphrase_file, "passphrase")
    return env.get("STRONGROOM_ESCROW_PASSPHRASE") or None


def generate_keypair(out_dir: Path, passphrase: str | None = None) -> tuple[Path, Path]:
    """Write a new keypair into ``out_dir``: the private key 0600 (encrypted with the
    passphrase if given), the public key 0644. Existing files are never overwritten."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / PRIVATE_NAME, out_dir / PUBLIC_NAME
    for path in (private_path, public_path):
        if path.exists():
            raise ConfigError(f"{path} already exists; refusing to overwrite an escrow key")
    key = X25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
        else serialization.NoEncryption())
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    for path, data, mode in ((private_path, private_pem, 0o600), (public_path, public_pem,
                                                                   0o644)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return private_path, public_path


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_public_key(path: Path) -> X25519PublicKey:
    """An escrow holder's public key (PEM); a private key file is refused."""
    data = _read(path, "escrow public key")
    if b"PRIVATE KEY" in data:
        raise ConfigError(f"{path} is a private key: give the escrow holder's PUBLIC key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise ConfigError(f"{path} is not a PEM public key") from None
    if not isinstance(key, X25519PublicKey):
        raise ConfigError(f"{path} is not an X25519 public key")
    return key


def load_private_key(path: Path, passphrase: str | None) -> X25519PrivateKey:
    """The escrow holder's private key; a wrong or missing passphrase is WrongKey."""
    data = _read(path, "escrow private key")
    try:
        key = serialization.load_pem_private_key(
            data, passphrase.encode() if passphrase else None)
    except TypeError:
        if passphrase is None:
            raise ConfigError(f"escrow key {path} is passphrase-protected: set "
                              "STRONGROOM_ESCROW_PASSPHRASE_FILE or give "
                              "--escrow-passphrase-file") from None
        raise ConfigError(f"escrow key {path} is not passphrase-protected") from None
    except ValueError:
        if b"ENCRYPTED" in data:
            raise WrongKey(f"wrong passphrase for escrow key {path}") from None
        raise ConfigError(f"{path} is not a PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise ConfigError(f"{path} is not an X25519 private key")
    return key


def _kek(shared: bytes, ephemeral: bytes, recipient: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient,
                       info=b"strongroom/v1/escrow").derive(shared))


def make_escrow_slot(master: MasterKey, repo_id: str, recipient: X25519PublicKey,
                     label: str = "", slot_id: str | None = None) -> KeySlot:
    """Seal ``master`` to ``recipient``; needs no secret of the escrow holder."""
    ephemeral = X25519PrivateKey.generate()
    eph_raw = ephemeral.public_key().public_bytes(*_RAW)
    slot = new_slot("escrow", label, slot_id, escrow=EscrowParams(
        ephemeral_public=base64.b64encode(eph_raw).decode(), recipient=fingerprint(recipient)))
    kek = _kek(ephemeral.exchange(recipient), eph_raw, recipient.public_bytes(*_RAW))
    slot.wrapped = base64.b64encode(seal(kek, master.secret, slot.aad(repo_id))).decode()
    return slot


class EscrowUnlocker:
    """Opens ``escrow`` slots made for this private key's public half."""

    kind: SlotType = "escrow"

    def __init__(self, path: Path, passphrase: Callable[[], str | None]) -> None:
        self.path = path
        self._passphrase = passphrase
        self._key: X25519PrivateKey | None = None

    def describe(self) -> str:
        return f"escrow key {self.path}"

    def _private(self) -> X25519PrivateKey:
        if self._key is None:
            self._key = load_private_key(self.path, self._passphrase())
        return self._key

    def unwrap(self, slot: KeySlot, repo_id: str) -> MasterKey | None:
        params = slot.escrow
        if params is None:
            return None
        key = self._private()
        public = key.public_key()
        if params.recipient != fingerprint(public):
            return None  # sealed to another escrow holder
        try:
            eph_raw = base64.b64decode(params.ephemeral_public)
            ephemeral = X25519PublicKey.from_public_bytes(eph_raw)
            kek = _kek(key.exchange(ephemeral), eph_raw, public.public_bytes(*_RAW))
            secret = open_sealed(kek, base64.b64decode(slot.wrapped), slot.aad(repo_id))
        except (ValueError, SealError):
            raise WrongKey(f"escrow key {self.path} does not open key slot {slot.id} (slot "
                           "damaged or altered)") from None
        if len(secret) != MASTER_SIZE:
            raise WrongKey(f"key slot {slot.id} unwrapped to a value of the wrong size")
        return MasterKey(secret)

    def close(self) -> None:
        self._key = None
