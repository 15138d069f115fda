"""Repository target block: where snapshots live (local path or S3) and which tier it is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, model_validator

from blocks.credentials import S3Credentials, fold_flat_keys
from blocks.keys import RepositoryKey
from strongroom.errors import RepositoryNotFound

if TYPE_CHECKING:
    from strongroom.repository import Repository

Role = Literal["primary", "secondary", "tertiary"]


class RepositoryTarget(Block):
    """A Strongroom repository on one storage tier: a path or ``s3://bucket/prefix``."""

    _block_type_name = "Strongroom Repository Target"
    _block_type_slug = "strongroom-repository-target"

    url: str = Field(description="repository location: a local path or s3://bucket/prefix")
    role: Role = Field(default="primary", description="storage tier: primary (fast, local), "
                       "secondary (off-site copy) or tertiary (long-term archive)")
    key: RepositoryKey = Field(description="the key slot credential that opens the repository")
    credentials: S3Credentials | None = Field(
        default=None, description="endpoint, region and keys for an s3:// repository; empty: "
        "AWS with the standard credential chain (unused for a local path)")
    options: dict[str, str] = Field(
        default={}, description="further backend options, e.g. max_attempts=10, "
        "storage_class=DEEP_ARCHIVE")

    @model_validator(mode="before")
    @classmethod
    def _fold_flat_credentials(cls, data: Any) -> Any:
        return fold_flat_keys(data)

    def storage_options(self) -> dict[str, str]:
        """S3 settings for the engine's backend (empty for a local path)."""
        creds = self.credentials.engine_options() if self.credentials else {}
        return {**{k: str(v) for k, v in self.options.items()}, **creds}

    def open(self, create: bool = False) -> Repository:
        """Open the repository (``create=True``: initialise it first when there is none)."""
        from strongroom.repository import Repository

        key = self.key.open_kwargs()
        options = self.storage_options() or None
        try:
            return Repository.open(self.url, **key, options=options)
        except RepositoryNotFound:
            if not create:
                raise
        return Repository.init(self.url, **self.key.init_kwargs(), options=options)

    def describe(self) -> str:
        """A one-line, secret-free description for logs and artifacts."""
        endpoint = self.credentials.endpoint_url if self.credentials else None
        where = f" via {endpoint}" if endpoint else ""
        return f"{self.role} {self.url}{where}"
