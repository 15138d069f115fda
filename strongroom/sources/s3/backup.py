"""Back up an S3 / MinIO bucket or prefix (optionally every version) into an ``s3`` snapshot.

Each object's content is streamed into the repository with ``add_stream`` (so equal data
deduplicates); the layout is in :mod:`strongroom.sources.s3.index`. An incremental backup lists
the bucket and reuses the parent's node for every object whose key, version, size, ETag and
last-modified are unchanged, without downloading it. Objects in an archive storage class that S3
refuses to GET (not restored) are skipped and counted in ``skipped_archived`` / ``skipped_keys``;
the CLI then exits 3.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from strongroom.errors import ConfigError, SourceError
from strongroom.repository import Node, Repository, Snapshot
from strongroom.repository.writer import SnapshotWriter
from strongroom.sources.parent import choose_parent
from strongroom.sources.s3.client import endpoint_of, error_code, errors, make_client
from strongroom.sources.s3.index import HEADERS, INDEX_PATH, history_order, object_path, read_index

WORKERS = 4


def _iso(t: datetime) -> str:
    return t.isoformat()


def list_objects(client: Any, bucket: str, prefix: str, versions: bool) -> Iterator[dict]:
    """Objects (and with ``versions`` every version and delete marker) under the prefix."""
    if not versions:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                       Prefix=prefix):
            for o in page.get("Contents", []):
                yield {"key": o["Key"], "version_id": None, "is_latest": True,
                       "delete_marker": False, "size": o["Size"], "etag": o["ETag"],
                       "last_modified": _iso(o["LastModified"]),
                       "storage_class": o.get("StorageClass", "STANDARD")}
        return
    seq: dict[tuple[str, bool], int] = {}  # S3 lists a key's versions newest first

    def age(key: str, marker: bool) -> int:
        n = seq[(key, marker)] = seq.get((key, marker), -1) + 1
        return n

    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket,
                                                                         Prefix=prefix):
        for o in page.get("Versions", []):
            yield {"key": o["Key"], "version_id": o.get("VersionId"),
                   "is_latest": o.get("IsLatest", False), "delete_marker": False,
                   "size": o["Size"], "etag": o["ETag"],
                   "last_modified": _iso(o["LastModified"]), "age": age(o["Key"], False),
                   "storage_class": o.get("StorageClass", "STANDARD")}
        for o in page.get("DeleteMarkers", []):
            yield {"key": o["Key"], "version_id": o.get("VersionId"),
                   "is_latest": o.get("IsLatest", False), "delete_marker": True, "size": 0,
                   "etag": "", "last_modified": _iso(o["LastModified"]),
                   "age": age(o["Key"], True)}


def _same(a: dict, b: dict) -> bool:
    return all(a.get(f) == b.get(f) for f in ("key", "version_id", "size", "etag",
                                              "last_modified", "delete_marker"))


class _Backup:
    def __init__(self, client: Any, writer: SnapshotWriter, bucket: str, endpoint: str | None,
                 parent: dict[tuple[str, str | None], tuple[dict, Node]],
                 refresh_tags: bool) -> None:
        self.client = client
        self.w = writer
        self.bucket = bucket
        self.endpoint = endpoint
        self.parent = parent
        self.refresh_tags = refresh_tags
        self.lock = threading.Lock()
        self.counts = {"downloaded": 0, "reused": 0, "vanished": 0}

    def tags(self, entry: dict) -> dict[str, str]:
        args = {"Bucket": self.bucket, "Key": entry["key"]}
        if entry["version_id"]:
            args["VersionId"] = entry["version_id"]
        with errors("backup", self.endpoint, self.bucket):
            tagset = self.client.get_object_tagging(**args).get("TagSet", [])
        return {t["Key"]: t["Value"] for t in tagset}

    def one(self, entry: dict) -> dict | None:
        """Store one listed object; return its index entry (None if it vanished)."""
        if entry["delete_marker"]:
            return entry
        path = object_path(entry["key"], entry["version_id"])
        old = self.parent.get((entry["key"], entry["version_id"]))
        if old is not None and _same(old[0], entry):
            self.w.add_node(path, old[1])
            full = {**old[0], **entry, "path": path}
            if self.refresh_tags:
                full["tags"] = self.tags(entry)
            with self.lock:
                self.counts["reused"] += 1
            return full
        args = {"Bucket": self.bucket, "Key": entry["key"]}
        if entry["version_id"]:
            args["VersionId"] = entry["version_id"]
        with errors("backup", self.endpoint, self.bucket):
            resp = self.client.get_object(**args)
        body = resp["Body"]
        try:
            with errors("backup", self.endpoint, self.bucket):
                node = self.w.add_stream(path, body, mode=0o644,
                                         mtime_ns=int(resp["LastModified"].timestamp() * 1e9),
                                         meta={"key": entry["key"]})
        finally:
            body.close()
        if node.size != resp["ContentLength"]:
            raise SourceError(f"backup: object {entry['key']!r} in bucket {self.bucket!r} was "
                              f"cut short ({node.size} of {resp['ContentLength']} bytes)")
        # what GET returned is what was stored: record its ETag and time, not the listing's
        full = {**entry, "path": path, "size": node.size, "etag": resp["ETag"],
                "last_modified": _iso(resp["LastModified"]), "sha256": node.sha256,
                "content_type": resp.get("ContentType", ""),
                "metadata": resp.get("Metadata", {}),
                "headers": {h: resp[h] for h in HEADERS if resp.get(h)},
                "tags": self.tags(entry)}
        with self.lock:
            self.counts["downloaded"] += 1
        return full


def _vanished(exc: SourceError) -> bool:
    return "NoSuchKey" in str(exc) or "NoSuchVersion" in str(exc)


def backup_bucket(repo: Repository, bucket: str, name: str, *, prefix: str = "",
                  endpoint: str | None = None, versions: bool = False, kind: str = "full",
                  tags: list[str] | tuple[str, ...] = (), refresh_tags: bool = True,
                  workers: int = WORKERS, progress: Callable[[int], None] | None = None,
                  region: str | None = None, access_key_id: str | None = None,
                  secret_access_key: str | None = None) -> Snapshot:
    """Back up ``s3://bucket/prefix`` into a new ``s3`` snapshot (see the module doc)."""
    client = make_client(endpoint, region, workers, access_key_id, secret_access_key)
    with errors("backup", endpoint, bucket):
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchBucket"):
                raise SourceError(f"backup: no such bucket {bucket!r} at "
                                  f"{endpoint_of(endpoint) or 'AWS S3'}") from None
            raise
    parent = choose_parent(repo, name, kind)
    if parent is not None and (parent.source_kind != "s3"
                               or parent.meta.get("bucket") != bucket
                               or parent.meta.get("prefix") != prefix
                               or parent.meta.get("versions") != versions):
        raise ConfigError(f"source {name!r} was last backed up from another bucket, prefix or "
                          "version mode: use a new --name or --kind full")
    known: dict[tuple[str, str | None], tuple[dict, Node]] = {}
    if parent is not None:
        reader = repo.reader(parent)
        nodes = {p: n for p, n in reader.walk() if n.type == "file" and p.startswith("objects/")}
        for e in read_index(reader):
            if not e["delete_marker"] and e["path"] in nodes:
                known[(e["key"], e["version_id"])] = (e, nodes[e["path"]])
    with repo.writer(source_name=name, source_kind="s3", kind=kind if parent else "full",
                     parent=parent, tags=list(tags), paths=[f"s3://{bucket}/{prefix}"],
                     progress=progress) as w:
        job = _Backup(client, w, bucket, endpoint, known, refresh_tags)
        with errors("backup", endpoint, bucket):
            listed = list(list_objects(client, bucket, prefix, versions))
        entries: list[dict] = []
        skipped: list[str] = []

        def run(entry: dict) -> dict | None:
            try:
                return job.one(entry)
            except SourceError as exc:
                if _vanished(exc):  # deleted between listing and reading: not an error
                    with job.lock:
                        job.counts["vanished"] += 1
                    return None
                if "InvalidObjectState" in str(exc):  # archived (Glacier): not readable now
                    with job.lock:
                        skipped.append(entry["key"])
                    return None
                raise

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-backup") as pool:
            for res in pool.map(run, listed):
                if res is not None:
                    entries.append(res)
        entries.sort(key=history_order)
        sha = hashlib.sha256()
        with tempfile.SpooledTemporaryFile(max_size=16 << 20) as spool:
            for e in entries:
                line = (json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n").encode()
                sha.update(line)
                spool.write(line)
            spool.seek(0)
            w.add_stream(INDEX_PATH, spool, mode=0o600)
        objects = [e for e in entries if not e["delete_marker"]]
        w.set_meta({"bucket": bucket, "prefix": prefix, "versions": versions,
                    "endpoint": endpoint_of(endpoint) or "",
                    "objects": len(objects), "bytes": sum(e["size"] for e in objects),
                    "delete_markers": len(entries) - len(objects),
                    "index_sha256": sha.hexdigest(), **job.counts,
                    "skipped_archived": len(skipped), "skipped_keys": sorted(skipped)[:50]})
        return w.commit()
