"""Unlockers: credentials other than a password or key file (a PKCS#11 token, a KMS key, an
escrow private key), each able to unwrap the slots of its kind, and the loop that tries them."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from strongroom.crypto.errors import KeyServiceError, WrongPin
from strongroom.crypto.escrow import EscrowUnlocker, passphrase_from
from strongroom.crypto.kms_slot import KmsUnlocker
from strongroom.crypto.master import MasterKey
from strongroom.crypto.pkcs11_slot import Pkcs11Unlocker, TokenRef, pin_from
from strongroom.crypto.slots import KeySlot, SlotType
from strongroom.errors import ConfigError, StrongroomError, WrongKey

log = logging.getLogger("strongroom")

PKCS11_ENV = ("STRONGROOM_PKCS11_MODULE", "STRONGROOM_PKCS11_TOKEN", "STRONGROOM_PKCS11_KEY",
              "STRONGROOM_PKCS11_PIN", "STRONGROOM_PKCS11_PIN_FILE")
KMS_ENV = ("STRONGROOM_KMS", "STRONGROOM_KMS_ENDPOINT")
ESCROW_ENV = ("STRONGROOM_ESCROW_KEY",)


class Unlocker(Protocol):
    """A credential that may open slots of one kind."""

    kind: SlotType

    def describe(self) -> str:
        """What the credential is, for error messages (never a secret)."""
        ...

    def unwrap(self, slot: KeySlot, repo_id: str) -> MasterKey | None:
        """The master key, None if this credential is not meant for ``slot``; WrongKey if it
        is and does not open it; KeyServiceError/ConfigError if the service cannot be used."""
        ...

    def close(self) -> None:
        """Release sessions and handles."""
        ...


def unlock_configured(env: Mapping[str, str] | None = None) -> bool:
    """True if the environment names a token, a KMS or an escrow key to open with."""
    env = os.environ if env is None else env
    return any(env.get(name) for name in PKCS11_ENV + KMS_ENV + ESCROW_ENV)


def unlockers_from_env(env: Mapping[str, str] | None = None) -> list[Unlocker]:
    """Unlockers named by STRONGROOM_PKCS11_*, STRONGROOM_KMS(_ENDPOINT), STRONGROOM_ESCROW_KEY."""
    env = os.environ if env is None else env
    out: list[Unlocker] = []
    if any(env.get(name) for name in PKCS11_ENV):
        ref = TokenRef(module=env.get("STRONGROOM_PKCS11_MODULE") or None,
                       token=env.get("STRONGROOM_PKCS11_TOKEN") or None,
                       key=env.get("STRONGROOM_PKCS11_KEY") or None)
        out.append(Pkcs11Unlocker(ref, lambda: pin_from(None, env)))
    if any(env.get(name) for name in KMS_ENV):
        out.append(KmsUnlocker(endpoint=env.get("STRONGROOM_KMS_ENDPOINT") or None))
    if env.get("STRONGROOM_ESCROW_KEY"):
        out.append(EscrowUnlocker(Path(env["STRONGROOM_ESCROW_KEY"]),
                                  lambda: passphrase_from(None, env)))
    return out


def unlock(unlockers: Sequence[Unlocker], slots: Sequence[KeySlot], repo_id: str, url: str
           ) -> tuple[MasterKey, KeySlot]:
    """Try each unlocker on each slot of its kind; the first that opens wins.

    If none opens: a service or configuration error if one occurred (the service may be the
    reason), else the first WrongKey, else WrongKey saying no slot of that kind exists."""
    problems: list[StrongroomError] = []
    try:
        for unlocker in unlockers:
            for slot in slots:
                if slot.type != unlocker.kind:
                    continue
                try:
                    master = unlocker.unwrap(slot, repo_id)
                except (KeyServiceError, ConfigError, WrongKey) as exc:
                    log.debug("slot %s: %s", slot.id, exc)
                    problems.append(exc)
                    if isinstance(exc, WrongPin) or not isinstance(exc, WrongKey):
                        break  # a refused PIN, a service down: not retried on other slots
                    continue
                if master is not None:
                    return master, slot
    finally:
        for unlocker in unlockers:
            unlocker.close()
    for exc in problems:
        if not isinstance(exc, WrongKey):
            raise exc
    if problems:
        raise problems[0]
    what = " or ".join(u.describe() for u in unlockers)
    raise WrongKey(f"no key slot of {url} opens with {what}")
