"""Repository target block: where snapshots live (local path or S3) and which tier it is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from prefect.blocks.core import Block
from pydantic import SecretStr

from blocks._engine import open_repository, s3_options
from blocks.keys import RepositoryKey

if TYPE_CHECKING:
    from strongroom.repository import Repository

Role = Literal["primary", "secondary", "tertiary"]


class RepositoryTarget(Block):
    """A Strongroom repository on one storage tier: a path or ``s3://bucket/prefix``."""

    _block_type_name = "Strongroom Repository Target"
    _block_type_slug = "strongroom-repository-target"

    url: str
    role: Role = "primary"
    key: RepositoryKey
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    options: dict[str, str] = {}  # further backend options, e.g. max_attempts, storage_class

    def storage_options(self) -> dict[str, str]:
        """S3 settings for the engine's backend (empty for a local path)."""
        return {**{k: str(v) for k, v in self.options.items()}, **s3_options(self)}

    def open(self, create: bool = False) -> Repository:
        """Open the repository (``create=True``: initialise it first when there is none)."""
        return open_repository(self.url, self.key.open_kwargs(), self.storage_options(),
                               create=create)

    def describe(self) -> str:
        """A one-line, secret-free description for logs and artifacts."""
        where = f" via {self.endpoint_url}" if self.endpoint_url else ""
        return f"{self.role} {self.url}{where}"
