"""The layout of an ``s3`` snapshot, shared by backup and restore.

Each object's content lives at ``objects/<xx>/<id>``, ``id`` a hash of key and version id (S3
keys are not paths: ``a`` and ``a/b`` can both exist, keys may hold ``..``). ``index.jsonl``
lists every object with its key, version, size, ETag, last-modified, content type and other
headers, user metadata, tags and SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import json

from strongroom.repository.reader import SnapshotReader

INDEX_PATH = "index.jsonl"
# Object headers kept in the index and put back on restore.
HEADERS = ("CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage",
           "WebsiteRedirectLocation")


def object_path(key: str, version_id: str | None) -> str:
    """Where an object's content lives in the snapshot."""
    oid = hashlib.sha256(f"{key}\0{version_id or ''}".encode()).hexdigest()[:40]
    return f"objects/{oid[:2]}/{oid}"


def history_order(e: dict) -> tuple:
    """Sort key: by object key, then oldest version first (``age`` breaks same-second ties)."""
    return (e["key"], e["is_latest"], e["last_modified"], -e.get("age", 0))


def read_index(reader: SnapshotReader) -> list[dict]:
    """The snapshot's object index, in history order."""
    with reader.open(INDEX_PATH) as f:
        return [json.loads(line) for line in io.TextIOWrapper(f, encoding="utf-8") if line]
