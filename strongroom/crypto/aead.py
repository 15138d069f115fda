"""AES-256-GCM sealing of stored objects: ``nonce(12) || ciphertext || tag(16)``."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_SIZE = 12
OVERHEAD = NONCE_SIZE + 16


class SealError(Exception):
    """Authentication failed: the object is corrupt, tampered or sealed under another key."""


def seal(aead: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` with ``aad`` bound in."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + aead.encrypt(nonce, plaintext, aad)


def open_sealed(aead: AESGCM, sealed: bytes | memoryview, aad: bytes) -> bytes:
    """Decrypt a sealed object; raise :class:`SealError` if anything was altered."""
    if len(sealed) < OVERHEAD:
        raise SealError("truncated")
    view = memoryview(sealed)
    try:
        return aead.decrypt(bytes(view[:NONCE_SIZE]), view[NONCE_SIZE:], aad)
    except InvalidTag:
        raise SealError("authentication failed") from None
