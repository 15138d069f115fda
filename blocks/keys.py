"""Key block: how to unlock a repository (a password or a key file; KMS/HSM later)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from strongroom.errors import ConfigError


class RepositoryKey(Block):
    """A repository key slot credential: exactly one of a password or a key file path."""

    _block_type_name = "Strongroom Repository Key"
    _block_type_slug = "strongroom-repository-key"

    password: SecretStr | None = Field(default=None, description="the key slot's password "
                                       "(give this or keyfile)")
    keyfile: str | None = Field(default=None, description="path of a key file on the host "
                                "that runs the flow (give this or password)")

    @model_validator(mode="after")
    def _one_of(self) -> RepositoryKey:
        if (self.password is None) == (self.keyfile is None):
            raise ValueError("give exactly one of password or keyfile")
        return self

    def open_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Repository.open``/``init`` (secrets revealed only here)."""
        if self.password is not None:
            return {"password": self.password.get_secret_value()}
        path = Path(str(self.keyfile)).expanduser()
        if not path.is_file():
            raise ConfigError(f"key file {path} does not exist")
        return {"keyfile": path}
