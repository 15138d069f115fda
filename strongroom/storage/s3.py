"""S3 backend (AWS S3, MinIO, moto alike) through boto3.

The endpoint comes from the ``endpoint`` option or the standard ``AWS_ENDPOINT_URL``;
credentials from the usual AWS chain. A PUT is atomic in S3, so every write is.

An endpoint that accepts connections but never answers fails within about a minute: each
request waits at most ``connect_timeout`` to connect and ``read_timeout`` for each read, and
is tried ``max_attempts`` times in all (defaults below; all three are options).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from strongroom.errors import ConfigError, IntegrityError, RepositoryNotFound, StorageError
from strongroom.storage import options as opt
from strongroom.storage.base import Backend, MissingObject, ObjectInfo
from strongroom.storage.staging import StagingReport, check_retrieval_tier

_MISSING = {"NoSuchKey", "404", "NotFound"}
ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
_lock_enabled: dict[tuple[str, str], bool] = {}  # (endpoint, bucket) -> Object Lock enabled
# A dead endpoint fails after about attempts x (timeout + backoff): 4 x 15 s + a few s < 70 s.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 15.0
MAX_ATTEMPTS = 4


class S3Backend(Backend):
    kind = "s3"
    # The options this backend knows, and how their values are checked (storage.options).
    OPTIONS: dict[str, opt.Validator] = {
        "endpoint": opt.http_url, "region": opt.region, "access_key_id": opt.text,
        "secret_access_key": opt.text, "max_attempts": opt.whole_number(1, 20),
        "connect_timeout": opt.seconds(0, 600), "read_timeout": opt.seconds(0, 3600),
    }

    def __init__(self, url: str, endpoint: str | None = None, region: str | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 max_attempts: int | str = MAX_ATTEMPTS,
                 connect_timeout: float | str = CONNECT_TIMEOUT_S,
                 read_timeout: float | str = READ_TIMEOUT_S, **_ignored: Any) -> None:
        rest = url.removeprefix("s3://")
        self.bucket, _, prefix = rest.partition("/")
        if not self.bucket:
            raise ConfigError(f"no bucket in S3 URL {url!r} (want s3://bucket/prefix)")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = url
        self.endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
            "AWS_ENDPOINT_URL")
        self.attempts = int(max_attempts)
        self.read_timeout = float(read_timeout)
        self.connect_timeout = float(connect_timeout)
        config = Config(
            retries={"mode": "standard", "total_max_attempts": self.attempts},
            connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            max_pool_connections=32,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        region = region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self._client_args: dict[str, Any] = {
            "endpoint_url": self.endpoint, "region_name": region,
            "aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key,
            "config": config}
        try:
            self.client = boto3.session.Session().client("s3", **self._client_args)
        except ValueError:  # botocore's InvalidRegionError, or an endpoint from the environment
            raise ConfigError(f"S3 region {region!r} or endpoint {self.endpoint!r} is not "
                              "valid") from None

    def after_fork(self) -> None:
        """A client of this process's own: the parent's pooled connections stay the parent's."""
        self.client = boto3.session.Session().client("s3", **self._client_args)

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _fail(self, exc: Exception, action: str, key: str) -> Exception:
        where = f"s3://{self.bucket}/{self._key(key)}"
        if isinstance(exc, ConnectTimeoutError):
            return StorageError(f"cannot reach S3 endpoint {self.endpoint or 'AWS'}: no "
                                f"connection within {self.connect_timeout:g} s "
                                f"({self.attempts} attempts)")
        if isinstance(exc, EndpointConnectionError):
            return StorageError(f"cannot reach S3 endpoint {self.endpoint or 'AWS'}")
        if isinstance(exc, ReadTimeoutError):
            return StorageError(f"S3 endpoint {self.endpoint or 'AWS'} did not answer within "
                                f"{self.read_timeout:g} s ({self.attempts} attempts; options "
                                "read_timeout, max_attempts)")
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                return RepositoryNotFound(f"no such bucket: {self.bucket}")
            if code in _MISSING:
                return MissingObject(f"missing object {key} in {self.url}")
            if code == "InvalidObjectState":  # archive tier (GLACIER / DEEP_ARCHIVE)
                return StorageError(f"{key} is in archive storage and not staged: run "
                                    "'strongroom archive stage' and wait")
            return StorageError(f"S3 {action} {where} failed: {code or exc}")
        return StorageError(f"S3 {action} {where} failed: {type(exc).__name__}")

    def put(self, key: str, data: bytes | memoryview, **extra: Any) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=bytes(data),
                                   **extra)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "put", key) from None

    def put_if_absent(self, key: str, data: bytes | memoryview, **extra: Any) -> bool:
        """A conditional PUT (``If-None-Match: *``): S3 lets exactly one of two racing
        writers create the object and answers the other 412 (or 409 while the first is
        still being written)."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=bytes(data),
                                   IfNoneMatch="*", **extra)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or \
                    status in (409, 412):
                return False
            raise self._fail(exc, "put", key) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "put", key) from None
        return True

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "get", key) from None

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            data = self.client.get_object(
                Bucket=self.bucket, Key=self._key(key),
                Range=f"bytes={offset}-{offset + length - 1}")["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "get", key) from None
        if len(data) != length:
            raise IntegrityError(f"object {key} is truncated (wanted {length} bytes at {offset})")
        return data

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        for key, size, _stored in self.list_times(prefix):
            yield key, size

    def list_times(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for obj in page.get("Contents", []):
                    yield (obj["Key"][len(self.prefix):], obj["Size"],
                           obj["LastModified"].timestamp())
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "list", prefix) from None

    def clock(self) -> float:
        """The server's time, from the ``Date`` header of a one-key listing of the repository's
        ``locks/`` (whole seconds: the start of the second, so an age measured with it is
        never too long; a listing, which every role may do under a prefix-scoped policy)."""
        try:
            reply = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key("locks/"),
                                                MaxKeys=1)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "list", "locks/") from None
        date = reply.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        try:
            return parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return self._probe_clock()  # a server (or proxy) that sends no Date

    def _probe_clock(self) -> float:
        """The date the server gives a probe object written now (``locks/clock-*``: not a lock
        to any reader), then removed; never this host's clock."""
        key = f"locks/clock-{secrets.token_hex(8)}"
        self.put(key, b"{}")
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))[
                "LastModified"].timestamp()
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "head", key) from None
        finally:
            try:
                self.delete(key)
            except StorageError:
                pass  # a stray probe: read_locks skips it as not a lock

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "delete", key) from None

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in _MISSING:
                return False
            raise self._fail(exc, "head", key) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "head", key) from None

    def size(self, key: str) -> int:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))[
                "ContentLength"]
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "head", key) from None

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (used by ``init``)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code != "BucketAlreadyOwnedByYou":  # another init made it just now
                    raise self._fail(exc, "create bucket", "") from None
            except BotoCoreError as exc:
                raise self._fail(exc, "create bucket", "") from None
        except BotoCoreError as exc:
            raise self._fail(exc, "head bucket", "") from None

    def prepare(self) -> None:
        self.ensure_bucket()

    # ---- archive storage classes and Object Lock, whatever options the backend has -------

    def head(self, key: str) -> ObjectInfo:
        try:
            info = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "head", key) from None
        storage_class = info.get("StorageClass") or "STANDARD"
        restore = info.get("Restore") or ""
        return ObjectInfo(
            size=info.get("ContentLength", 0), storage_class=storage_class,
            readable=storage_class not in ARCHIVE_CLASSES or 'ongoing-request="false"' in restore,
            staging='ongoing-request="true"' in restore,
            lock_mode=info.get("ObjectLockMode"),
            retain_until=info.get("ObjectLockRetainUntilDate"),
            legal_hold=info.get("ObjectLockLegalHoldStatus") == "ON")

    def readable(self, key: str) -> bool:
        return self.head(key).readable

    def lock_enabled(self) -> bool:
        """True if the bucket has Object Lock enabled (asked once per bucket and process)."""
        where = (str(self.endpoint), self.bucket)
        if where not in _lock_enabled:
            try:
                conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
                enabled = (conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
                           == "Enabled")
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if "ObjectLockConfigurationNotFound" not in code:
                    raise StorageError(f"cannot read object lock settings of bucket "
                                       f"{self.bucket}: {code}") from None
                enabled = False
            except BotoCoreError as exc:
                raise StorageError(f"cannot read object lock settings of bucket {self.bucket}: "
                                   f"{type(exc).__name__}") from None
            _lock_enabled[where] = enabled
        return _lock_enabled[where]

    def protection(self, key: str, now: datetime | None = None) -> str | None:
        if not self.lock_enabled():
            return None
        info = self.head(key)
        reasons = []
        if info.legal_hold:
            reasons.append("legal hold is on")
        until = info.retain_until
        if until is not None and until > (now or datetime.now(UTC)):
            reasons.append(f"object lock {info.lock_mode or 'retention'} until "
                           f"{until.date().isoformat()}")
        return "; ".join(reasons) or None

    def stage(self, keys: Iterable[str], days: int = 7,
              retrieval_tier: str = "Standard") -> StagingReport:
        """Ask S3 to restore every archived object in ``keys`` for ``days`` days (idempotent)."""
        check_retrieval_tier(retrieval_tier)
        report = StagingReport(retrieval_tier=retrieval_tier)
        for key in keys:
            info = self.head(key)
            if info.readable:
                report.ready.append(key)
                continue
            report.storage_classes.add(info.storage_class)
            if info.staging:
                report.in_progress.append(key)
                continue
            try:
                self.client.restore_object(
                    Bucket=self.bucket, Key=self._key(key),
                    RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": retrieval_tier}})
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "RestoreAlreadyInProgress":
                    raise self._fail(exc, "restore", key) from None
            report.requested.append(key)
        return report

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "kind": self.kind, "endpoint": self.endpoint,
                "region": self.client.meta.region_name, "bucket": self.bucket}
