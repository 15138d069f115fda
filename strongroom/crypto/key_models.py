"""The credential that opens a repository, as plain pydantic models: a password, a key file, a
PKCS#11 token (HSM) or a KMS key, and the engine unlockers built from them.

One definition for every layer that names a key: the Prefect key block (``blocks.keys``)
subclasses these models, the platform file (``deployments.config``) validates its ``keys:``
with them. Field descriptions are the block form's help text; class names and docstrings are
part of the saved block schema, so keep them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from strongroom.errors import ConfigError

if TYPE_CHECKING:
    from strongroom.crypto.unlock import Unlocker

KeyKind = Literal["password", "keyfile", "pkcs11", "kms"]
KINDS: tuple[KeyKind, ...] = ("password", "keyfile", "pkcs11", "kms")


class Pkcs11Key(BaseModel):
    """A ``pkcs11`` key slot's token: labels as recorded in the slot unless given; the PIN
    from a secret field, an environment variable or a file of the host that runs the flow."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(default=None, description="label of the PKCS#11 token (HSM "
                              "partition, smart card); empty: the token the slot recorded")
    key: str | None = Field(default=None, description="label of the AES-256 wrapping key on "
                            "the token; empty: the key the slot recorded")
    module: str | None = Field(default=None, description="path of the PKCS#11 module on the "
                               "host that runs the flow; empty: the module the slot recorded")
    pin: SecretStr | None = Field(default=None, description="the token PIN (or give pin_env "
                                  "or pin_file)")
    pin_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                description="name of the environment variable holding the "
                                "PIN on the host that runs the flow")
    pin_file: str | None = Field(default=None, description="path of a file holding the PIN on "
                                 "the host that runs the flow; no PIN field at all: "
                                 "STRONGROOM_PKCS11_PIN or STRONGROOM_PKCS11_PIN_FILE")

    @model_validator(mode="after")
    def _one_pin(self) -> Pkcs11Key:
        given = [n for n in ("pin", "pin_env", "pin_file") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of pin, pin_env or pin_file (got "
                             f"{', '.join(given)})")
        return self

    def read_pin(self) -> str:
        """The PIN, read when a slot needs it (never logged; errors do not show it)."""
        from strongroom.crypto.pkcs11_slot import pin_from

        if self.pin is not None:
            pin = self.pin.get_secret_value()
        elif self.pin_env:
            pin = os.environ.get(self.pin_env, "")
            if not pin:
                raise ConfigError(f"environment variable {self.pin_env} (the PKCS#11 PIN) is "
                                  "not set on this host")
        else:
            return pin_from(Path(self.pin_file).expanduser() if self.pin_file else None)
        if not pin:
            raise ConfigError("the PKCS#11 PIN is empty")
        return pin

    def unlocker(self) -> Unlocker:
        from strongroom.crypto.pkcs11_slot import Pkcs11Unlocker, TokenRef

        return Pkcs11Unlocker(TokenRef(self.module, self.token, self.key), self.read_pin)

    def describe(self) -> str:
        return "PKCS#11 token" + (f" {self.token!r}" if self.token else "")


class KmsKey(BaseModel):
    """A ``kms`` key slot's KMS: which key, where, and as whom (empty: the AWS chain)."""

    model_config = ConfigDict(extra="forbid")

    key_id: str | None = Field(default=None, description="KMS key ARN, id or alias/NAME whose "
                               "slot opens the repository; empty: any kms slot")
    endpoint_url: str | None = Field(default=None, description="KMS endpoint URL (any service "
                                     "speaking the AWS KMS API); empty: the slot's, else AWS")
    region: str | None = Field(default=None, description="KMS region; empty: the slot's, else "
                               "the AWS configuration's")
    access_key_id: SecretStr | None = Field(default=None, description="AWS access key id; "
                                            "empty: the AWS credential chain (environment, "
                                            "profile, instance role)")
    secret_access_key: SecretStr | None = Field(default=None, description="secret access key "
                                                "belonging to the access key id")
    session_token: SecretStr | None = Field(default=None, description="AWS session token of "
                                            "temporary credentials (optional)")

    @model_validator(mode="after")
    def _pair(self) -> KmsKey:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        return self

    def credentials(self) -> dict[str, str]:
        """boto3 keywords for the key pair (revealed in-process only); {}: the AWS chain."""
        out = {}
        for name in ("access_key_id", "secret_access_key", "session_token"):
            value = getattr(self, name)
            if value is not None:
                out[f"aws_{name}"] = value.get_secret_value()
        return out

    def unlocker(self) -> Unlocker:
        from strongroom.crypto.kms_slot import KmsUnlocker

        return KmsUnlocker(endpoint=self.endpoint_url, region=self.region,
                           credentials=self.credentials(), key_id=self.key_id)

    def describe(self) -> str:
        return f"KMS key {self.key_id}" if self.key_id else "KMS"


class KeyModel(BaseModel):
    """One key: exactly one of a password, a key file, a PKCS#11 token or a KMS key.

    No ``extra`` setting here: a subclass chooses (the block keeps Prefect's, the platform file
    forbids unknown keys)."""

    password: SecretStr | None = Field(default=None, description="the key slot's password "
                                       "(give this, keyfile, pkcs11 or kms)")
    keyfile: str | None = Field(default=None, description="path of a key file on the host "
                                "that runs the flow (give this, password, pkcs11 or kms)")
    pkcs11: Pkcs11Key | None = Field(default=None, description="open a pkcs11 slot with a "
                                     "PKCS#11 token (HSM) and its PIN")
    kms: KmsKey | None = Field(default=None, description="open a kms slot with AWS KMS (or a "
                               "KMS speaking its API)")

    @model_validator(mode="after")
    def _one_of(self) -> KeyModel:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of password, keyfile, pkcs11 or kms"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self

    @property
    def kind(self) -> KeyKind:
        return next(k for k in KINDS if getattr(self, k) is not None)

    def open_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Repository.open`` (secrets revealed only here; a token's
        PIN only when a slot needs it)."""
        if self.pkcs11 is not None:
            return {"unlockers": [self.pkcs11.unlocker()]}
        if self.kms is not None:
            return {"unlockers": [self.kms.unlocker()]}
        return self.init_kwargs()

    def init_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Repository.init``: a repository is created with a password
        or key file; token and KMS slots are added to it afterwards."""
        if self.password is not None:
            return {"password": self.password.get_secret_value()}
        if self.keyfile is not None:
            path = Path(str(self.keyfile)).expanduser()
            if not path.is_file():
                raise ConfigError(f"key file {path} does not exist")
            return {"keyfile": path}
        raise ConfigError(f"a repository is created with a password or key file, not a "
                          f"{self.kind} key: create it with one (strongroom init), add the "
                          f"{self.kind} slot (strongroom key add), then use this block")

    def describe(self) -> str:
        """Which kind of key, for logs (never a secret)."""
        if self.pkcs11 is not None:
            return self.pkcs11.describe()
        if self.kms is not None:
            return self.kms.describe()
        return "key file" if self.keyfile is not None else "password"
