"""Source blocks: one per kind of data; each backs up into and restores out of a repository.

A block class is the configuration of one source kind; the work is the kind's
:class:`strongroom.sources.contract.Source` from the registry. Every subclass that sets
``source_kind`` joins :data:`SOURCE_BLOCKS` by itself, so a new kind is one class here (or in a
plugin or a test) and nothing else in this layer changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from blocks.credentials import S3Credentials, fold_flat_keys
from strongroom.sources import registry

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot
    from strongroom.sources.contract import Source

# source_kind -> block class; filled by SourceBlock.__pydantic_init_subclass__
SOURCE_BLOCKS: dict[str, type[SourceBlock]] = {}


class SourceBlock(Block):
    """Common fields of every source: its name in snapshots, its class of objectives, where a
    recovery writes, and which host runs it."""

    source_kind: ClassVar[str] = ""
    # fields that describe the source's place in the platform, not how to read it
    COMMON_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"source_name", "objective_class", "restore_target", "runs_on"})

    source_name: str = Field(description="the source's name in snapshots (strongroom "
                             "snapshots --source NAME); keep it stable across runs")
    objective_class: str | None = Field(
        default=None, description="recovery objectives class: database, files, system or "
        "security; empty: the kind's default")
    restore_target: str | None = Field(
        default=None, description="where a recovery writes when the run names no target "
        "(a directory, URL or DSN, by kind)")
    runs_on: str | None = Field(
        default=None, description="the host (Prefect work queue) whose worker runs this "
        "source's backups and restores; empty: any")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)  # Prefect's block type registration
        if cls.source_kind:
            SOURCE_BLOCKS[cls.source_kind] = cls

    @property
    def kind(self) -> str:
        return self.source_kind

    def source(self) -> Source:
        """The engine's implementation of this kind (NotSupported if this build lacks it)."""
        return registry.get(self.source_kind)

    @property
    def default_class(self) -> str:
        return self.source().default_class

    def objectives_class(self) -> str:
        return self.objective_class or self.default_class

    def settings(self) -> dict[str, Any]:
        """Kind-specific settings with secrets revealed (only handed to the engine)."""
        out: dict[str, Any] = {}
        for field in type(self).model_fields:
            if field in self.COMMON_FIELDS:
                continue
            value = getattr(self, field)
            out[field] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return out

    def backup(self, repo: Repository, kind: str, tags: list[str]) -> Snapshot:
        """Write a new ``kind`` snapshot of this source into ``repo``."""
        return self.source().backup(repo, name=self.source_name, kind=kind, tags=list(tags),
                                    settings=self.settings())

    def restore_options(self) -> dict[str, str]:
        """Options passed to the kind's restore (``--restore-option k=v`` equivalents)."""
        return {}


class FilesSource(SourceBlock):
    """Files and directories on this host."""

    _block_type_name = "Strongroom Files Source"
    _block_type_slug = "strongroom-files-source"
    source_kind: ClassVar[str] = "files"

    paths: list[str] = Field(description="absolute paths of the files and directories to "
                             "back up")
    exclude: list[str] = Field(default=[], description="glob patterns of paths to leave out, "
                               "e.g. *.tmp or /srv/data/cache")


class PostgresSource(SourceBlock):
    """A PostgreSQL cluster or database."""

    _block_type_name = "Strongroom Postgres Source"
    _block_type_slug = "strongroom-postgres-source"
    source_kind: ClassVar[str] = "postgres"

    host: str = Field(default="127.0.0.1", description="server host name or address")
    port: int = Field(default=5432, description="server port")
    user: str = Field(default="postgres", description="role to log in as (a physical backup "
                      "needs REPLICATION)")
    password: SecretStr | None = Field(default=None, description="the role's password; empty: "
                                       "peer/trust or ~/.pgpass")
    database: str | None = Field(default=None, description="database of a logical backup; "
                                 "empty: every database")
    method: str = Field(default="physical", description="physical (base backup + WAL, whole "
                        "cluster, point-in-time recovery) or logical (pg_dump)")
    snapshot_method: str | None = Field(
        default=None, description="what the hourly and pre-restore safety snapshots take: "
        "physical or logical; empty: the same as method")
    data_directory: str | None = Field(
        default=None, description="the cluster's data directory on the host that runs its "
        "restores (absolute path): where a physical recovery that names no target restores; "
        "empty: such a recovery needs a target")

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        out["snapshot_method"] = self.snapshot_method or self.method
        return out

    def restore_options(self) -> dict[str, str]:
        """A logical restore logs in with the block's password, in-process (never argv)."""
        if self.password is None:
            return {}
        return {"password": self.password.get_secret_value()}


