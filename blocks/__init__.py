"""Prefect Block types for Strongroom: ``prefect block register -m blocks`` registers them all.

Blocks hold configuration and secrets (SecretStr) and build engine objects from them; the engine
itself never imports prefect. Source block classes join ``blocks.sources.SOURCE_BLOCKS`` when
they are defined, so :func:`register_all` also registers a kind added by a plugin or a test.
"""

from blocks.credentials import S3Credentials
from blocks.keys import RepositoryKey
from blocks.policies import RecoveryObjectives, RetentionPolicy
from blocks.site import StrongroomSite
from blocks.sources import (
    SOURCE_BLOCKS,
    FilesSource,
    Neo4jSource,
    PostgresSource,
    RedisSource,
    S3BucketSource,
)
from blocks.targets import RepositoryTarget

# The block types defined in this package (what ``prefect block register -m blocks`` finds).
BLOCK_TYPES = (RepositoryKey, S3Credentials, RepositoryTarget, FilesSource, PostgresSource,
               Neo4jSource, RedisSource, S3BucketSource, RetentionPolicy, RecoveryObjectives,
               StrongroomSite)

__all__ = [cls.__name__ for cls in BLOCK_TYPES] + ["BLOCK_TYPES", "register_all"]


def block_types() -> list[type]:
    """Every block type: this package's, plus source blocks defined elsewhere since."""
    extra = [cls for cls in SOURCE_BLOCKS.values() if cls not in BLOCK_TYPES]
    return [*BLOCK_TYPES, *extra]


def register_all() -> list[str]:
    """Register every block type with the current Prefect API; returns their slugs."""
    types = block_types()
    for cls in types:
        cls.register_type_and_schema()
    return [cls.get_block_type_slug() for cls in types]
