"""Sealed repository settings (the second factor's secret, the stored retention policy).

Each setting is one object ``settings/<name>``: ``SRS1 || nonce || AES-256-GCM(JSON)`` under
the repository's stable ``settings`` subkey (no key rotation or migration changes it), with
the repository id and the name bound in as associated data, so a setting cannot be moved to
another name or repository, read without the key, or altered unnoticed.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.errors import IntegrityError
from strongroom.storage.base import MissingObject

if TYPE_CHECKING:
    from strongroom.repository import Repository

PREFIX = "settings/"
MAGIC = b"SRS1"


def _aead(repo: Repository) -> AESGCM:
    return AESGCM(repo.stable_key("settings"))


def _aad(repo: Repository, name: str) -> bytes:
    return f"strongroom/settings/{repo.id}/{name}".encode()


def load(repo: Repository, name: str) -> dict[str, Any] | None:
    """The setting ``name``, or None when it was never set (or was removed)."""
    try:
        raw = repo.backend.get(PREFIX + name)
    except MissingObject:
        return None
    if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + 12 + 16:
        raise IntegrityError(f"setting {name} is damaged (not a sealed setting)")
    nonce, sealed = raw[len(MAGIC):len(MAGIC) + 12], raw[len(MAGIC) + 12:]
    try:
        doc = json.loads(_aead(repo).decrypt(nonce, sealed, _aad(repo, name)))
    except (InvalidTag, ValueError):
        raise IntegrityError(f"setting {name} is damaged or was altered") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"setting {name} is damaged (not an object)")
    return doc


def save(repo: Repository, name: str, doc: dict[str, Any]) -> None:
    nonce = os.urandom(12)
    plain = json.dumps(doc, sort_keys=True).encode()
    repo.backend.put(PREFIX + name, MAGIC + nonce + _aead(repo).encrypt(nonce, plain,
                                                                          _aad(repo, name)))


def remove(repo: Repository, name: str) -> None:
    if repo.backend.exists(PREFIX + name):
        repo.backend.delete(PREFIX + name)
