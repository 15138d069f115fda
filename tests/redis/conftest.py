"""Redis test fixtures: a repository, and a filled source redis-server with a password."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.repository import Repository
from strongroom.sources.redis.proc import RedisProcess
from tests.support.redis_server import PASSWORD, fill, redis_server

if not shutil.which("redis-server") or not shutil.which("redis-cli"):
    pytest.skip("redis-server/redis-cli not installed", allow_module_level=True)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(str(tmp_path / "repo"), password="redis-tests")


@pytest.fixture
def source(tmp_path: Path) -> Iterator[RedisProcess]:
    """A password-protected server holding every key type in dbs 0, 1 and 7."""
    with redis_server(tmp_path / "source", password=PASSWORD) as proc:
        fill(proc.client)
        yield proc


@pytest.fixture
def password_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TEST_REDIS_PASSWORD", PASSWORD)
    return "TEST_REDIS_PASSWORD"