class Neo4jSource(SourceBlock):
    """A Neo4j database reached over Bolt."""

    _block_type_name = "Strongroom Neo4j Source"
    _block_type_slug = "strongroom-neo4j-source"
    source_kind: ClassVar[str] = "neo4j"

    uri: str = Field(default="bolt://127.0.0.1:7687", description="Bolt URI of the server")
    user: str | None = Field(default=None, description="user to log in as; empty: no auth")
    password: SecretStr | None = Field(default=None, description="the user's password")
    database: str = Field(default="neo4j", description="database to export")
    consistent: bool = Field(default=False, description="compare counts before and after the "
                             "export and fail on a change (Neo4j has no snapshot isolation)")
    password_env: str | None = Field(
        default=None, description="environment variable holding the password (used when "
        "password is empty), for backups and restores alike")

    def restore_options(self) -> dict[str, str]:
        """A restore into this database logs in like the backup did: same user and database,
        the block's password in-process (else the ``password_env`` variable)."""
        opts = {"database": self.database}
        if self.user:
            opts["user"] = self.user
        if self.password is not None:
            opts["password"] = self.password.get_secret_value()
        elif self.password_env:
            opts["password_env"] = self.password_env
        return opts


class RedisSource(SourceBlock):
    """A Redis server."""

    _block_type_name = "Strongroom Redis Source"
    _block_type_slug = "strongroom-redis-source"
    source_kind: ClassVar[str] = "redis"

    host: str = Field(default="127.0.0.1", description="server host name or address")
    port: int = Field(default=6379, description="server port")
    username: str | None = Field(default=None, description="ACL user; empty: default user")
    password: SecretStr | None = Field(default=None, description="the user's password")
    tls: bool = Field(default=False, description="connect over TLS")

    def restore_options(self) -> dict[str, str]:
        """A live restore into this server authenticates like the backup did: the block's user
        (unless the target URL names one) and password, in-process."""
        opts: dict[str, str] = {}
        if self.username:
            opts["username"] = self.username
        if self.password is not None:
            opts["password"] = self.password.get_secret_value()
        return opts


class S3BucketSource(SourceBlock):
    """An S3 or MinIO bucket (optionally one prefix of it)."""

    _block_type_name = "Strongroom S3 Bucket Source"
    _block_type_slug = "strongroom-s3-bucket-source"
    source_kind: ClassVar[str] = "s3"

    bucket: str = Field(description="bucket to back up")
    prefix: str = Field(default="", description="only keys under this prefix; empty: the "
                        "whole bucket")
    credentials: S3Credentials | None = Field(
        default=None, description="endpoint, region and keys of the bucket's S3 service; "
        "empty: AWS with the standard credential chain")
    versions: bool = Field(default=False, description="back up every object version, not "
                           "only the current ones")

    @model_validator(mode="before")
    @classmethod
    def _fold_flat_credentials(cls, data: Any) -> Any:
        return fold_flat_keys(data)

    def settings(self) -> dict[str, Any]:
        """``bucket``, ``prefix``, ``versions`` and the credentials' four values, flat."""
        creds = self.credentials or S3Credentials()
        return {"bucket": self.bucket, "prefix": self.prefix, "versions": self.versions,
                **creds.flat()}

    def restore_options(self) -> dict[str, str]:
        """A restore into this bucket's endpoint uses the block's region and credentials
        in-process (otherwise the standard AWS chain applies)."""
        return self.credentials.engine_options() if self.credentials else {}
