"""Restore an ``s3`` snapshot into the same or another bucket/prefix, then verify it.

An object is written only after its content has been read from the repository and checked
against its SHA-256: small objects are read whole, then PUT; large ones go up as a multipart upload
that is completed only after the last part was read and the hash matched (aborted otherwise).
Content type, other headers, user metadata and tags come along. Verification lists the target and
compares count and sizes, and (``verify=full``, the default) downloads every object again to
compare its SHA-256, its metadata and tags.
"""

from __future__ import annotations

import fnmatch
import hashlib
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from strongroom.errors import ConfigError, IntegrityError, StrongroomError, TargetNotEmpty
from strongroom.repository import Repository, Snapshot
from strongroom.repository.reader import SnapshotReader
from strongroom.sources.s3.client import errors, make_client, parse_s3_url
from strongroom.sources.s3.index import HEADERS, history_order, read_index

PART_SIZE = 16 * 1024 * 1024  # also the single-PUT limit
MAX_PARTS = 10_000
WORKERS = 4
# credentials and progress come only from in-process callers (a Prefect source block)
IN_PROCESS_OPTIONS = {"access_key_id", "secret_access_key", "progress"}
RESTORE_OPTIONS = {"endpoint", "endpoint_url", "region", "versions", "verify", "part_size_mib",
                   "create_bucket", "workers", *IN_PROCESS_OPTIONS}


def check_options(options: dict[str, Any]) -> None:
    """ConfigError for an unknown option: a misspelt verify=/versions= must not silently fall
    back to the default."""
    unknown = sorted(set(options) - RESTORE_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown s3 restore option(s) {', '.join(unknown)} (known: "
                          f"{', '.join(sorted(RESTORE_OPTIONS - IN_PROCESS_OPTIONS))})")


def _selected(entries: list[dict], include: list[str], versions: str) -> list[dict]:
    def wanted(key: str) -> bool:
        return not include or any(key.startswith(p) or fnmatch.fnmatchcase(key, p)
                                  for p in include)

    if versions == "all":
        return [e for e in entries if wanted(e["key"])]
    return [e for e in entries if e["is_latest"] and not e["delete_marker"] and wanted(e["key"])]


class _Restore:
    def __init__(self, client: Any, reader: SnapshotReader, bucket: str, endpoint: str | None,
                 part_size: int, progress: Callable[[int], None] | None) -> None:
        self.client = client
        self.reader = reader
        self.bucket = bucket
        self.endpoint = endpoint
        self.part_size = part_size
        self.progress = progress
        self.lock = threading.Lock()
        self.written = 0
        self.multipart = 0
        # one walk instead of a tree search per object
        self.nodes = {p: n for p, n in reader.walk() if n.type == "file"}

    def extra(self, e: dict) -> dict[str, Any]:
        args: dict[str, Any] = {"Metadata": e.get("metadata", {})}
        if e.get("content_type"):
            args["ContentType"] = e["content_type"]
        args.update({h: v for h, v in e.get("headers", {}).items() if h in HEADERS})
        if e.get("tags"):
            args["Tagging"] = urlencode(e["tags"])
        return args

    def put(self, e: dict, key: str) -> None:
        if e["delete_marker"]:
            with errors("restore", self.endpoint, self.bucket):
                self.client.delete_object(Bucket=self.bucket, Key=key)
            with self.lock:
                self.written += 1
            return
        node = self.nodes.get(e["path"]) or self.reader.node(e["path"])
        if node.sha256 != e["sha256"] or node.size != e["size"]:
            raise IntegrityError(f"snapshot {self.reader.snap.short_id}: object {e['key']!r} "
                                 "does not match its index entry")
        chunks = self.reader.chunks(node, e["path"])
        part_size = max(self.part_size, -(-node.size // MAX_PARTS))
        if node.size <= part_size:
            data = b"".join(chunks)  # the generator checks the SHA-256 at its end
            with errors("restore", self.endpoint, self.bucket):
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **self.extra(e))
        else:
            self.put_multipart(key, e, chunks, part_size)
        if self.progress:
            self.progress(node.size)
        with self.lock:
            self.written += 1

    def put_multipart(self, key: str, e: dict, chunks: Any, part_size: int) -> None:
        with errors("restore", self.endpoint, self.bucket):
            upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key,
                                                         **self.extra(e))["UploadId"]
        parts: list[dict] = []
        try:
            buf = bytearray()
            for chunk in chunks:  # the SHA-256 is checked when this loop ends
                buf += chunk
                while len(buf) >= part_size:
                    parts.append(self.part(key, upload, len(parts) + 1, bytes(buf[:part_size])))
                    del buf[:part_size]
            if buf or not parts:
                parts.append(self.part(key, upload, len(parts) + 1, bytes(buf)))
            with errors("restore", self.endpoint, self.bucket):
                self.client.complete_multipart_upload(Bucket=self.bucket, Key=key,
                                                      UploadId=upload,
                                                      MultipartUpload={"Parts": parts})
            with self.lock:
                self.multipart += 1
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            except ClientError:
                pass
            raise

    def part(self, key: str, upload: str, number: int, data: bytes) -> dict:
        with errors("restore", self.endpoint, self.bucket):
            resp = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload,
                                           PartNumber=number, Body=data)
        return {"PartNumber": number, "ETag": resp["ETag"]}


def _target_keys(client: Any, bucket: str, prefix: str, endpoint: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    with errors("restore", endpoint, bucket):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                       Prefix=prefix):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["Size"]
    return out


