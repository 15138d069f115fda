"""Prefect Block types for Strongroom: ``prefect block register -m blocks`` registers them all.

Blocks hold configuration and secrets (SecretStr) and build engine objects from them; the engine
itself never imports prefect.
"""

from blocks.keys import RepositoryKey
from blocks.policies import RecoveryObjectives, RetentionPolicy
from blocks.site import StrongroomSite
from blocks.sources import (
    FilesSource,
    Neo4jSource,
    PostgresSource,
    RedisSource,
    S3BucketSource,
)
from blocks.targets import RepositoryTarget

BLOCK_TYPES = (RepositoryKey, RepositoryTarget, FilesSource, PostgresSource, Neo4jSource,
               RedisSource, S3BucketSource, RetentionPolicy, RecoveryObjectives, StrongroomSite)

__all__ = [cls.__name__ for cls in BLOCK_TYPES] + ["BLOCK_TYPES", "register_all"]


def register_all() -> list[str]:
    """Register every block type with the current Prefect API; returns their slugs."""
    for cls in BLOCK_TYPES:
        cls.register_type_and_schema()
    return [cls.get_block_type_slug() for cls in BLOCK_TYPES]
