"""S3 plumbing shared by the bucket backup and restore: clients, URLs, one-line errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
)

from strongroom.errors import ConfigError, SourceError, SourceUnreachable

_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403",
           "InvalidToken", "ExpiredToken", "AllAccessDisabled"}
# Answers of an endpoint that is overloaded, restarting or failing for now: waiting may cure them.
_UNAVAILABLE = {"ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout", "500", "502",
                "503", "504"}
# Failures after the connection was made: it was closed, timed out or cut short mid-stream.
_CONNECTION_LOST = (HTTPClientError, IncompleteReadError)


def endpoint_of(endpoint: str | None) -> str | None:
    return endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
        "AWS_ENDPOINT_URL") or None


def make_client(endpoint: str | None = None, region: str | None = None, workers: int = 8,
                access_key_id: str | None = None, secret_access_key: str | None = None) -> Any:
    """A boto3 S3 client; credentials given, or from the standard AWS chain (env, profile,
    role)."""
    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10,
                    read_timeout=120, max_pool_connections=max(10, workers * 2),
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_of(endpoint),
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1", config=config,
        aws_access_key_id=access_key_id or None, aws_secret_access_key=secret_access_key or None)


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket[/prefix]`` -> (bucket, prefix); the prefix is kept literally."""
    if not url.startswith("s3://"):
        raise ConfigError(f"not an S3 URL: {url!r} (expected s3://bucket/prefix)")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise ConfigError(f"no bucket in S3 URL {url!r}")
    return bucket, prefix


def error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return str(err.get("Code") or exc.response.get("ResponseMetadata", {})
                   .get("HTTPStatusCode", ""))
    return ""


@contextmanager
def errors(what: str, endpoint: str | None, bucket: str) -> Iterator[None]:
    """Map botocore failures to one-line errors (never credentials): SourceUnreachable when the
    endpoint cannot be reached, lost the connection or is unavailable for now, ConfigError
    without credentials, SourceError otherwise."""
    where = endpoint_of(endpoint) or "AWS S3"
    try:
        yield
    except NoCredentialsError:
        raise ConfigError("no AWS credentials (set AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY, or a profile)") from None
    except EndpointConnectionError:
        raise SourceUnreachable(f"cannot reach S3 endpoint {where}") from None
    except ClientError as exc:
        code = error_code(exc)
        if code in ("NoSuchBucket",):
            raise SourceError(f"{what}: no such bucket {bucket!r} at {where}") from None
        if code in _DENIED:
            raise SourceError(f"{what}: access to bucket {bucket!r} at {where} denied ({code}); "
                              "check the credentials") from None
        msg = exc.response.get("Error", {}).get("Message", "") or str(exc)
        kind = SourceUnreachable if code in _UNAVAILABLE else SourceError
        raise kind(f"{what}: S3 error {code} on bucket {bucket!r}: "
                   f"{msg.splitlines()[0] if msg else ''}") from None
    except BotoCoreError as exc:
        kind = SourceUnreachable if isinstance(exc, (ConnectTimeoutError, *_CONNECTION_LOST)) \
            else SourceError
        raise kind(f"{what}: S3 request to {where} failed: "
                   f"{str(exc).splitlines()[0]}") from None