def _check_object(client: Any, bucket: str, key: str, e: dict, endpoint: str | None) -> None:
    """Download ``key`` again: SHA-256, content type, metadata and tags as in the snapshot."""
    sha = hashlib.sha256()
    with errors("verify", endpoint, bucket):
        resp = client.get_object(Bucket=bucket, Key=key)
        for block in iter(lambda: resp["Body"].read(1 << 20), b""):
            sha.update(block)
        tags = {t["Key"]: t["Value"]
                for t in client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])}
    if sha.hexdigest() != e["sha256"]:
        raise IntegrityError(f"restore check failed: s3://{bucket}/{key} has SHA-256 "
                             f"{sha.hexdigest()[:16]}..., the snapshot {e['sha256'][:16]}...")
    if resp.get("Metadata", {}) != e.get("metadata", {}) or tags != e.get("tags", {}) or \
            (e.get("content_type") and resp.get("ContentType") != e["content_type"]):
        raise IntegrityError(f"restore check failed: s3://{bucket}/{key} lost its content "
                             "type, metadata or tags")


def restore_bucket(repo: Repository, snap: Snapshot, target: str, *, replace: bool,
                   include: list[str], options: dict[str, Any],
                   progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Restore into ``s3://bucket/prefix``; options: endpoint, region, versions=latest|all,
    verify=full|quick, part_size_mib, create_bucket=yes, workers (in-process callers may also
    pass access_key_id / secret_access_key). ``progress`` is called with bytes written."""
    bucket, tprefix = parse_s3_url(target)
    endpoint = options.get("endpoint") or options.get("endpoint_url")
    versions = str(options.get("versions", "latest"))
    verify = str(options.get("verify", "full"))
    if versions not in ("latest", "all") or verify not in ("full", "quick"):
        raise ConfigError("s3 restore options: versions=latest|all, verify=full|quick")
    part_size = int(float(options.get("part_size_mib", PART_SIZE >> 20)) * (1 << 20))
    if part_size < 5 << 20:
        raise ConfigError("part_size_mib must be at least 5 (the S3 minimum part size)")
    workers = int(options.get("workers", WORKERS))
    client = make_client(endpoint, options.get("region"),
                         workers, options.get("access_key_id"), options.get("secret_access_key"))
    reader = repo.reader(snap)
    entries = _selected(read_index(reader), include, versions)
    sprefix = snap.meta.get("prefix", "")
    _prepare_bucket(client, bucket, tprefix, endpoint, replace, versions, options)
    job = _Restore(client, reader, bucket, endpoint, part_size,
                   progress or options.get("progress"))
    by_key: dict[str, list[dict]] = defaultdict(list)
    for e in entries:  # versions are replayed oldest first
        by_key[tprefix + e["key"][len(sprefix):]].append(e)

    def restore_key(item: tuple[str, list[dict]]) -> None:
        key, versions_of_key = item
        for e in sorted(versions_of_key, key=history_order):
            job.put(e, key)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-restore") as pool:
            list(pool.map(restore_key, sorted(by_key.items())))
    except StrongroomError as exc:
        if job.written:
            raise type(exc)(f"{exc} ({job.written} object(s) were already written under "
                            f"{target}; they are complete and verified, the rest is missing)"
                            ) from None
        raise
    final = {k: next(e for e in v if e["is_latest"]) if versions == "all" else v[0]
             for k, v in by_key.items()}
    final = {k: e for k, e in final.items() if not e["delete_marker"]}
    found = _target_keys(client, bucket, tprefix, endpoint)
    for key, e in final.items():
        if found.get(key) != e["size"]:
            raise IntegrityError(f"restore check failed: s3://{bucket}/{key} is "
                                 f"{'missing' if key not in found else f'{found[key]} bytes'}, "
                                 f"the snapshot has {e['size']} bytes")
    if verify == "full":
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-verify") as pool:
            list(pool.map(lambda kv: _check_object(client, bucket, kv[0], kv[1], endpoint),
                          final.items()))
    return {"snapshot": snap.id, "target": target, "objects": len(final),
            "bytes": sum(e["size"] for e in final.values()), "versions_written": job.written,
            "multipart": job.multipart, "other_objects": len(set(found) - set(final)),
            "verified": "sha256" if verify == "full" else "sizes"}


def _prepare_bucket(client: Any, bucket: str, prefix: str, endpoint: str | None, replace: bool,
                    versions: str, options: dict[str, Any]) -> None:
    with errors("restore", endpoint, bucket):
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket"):
                raise
            if str(options.get("create_bucket", "")).lower() not in ("1", "yes", "true"):
                raise ConfigError(f"restore target bucket {bucket!r} does not exist (create it, "
                                  "or pass create_bucket=yes)") from None
            client.create_bucket(Bucket=bucket)
            if versions == "all":
                client.put_bucket_versioning(Bucket=bucket,
                                             VersioningConfiguration={"Status": "Enabled"})
        if versions == "all" and client.get_bucket_versioning(Bucket=bucket).get(
                "Status") != "Enabled":
            raise ConfigError(f"versions=all needs versioning enabled on bucket {bucket!r}")
        busy = holds_objects(client, bucket, prefix)
    refuse_busy(bucket, prefix, busy, replace)


def holds_objects(client: Any, bucket: str, prefix: str) -> bool:
    """Whether any object is stored under ``s3://bucket/prefix`` (an existing bucket)."""
    return bool(client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
                .get("KeyCount", 0))


def refuse_busy(bucket: str, prefix: str, busy: bool, replace: bool) -> None:
    """TargetNotEmpty for objects under the target prefix without ``replace``: the one rule of
    a restore and of the check before it."""
    if busy and not replace:
        raise TargetNotEmpty(f"restore target s3://{bucket}/{prefix} is not empty (use "
                             "--replace to overwrite the snapshot's objects)")
