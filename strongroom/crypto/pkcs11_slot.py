"""``pkcs11`` key slots: a non-extractable AES-256 key inside a PKCS#11 token (an HSM, a smart
card, SoftHSM2) seals the master key with AES-256-GCM (CKM_AES_GCM, random 96-bit IV stored in
the slot, the slot's associated data bound in). The PIN comes from STRONGROOM_PKCS11_PIN or a
PIN file, never from the command line. ``python-pkcs11`` is imported only when a token is used.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongroom.crypto.errors import KeyServiceError, WrongPin
from strongroom.crypto.master import MASTER_SIZE, MasterKey
from strongroom.crypto.slots import KeySlot, Pkcs11Params, SlotType, new_slot, read_secret_file
from strongroom.errors import ConfigError, NotSupported, WrongKey

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass(frozen=True)
class TokenRef:
    """Which module, token and key; None means "as recorded in the slot"."""

    module: str | None = None
    token: str | None = None
    key: str | None = None


def pin_from(pin_file: Path | None, env: Mapping[str, str] | None = None) -> str:
    """The token PIN: a PIN file, STRONGROOM_PKCS11_PIN_FILE or STRONGROOM_PKCS11_PIN."""
    env = os.environ if env is None else env
    if pin_file is None and env.get("STRONGROOM_PKCS11_PIN_FILE"):
        pin_file = Path(env["STRONGROOM_PKCS11_PIN_FILE"])
    if pin_file is not None:
        pin = read_secret_file(pin_file, "PIN")
    else:
        pin = env.get("STRONGROOM_PKCS11_PIN", "")
    if not pin:
        raise ConfigError("no PKCS#11 PIN given (set STRONGROOM_PKCS11_PIN or "
                          "STRONGROOM_PKCS11_PIN_FILE, or give --pkcs11-pin-file)")
    return pin


def _lib(module: str) -> Any:
    try:
        import pkcs11
    except ImportError:
        raise NotSupported("PKCS#11 slots need python-pkcs11: install strongroom[hsm]") from None
    if not Path(module).is_file():
        raise ConfigError(f"PKCS#11 module {module} does not exist")
    try:
        return pkcs11.lib(module)
    except pkcs11.PKCS11Error:
        raise ConfigError(f"PKCS#11 module {module} cannot be loaded (not a PKCS#11 "
                          "library?)") from None


@contextmanager
def token_session(module: str, token: str, pin: str, rw: bool = False) -> Iterator[Any]:
    """A logged-in session on the token labelled ``token``; errors are one line, no PIN."""
    import pkcs11
    from pkcs11 import exceptions as pe

    lib = _lib(module)
    try:
        tok = lib.get_token(token_label=token)
    except pe.NoSuchToken:
        raise KeyServiceError(f"no PKCS#11 token labelled {token!r} in {module} (is it "
                              "plugged in?)") from None
    except pe.MultipleTokensReturned:
        raise ConfigError(f"several PKCS#11 tokens are labelled {token!r} in {module}") from None
    except pkcs11.PKCS11Error as exc:
        raise KeyServiceError(f"PKCS#11 module {module} failed listing tokens "
                              f"({type(exc).__name__})") from None
    try:
        session = tok.open(user_pin=pin, rw=rw)
    except (pe.PinIncorrect, pe.PinInvalid, pe.PinLenRange):
        raise WrongPin(f"wrong PIN for PKCS#11 token {token!r}") from None
    except (pe.PinLocked, pe.PinExpired):
        raise KeyServiceError(f"the PIN of PKCS#11 token {token!r} is locked or expired") \
            from None
    except pkcs11.PKCS11Error as exc:
        raise KeyServiceError(f"cannot open a session on PKCS#11 token {token!r} "
                              f"({type(exc).__name__})") from None
    try:
        yield session
    finally:
        session.close()


def _find_key(session: Any, token: str, label: str) -> Any:
    import pkcs11
    from pkcs11 import KeyType, ObjectClass
    from pkcs11 import exceptions as pe

    try:
        return session.get_key(label=label, key_type=KeyType.AES,
                               object_class=ObjectClass.SECRET_KEY)
    except pe.NoSuchKey:
        raise WrongKey(f"PKCS#11 token {token!r} has no AES key labelled {label!r}") from None
    except pe.MultipleObjectsReturned:
        raise ConfigError(f"PKCS#11 token {token!r} has several keys labelled {label!r}") \
            from None
    except pkcs11.PKCS11Error as exc:
        raise KeyServiceError(f"PKCS#11 token {token!r} failed finding key {label!r} "
                              f"({type(exc).__name__})") from None


def _create_key(session: Any, token: str, label: str) -> Any:
    from pkcs11 import Attribute, KeyType, ObjectClass

    if list(session.get_objects({Attribute.LABEL: label, Attribute.CLASS:
                                 ObjectClass.SECRET_KEY})):
        raise ConfigError(f"PKCS#11 token {token!r} already has a key labelled {label!r} "
                          "(leave out --pkcs11-create-key to use it)")
    return session.generate_key(KeyType.AES, 256, label=label, store=True, template={
        Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True, Attribute.PRIVATE: True,
        Attribute.ENCRYPT: True, Attribute.DECRYPT: True, Attribute.TOKEN: True})


def _check_key(key: Any, token: str, label: str) -> None:
    from pkcs11 import Attribute

    if key[Attribute.EXTRACTABLE] or not key[Attribute.SENSITIVE]:
        raise ConfigError(f"key {label!r} on PKCS#11 token {token!r} is extractable or not "
                          "sensitive: use a key that never leaves the token")
    if key[Attribute.VALUE_LEN] != 32:
        raise ConfigError(f"key {label!r} on PKCS#11 token {token!r} is not AES-256")


def _gcm(iv: bytes, aad: bytes) -> Any:
    from pkcs11.mechanisms import GCMParams

    return GCMParams(iv, aad, 128)


def make_pkcs11_slot(master: MasterKey, repo_id: str, ref: TokenRef, pin: str,
                     create_key: bool = False, label: str = "", slot_id: str | None = None
                     ) -> KeySlot:
    """Seal ``master`` with the token's key (created first with ``create_key``)."""
    import pkcs11
    from pkcs11 import Mechanism

    module = ref.module or DEFAULT_MODULE
    if not ref.token or not ref.key:
        raise ConfigError("a PKCS#11 slot needs --pkcs11-token and --pkcs11-key")
    iv = os.urandom(12)
    slot = new_slot("pkcs11", label, slot_id, pkcs11=Pkcs11Params(
        module=module, token=ref.token, key=ref.key, iv=base64.b64encode(iv).decode()))
    with token_session(module, ref.token, pin, rw=create_key) as session:
        key = _create_key(session, ref.token, ref.key) if create_key else \
            _find_key(session, ref.token, ref.key)
        _check_key(key, ref.token, ref.key)
        try:
            sealed = key.encrypt(master.secret, mechanism=Mechanism.AES_GCM,
                                 mechanism_param=_gcm(iv, slot.aad(repo_id)))
        except pkcs11.PKCS11Error as exc:
            raise KeyServiceError(f"PKCS#11 token {ref.token!r} cannot encrypt with key "
                                  f"{ref.key!r} ({type(exc).__name__})") from None
    slot.wrapped = base64.b64encode(sealed).decode()
    return slot


