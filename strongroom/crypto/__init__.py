"""Cryptography: the master key, its key slots, and authenticated encryption of stored objects."""

from strongroom.crypto.aead import open_sealed, seal
from strongroom.crypto.master import MasterKey

__all__ = ["MasterKey", "seal", "open_sealed"]
