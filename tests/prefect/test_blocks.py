"""Block types: described fields (the UI shows them), nested S3 credentials that still accept the
platform file's flat keys, settings handed to the engine, and kinds from the registry."""

from __future__ import annotations

import pytest
from pydantic import SecretStr


def test_every_block_field_is_described():
    import blocks

    for cls in blocks.block_types():
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name} has no description"


def test_flat_s3_keywords_fold_into_nested_credentials():
    from blocks import RepositoryKey, RepositoryTarget, S3BucketSource, S3Credentials

    target = RepositoryTarget(url="s3://b/repo", key=RepositoryKey(password="pw"),
                              endpoint_url="http://127.0.0.1:9000", region="us-east-1",
                              access_key_id=SecretStr("id"), secret_access_key="s3cr3t-value")
    assert isinstance(target.credentials, S3Credentials)
    assert target.storage_options() == {"endpoint": "http://127.0.0.1:9000",
                                        "region": "us-east-1", "access_key_id": "id",
                                        "secret_access_key": "s3cr3t-value"}
    assert "s3cr3t" not in repr(target) and target.describe() == \
        "primary s3://b/repo via http://127.0.0.1:9000"
    assert RepositoryTarget(url="/srv/repo", key=RepositoryKey(password="pw"),
                            endpoint_url=None).credentials is None

    nested = S3BucketSource(source_name="media", bucket="media", runs_on="host-a",
                            credentials=S3Credentials(endpoint_url="http://m:9000",
                                                      secret_access_key=SecretStr("s")))
    # the engine's s3 source reads these flat keys; runs_on is not a source setting
    assert nested.settings() == {"bucket": "media", "prefix": "", "versions": False,
                                 "endpoint_url": "http://m:9000", "region": None,
                                 "access_key_id": None, "secret_access_key": "s"}
    with pytest.raises(ValueError, match="either flat or in credentials"):
        S3BucketSource(source_name="m", bucket="m", region="x",
                       credentials=S3Credentials(region="y"))


def test_source_blocks_follow_the_registry():
    from blocks import FilesSource, PostgresSource
    from blocks.sources import SOURCE_BLOCKS
    from strongroom.sources import registry

    assert set(registry.kinds()) <= set(SOURCE_BLOCKS)
    for kind, cls in SOURCE_BLOCKS.items():
        assert cls.source_kind == kind
    assert PostgresSource(source_name="db").objectives_class() == \
        registry.get("postgres").default_class
    files = FilesSource(source_name="docs", paths=["/srv"], runs_on="host-a",
                        restore_target="/restore")
    assert files.settings() == {"paths": ["/srv"], "exclude": []}
    assert files.runs_on == "host-a"
