"""Rotating the master key (``key rotate --master``): the keyring objects and every key slot are
re-wrapped under a new master key; no data, index or snapshot is touched.

Every slot's new wrapping is made first, in memory (password and key-file slots need their
secret, PKCS#11 slots the token and PIN, KMS slots the KMS, escrow slots the holder's PUBLIC
key): if one cannot be made, nothing is written and the error names the slot, unless the caller
chose to drop it. Then, under the exclusive lock:

1. each keyring object gains a wrapping under the new master beside the old one;
2. each slot is overwritten in place (same id) by its new wrapping;
3. the old master's wrappings are removed from the keyring.

A kill at any point leaves every slot opening a master (old or new) that unwraps the whole
keyring, so the repository opens with every key that opened it before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from strongroom.crypto.epochs import master_id
from strongroom.crypto.errors import KeyServiceError
from strongroom.crypto.master import MasterKey
from strongroom.crypto.slots import KeySlot, SlotDamaged, make_slot, unwrap
from strongroom.errors import ConfigError, StrongroomError
from strongroom.repository.locks import RepositoryLock
from strongroom.repository.repo import Repository, keyring_objects


@dataclass
class SlotCredentials:
    """What re-wraps the slots: secrets of password and key-file slots, escrow public keys,
    the token PIN (a callable: asked only if a pkcs11 slot exists) and endpoint overrides."""

    passwords: list[bytes] = field(default_factory=list, repr=False)
    keyfiles: list[bytes] = field(default_factory=list, repr=False)
    escrow_public: list[X25519PublicKey] = field(default_factory=list)
    pkcs11_pin: Callable[[], str] | None = field(default=None, repr=False)
    pkcs11_module: str | None = None
    kms_endpoint: str | None = None
    drop: set[str] = field(default_factory=set)


@dataclass
class MasterReport:
    master: str = ""
    rewrapped: list[dict[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    keyring_objects: int = 0


def _rewrap(slot: KeySlot, repo_id: str, new: MasterKey, creds: SlotCredentials
            ) -> tuple[KeySlot | None, str]:
    """The slot wrapped under ``new`` with the same id, or (None, why not)."""
    if slot.type in ("password", "keyfile"):
        secrets_ = creds.passwords if slot.type == "password" else creds.keyfiles
        for secret in secrets_:
            try:
                if unwrap(slot, repo_id, secret) is not None:
                    return make_slot(new, repo_id, slot.type, secret, slot.label,  # type: ignore[arg-type]
                                     slot_id=slot.id), ""
            except SlotDamaged as exc:
                return None, str(exc)
        flag = "--slot-password-file" if slot.type == "password" else "--slot-key-file"
        return None, f"no {slot.type} given opens it ({flag})"
    if slot.type == "kms" and slot.kms is not None:
        from strongroom.crypto.kms_slot import make_kms_slot

        return make_kms_slot(new, repo_id, slot.kms.key_id, slot.kms.region,
                             creds.kms_endpoint or slot.kms.endpoint, slot.label,
                             slot_id=slot.id), ""
    if slot.type == "pkcs11" and slot.pkcs11 is not None:
        from strongroom.crypto.pkcs11_slot import TokenRef, make_pkcs11_slot

        if creds.pkcs11_pin is None:
            return None, "no PKCS#11 PIN given (STRONGROOM_PKCS11_PIN or --pkcs11-pin-file)"
        try:
            pin = creds.pkcs11_pin()
        except ConfigError as exc:
            return None, str(exc)
        ref = TokenRef(creds.pkcs11_module or slot.pkcs11.module or None, slot.pkcs11.token,
                       slot.pkcs11.key)
        return make_pkcs11_slot(new, repo_id, ref, pin, False, slot.label,
                                slot_id=slot.id), ""
    if slot.type == "escrow" and slot.escrow is not None:
        from strongroom.crypto.escrow import fingerprint, make_escrow_slot

        for public in creds.escrow_public:
            if fingerprint(public) == slot.escrow.recipient:
                return make_escrow_slot(new, repo_id, public, slot.label, slot_id=slot.id), ""
        return None, (f"no --escrow-public-key with fingerprint {slot.escrow.recipient} given")
    return None, f"unknown slot kind {slot.type}"


def plan_slots(repo: Repository, new: MasterKey, creds: SlotCredentials,
               slots: Sequence[KeySlot]) -> list[KeySlot]:
    """Every kept slot's new wrapping, or ConfigError naming each slot that cannot be made."""
    # a --drop-slot naming no slot is a no-op: a run resumed after a kill already dropped it
    kept = [s for s in slots if not any(s.id.startswith(d) for d in creds.drop)]
    if not kept:
        raise ConfigError("refusing to drop every key slot: the repository would be unreadable")
    if not any(s.id == repo.slot_id for s in kept):
        raise ConfigError("refusing to drop the key slot in use")
    planned: list[KeySlot] = []
    missing: list[str] = []
    for slot in kept:
        try:
            made, why = _rewrap(slot, repo.id, new, creds)
        except (KeyServiceError, StrongroomError) as exc:
            made, why = None, str(exc)
        if made is None:
            detail = f", {slot.detail()}" if slot.detail() else ""
            missing.append(f"{slot.id} ({slot.type}{detail}): {why}")
        else:
            planned.append(made)
    if missing:
        raise ConfigError("cannot re-wrap key slot " + "; ".join(missing) + " -- nothing "
                          "changed; give its credential, or --drop-slot ID to remove it")
    return planned


