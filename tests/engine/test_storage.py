"""The storage interface behaves the same on the local disk and on S3 (moto server mode); URL
schemes open their backends through the registry; capability methods answer on every backend."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from strongroom.errors import ConfigError, IntegrityError, RepositoryNotFound, StorageError
from strongroom.storage import Backend, open_backend, register_scheme
from strongroom.storage.local import LocalBackend
from strongroom.storage.registry import schemes


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


def test_capabilities_answer_on_every_backend(backend) -> None:
    """Callers never ask which backend they hold: a plain store says every object is readable,
    deletable and staged, and tree packs are written like any other object."""
    backend.prepare()
    backend.put("data/ab/abc", b"0123456789")
    backend.put_readable("data/ab/tree", b"tree")
    assert backend.get("data/ab/tree") == b"tree"
    assert backend.readable("data/ab/abc")
    assert backend.protection("data/ab/abc") is None
    info = backend.head("data/ab/abc")
    assert info is None or (info.size == 10 and info.readable and not info.legal_hold)
    report = backend.stage(["data/ab/abc"], retrieval_tier="Bulk")
    assert report.ready == ["data/ab/abc"] and not report.requested + report.in_progress
    backend.wait_readable(["data/ab/abc"], timeout_s=1)
    with pytest.raises(ConfigError, match="retrieval tier"):
        backend.stage(["data/ab/abc"], retrieval_tier="Fast")


def test_schemes_open_their_backend(tmp_path: Path) -> None:
    assert {"file", "s3"} <= set(schemes())
    assert isinstance(open_backend(f"file://{tmp_path}/a"), LocalBackend)
    assert open_backend(str(tmp_path / "b")).url == str(tmp_path / "b")
    with pytest.raises(ConfigError, match="unknown storage scheme gs://"):
        open_backend("gs://bucket/x")


def test_a_plugin_registers_its_scheme(tmp_path: Path) -> None:
    """A new backend is one module calling register_scheme; open_backend finds it."""
    opened: list[tuple[str, dict[str, str]]] = []

    def factory(url: str, options: dict[str, str]) -> Backend:
        opened.append((url, options))
        return LocalBackend(tmp_path / url.removeprefix("toy://"))

    register_scheme("toy", factory)
    backend = open_backend("toy://store", {"k": "v"})
    assert opened == [("toy://store", {"k": "v"})] and backend.url == str(tmp_path / "store")
    assert "toy" in schemes()