class Pkcs11Unlocker:
    """Opens ``pkcs11`` slots with a token and its PIN (asked for only when a slot needs it)."""

    kind: SlotType = "pkcs11"

    def __init__(self, ref: TokenRef, pin: Callable[[], str]) -> None:
        self.ref = ref
        self._pin = pin

    def describe(self) -> str:
        return "the PKCS#11 token" + (f" {self.ref.token!r}" if self.ref.token else "")

    def unwrap(self, slot: KeySlot, repo_id: str) -> MasterKey | None:
        import pkcs11
        from pkcs11 import Mechanism

        params = slot.pkcs11
        if params is None:
            return None
        token = self.ref.token or params.token
        key_label = self.ref.key or params.key
        with token_session(self.ref.module or params.module or DEFAULT_MODULE, token,
                           self._pin()) as session:
            key = _find_key(session, token, key_label)
            try:
                iv = base64.b64decode(params.iv)
                secret = key.decrypt(base64.b64decode(slot.wrapped),
                                     mechanism=Mechanism.AES_GCM,
                                     mechanism_param=_gcm(iv, slot.aad(repo_id)))
            except (pkcs11.PKCS11Error, ValueError):
                raise WrongKey(f"key {key_label!r} on PKCS#11 token {token!r} does not open "
                               f"key slot {slot.id}") from None
        if len(secret) != MASTER_SIZE:
            raise WrongKey(f"key slot {slot.id} unwrapped to a value of the wrong size")
        return MasterKey(bytes(secret))

    def close(self) -> None:
        """Sessions are closed after each slot."""
