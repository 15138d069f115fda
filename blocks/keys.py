"""Key block: how a flow opens a repository: a password, a key file, a PKCS#11 token (HSM) or
a KMS key. An escrow private key has no block: it is the offline break-glass key, used by hand
(``strongroom key recover``), never by a scheduled flow.

Fields, validators and the unlockers they build are the engine's plain models
(:mod:`strongroom.crypto.key_models`, shared with the platform file); this module only makes
them a Prefect block.
"""

from __future__ import annotations

from prefect.blocks.core import Block

from strongroom.crypto.key_models import KINDS, KeyKind, KeyModel, KmsKey, Pkcs11Key

__all__ = ["KINDS", "KeyKind", "KmsKey", "Pkcs11Key", "RepositoryKey"]


class RepositoryKey(Block, KeyModel):
    """A repository key slot credential: exactly one of a password, a key file, a PKCS#11
    token or a KMS key."""

    _block_type_name = "Strongroom Repository Key"
    _block_type_slug = "strongroom-repository-key"
