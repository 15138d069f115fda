"""Where a recovery writes when the operator names no target, or only a target root: every
source where it lives; a root only for directories, a wrong kind named before anything runs."""

from __future__ import annotations

import pytest

from strongroom.errors import ConfigError


def test_each_kind_says_where_it_lives() -> None:
    from blocks import FilesSource, RedisSource

    files = FilesSource(source_name="app", paths=["/srv/app"])
    redis = RedisSource(source_name="cache", host="10.0.0.6", port=6380)
    assert files.source().in_place_target(files.settings()) == "/"
    assert redis.source().in_place_target(redis.settings()).startswith("redis://10.0.0.6:6380")


def test_a_target_root_is_for_directories_only() -> None:
    from blocks import FilesSource, RedisSource
    from flows.recovery import site_target

    files = FilesSource(source_name="app", paths=["/srv/app"])
    redis = RedisSource(source_name="cache")
    assert site_target(files, "/srv/dr", {}) == "/srv/dr/app"
    assert site_target(files, None, {}) is None  # in place: the recovery flow decides
    assert site_target(redis, "/srv/dr", {"cache": "redis://127.0.0.1:7000"}) == \
        "redis://127.0.0.1:7000"
    with pytest.raises(ConfigError, match="source cache is a redis source"):
        site_target(redis, "/srv/dr", {})
