"""Errors of the services that hold a key slot's key (PKCS#11 token, KMS)."""

from __future__ import annotations

from strongroom.errors import StrongroomError, WrongKey


class KeyServiceError(StrongroomError):
    """The token or KMS that holds a slot's key is missing, refused the operation, or its key
    is disabled or scheduled for deletion: the credentials may be right, the service is not."""

    exit_code = 19


class KeyServiceUnreachable(KeyServiceError):
    """The KMS endpoint did not answer (refused, timed out): waiting and retrying may cure it."""


class WrongPin(WrongKey):
    """The token refused the PIN: never retried on the token's other slots (it may lock)."""
