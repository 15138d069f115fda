"""The repository's master key and the subkeys derived from it with HKDF-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASTER_SIZE = 64


def _derive(master: bytes, label: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                info=b"strongroom/v1/" + label).derive(master)


@dataclass(frozen=True)
class MasterKey:
    """64 random bytes; every working key is derived from them, so slots only wrap these."""

    secret: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(MASTER_SIZE))

    @property
    def encryption_key(self) -> bytes:
        return _derive(self.secret, b"encryption", 32)

    @property
    def id_key(self) -> bytes:
        """Key of the keyed BLAKE3 hash that names blobs."""
        return _derive(self.secret, b"blob-id", 32)

    @property
    def chunker_seed(self) -> int:
        """Secret 63-bit seed of the FastCDC gear table (non-zero)."""
        return (int.from_bytes(_derive(self.secret, b"chunker", 8), "little") >> 1) or 1

    @property
    def config_mac_key(self) -> bytes:
        return _derive(self.secret, b"config-mac", 32)

    def aead(self) -> AESGCM:
        return AESGCM(self.encryption_key)

    def mac(self, data: bytes) -> str:
        return hmac.new(self.config_mac_key, data, hashlib.sha256).hexdigest()
