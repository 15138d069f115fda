"""Suite-wide settings and shared fixtures."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator

import pytest

# Argon2id at 64 MiB per key-slot open would dominate a suite that opens repositories hundreds
# of times; tests lower the memory cost (production slots keep the default).
os.environ.setdefault("STRONGROOM_ARGON2_MEMORY_KIB", "1024")
# moto's request log drowns failure reports
logging.getLogger("werkzeug").setLevel(logging.WARNING)
# moto accepts any credentials; boto3 still wants some.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto S3 server for the session, on a free 127.0.0.1 port."""
    from tests.support.moto_server import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh, empty bucket name on the session's moto server."""
    from tests.support.moto_server import s3_client

    name = f"test-{secrets.token_hex(6)}"
    s3_client(moto_endpoint).create_bucket(Bucket=name)
    return name
