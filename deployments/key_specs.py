"""Keys in the platform file and their deployments (issue 13).

* ``keys:`` entries name a password, a key file, a PKCS#11 token (``pkcs11:``) or a KMS key
  (``kms:``); :func:`key_block` turns one into the ``RepositoryKey`` block.
* The quarterly ``key-rotation`` of every target (first day of January, April, July and
  October, platform time zone) and a daily ``key-rotation-check`` that alerts when a target's
  newest data-key epoch is older than 100 days.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

KEY_ROTATION_CRON = "0 3 1 1,4,7,10 *"
KEY_CHECK_CRON = "30 6 * * *"


class Pkcs11KeyConfig(BaseModel):
    """``keys.<name>.pkcs11``: token and key labels (default: the slot's), module path, and
    the PIN as ``pin_env`` (a variable name), ``pin_file`` or ``pin: ${VAR}``; none: the host's
    STRONGROOM_PKCS11_PIN(_FILE)."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = None
    key: str | None = None
    module: str | None = None
    pin: str | None = None
    pin_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    pin_file: str | None = None

    @model_validator(mode="after")
    def _one_pin(self) -> Pkcs11KeyConfig:
        given = [n for n in ("pin", "pin_env", "pin_file") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of pin, pin_env or pin_file (got "
                             f"{', '.join(given)})")
        return self


class KmsKeyConfig(BaseModel):
    """``keys.<name>.kms``: key id (ARN, id or alias), endpoint, region and an optional key
    pair (``${VAR}``); empty fields: the slot's values and the AWS chain."""

    model_config = ConfigDict(extra="forbid")

    key_id: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> KmsKeyConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        return self


def key_block(key: Any) -> Any:
    """The ``RepositoryKey`` block of a platform-file key (``deployments.config.KeyConfig``)."""
    from blocks.keys import RepositoryKey

    return RepositoryKey(**key.model_dump(exclude_none=True))


def key_specs(config: Any) -> dict[str, dict[str, Any]]:
    from deployments.build import when  # build imports this module

    targets = list(config.targets)
    return {
        "key-rotation": {
            "flow": "key_rotation",
            "schedules": [{"cron": KEY_ROTATION_CRON, "timezone": config.timezone,
                           "active": True, "slug": "key-rotation"}],
            "parameters": {"targets": targets, "rotate": True},
            "tags": ["strongroom", "keys"],
            "description": "quarterly data-key rotation of every target (a new epoch; no "
                           f"data rewritten) {when(KEY_ROTATION_CRON, config.timezone)}"},
        "key-rotation-check": {
            "flow": "key_rotation",
            "schedules": [{"cron": KEY_CHECK_CRON, "timezone": config.timezone,
                           "active": True, "slug": "key-rotation-check"}],
            "parameters": {"targets": targets, "rotate": False},
            "tags": ["strongroom", "keys"],
            "description": "alert when a target's newest data-key epoch is older than 100 "
                           f"days {when(KEY_CHECK_CRON, config.timezone)}"},
    }


def flows() -> dict[str, Any]:
    from flows.keys import key_rotation

    return {"key_rotation": key_rotation}
