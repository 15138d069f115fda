"""Source blocks: one per kind of data; each backs up into and restores out of a repository."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from prefect.blocks.core import Block
from pydantic import SecretStr

from blocks._engine import backup_source, s3_options

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot


class SourceBlock(Block):
    """Common fields of every source: its name in snapshots and its class of objectives."""

    source_kind: ClassVar[str] = ""
    default_class: ClassVar[str] = "files"

    source_name: str
    objective_class: str | None = None  # database | files | system | security
    restore_target: str | None = None  # where a recovery writes when none is given

    @property
    def kind(self) -> str:
        return self.source_kind

    def objectives_class(self) -> str:
        return self.objective_class or self.default_class

    def settings(self) -> dict[str, Any]:
        """Kind-specific settings with secrets revealed (only handed to the engine)."""
        out: dict[str, Any] = {}
        for field in type(self).model_fields:
            if field in {"source_name", "objective_class", "restore_target"}:
                continue
            value = getattr(self, field)
            out[field] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return out

    def backup(self, repo: Repository, kind: str, tags: list[str]) -> Snapshot:
        """Write a new snapshot of this source into ``repo``."""
        return backup_source(self.source_kind, repo, self.source_name, kind, tags, self.settings())

    def restore_options(self) -> dict[str, str]:
        """Options passed to the kind's restorer (``--option k=v`` equivalents)."""
        return {}


class FilesSource(SourceBlock):
    """Files and directories on this host."""

    _block_type_name = "Strongroom Files Source"
    _block_type_slug = "strongroom-files-source"
    source_kind: ClassVar[str] = "files"

    paths: list[str]
    exclude: list[str] = []


class PostgresSource(SourceBlock):
    """A PostgreSQL cluster or database."""

    _block_type_name = "Strongroom Postgres Source"
    _block_type_slug = "strongroom-postgres-source"
    source_kind: ClassVar[str] = "postgres"
    default_class: ClassVar[str] = "database"

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: SecretStr | None = None
    database: str | None = None
    method: str = "physical"  # physical | logical
    # what the hourly (and a pre-restore safety) snapshot takes; default: the same as method
    snapshot_method: str | None = None

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
    default_class: ClassVar[str] = "database"

    uri: str = "bolt://127.0.0.1:7687"
    user: str | None = None
    password: SecretStr | None = None
    database: str = "neo4j"
    consistent: bool = False  # compare counts before/after the export (no snapshot isolation)
    password_env: str | None = None  # the restorer reads the target's password from here

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
    default_class: ClassVar[str] = "database"

    host: str = "127.0.0.1"
    port: int = 6379
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False

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

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    versions: bool = False

    def restore_options(self) -> dict[str, str]:
        """A restore into this bucket's endpoint uses the block's region and credentials
        in-process (otherwise the standard AWS chain applies)."""
        return s3_options(self)


SOURCE_BLOCKS: dict[str, type[SourceBlock]] = {
    cls.source_kind: cls
    for cls in (FilesSource, PostgresSource, Neo4jSource, RedisSource, S3BucketSource)
}
