"""The storage interface behaves the same on the local disk and on S3 (moto server mode)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from strongroom.errors import IntegrityError, RepositoryNotFound, StorageError
from strongroom.storage import open_backend


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "local":
        return open_backend(str(tmp_path / "store"))
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return open_backend(f"s3://{bucket}/p-{secrets.token_hex(3)}", {"endpoint": endpoint})


def test_put_get_range_list_delete(backend) -> None:
    backend.put("data/ab/abc", b"0123456789")
    backend.put("index/one", memoryview(b"xyz"))
    assert backend.get("data/ab/abc") == b"0123456789"
    assert backend.get_range("data/ab/abc", 3, 4) == b"3456"
    assert backend.size("data/ab/abc") == 10
    assert backend.exists("index/one") and not backend.exists("index/two")
    assert sorted(backend.list("data/")) == [("data/ab/abc", 10)]
    assert sorted(k for k, _ in backend.list("")) == ["data/ab/abc", "index/one"]
    backend.put("index/one", b"replaced")
    assert backend.get("index/one") == b"replaced"
    backend.delete("index/one")
    assert not backend.exists("index/one")
    with pytest.raises(IntegrityError, match="missing object index/one"):
        backend.get("index/one")
    with pytest.raises(IntegrityError, match="truncated"):
        backend.get_range("data/ab/abc", 8, 5)


def test_unreachable_and_missing_bucket() -> None:
    dead = open_backend("s3://nobucket/x", {"endpoint": "http://127.0.0.1:9",
                                            "max_attempts": 1})
    with pytest.raises(StorageError, match="cannot reach S3 endpoint"):
        dead.get("config")


def test_missing_bucket_is_no_repository(moto_endpoint: str) -> None:
    backend = open_backend("s3://does-not-exist/x", {"endpoint": moto_endpoint})
    with pytest.raises(RepositoryNotFound, match="no such bucket"):
        backend.get("config")