def rotate_master(repo: Repository, creds: SlotCredentials, lock_wait_s: float = 120.0,
                  after_step: Callable[[str], None] | None = None) -> MasterReport:
    """Replace the master key (see the module docstring). ``after_step(name)`` is a test hook
    called after each write."""
    if repo.format_version < 2:
        raise ConfigError(f"{repo.url} is a format-1 repository: run `strongroom migrate` "
                          "first")
    step = after_step or (lambda name: None)
    lock = RepositoryLock.acquire(repo.backend, exclusive=True, purpose="key rotate --master",
                                  wait_s=lock_wait_s)
    try:
        new = MasterKey.generate()
        slots = repo.slots()
        planned = plan_slots(repo, new, creds, slots)
        objects = keyring_objects(repo.backend)
        live = [o for o in objects if not o.retired]
        secrets_: dict[str, bytes] = {o.name: o.unwrap(repo.master, repo.id) for o in live}
        for obj in live:  # 1. both masters
            obj.wrap(new, repo.id, secrets_[obj.name])
            lock.ensure_held()
            repo.backend.put(obj.key, obj.dump())
            step(f"keyring {obj.name}")
        for slot in planned:  # 2. slots in place
            lock.ensure_held()
            repo.backend.put(f"keys/{slot.id}", slot.dump())
            step(f"slot {slot.id}")
        dropped = [s.id for s in slots if s.id not in {p.id for p in planned}]
        for slot_id in dropped:
            lock.ensure_held()
            repo.backend.delete(f"keys/{slot_id}")
            step(f"drop {slot_id}")
        mine = master_id(new)
        for obj in objects:  # 3. only the new master (and never stale wrappings)
            obj.wrapped = {k: v for k, v in obj.wrapped.items() if k == mine}
            lock.ensure_held()
            repo.backend.put(obj.key, obj.dump())
            step(f"unwrap-old {obj.name}")
    finally:
        lock.release()
    repo.master = new
    repo._keyring_listing = []
    repo.refresh_keyring()
    return MasterReport(master=mine, keyring_objects=len(objects), dropped=dropped,
                        rewrapped=[{"id": s.id, "type": s.type} for s in planned])


def report_dict(report: MasterReport) -> dict[str, Any]:
    return {"master": report.master, "rewrapped": report.rewrapped, "dropped": report.dropped,
            "keyring_objects": report.keyring_objects}
