"""Tree blobs: a directory's nodes as compact JSON with sorted keys (docs/FORMAT.md, Trees).

orjson does the work where its bytes are exactly those of ``json.dumps(..., sort_keys=True,
separators=(",", ":"))`` (plain ASCII, no floats): tree ids stay those of the standard library,
so unchanged directories keep deduplicating against trees written before. Anything else (names
that are not ASCII or not UTF-8, floats in ``meta``, integers beyond 64 bits) takes the
standard library's path.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from strongroom.repository.model import Node


def _stdlib(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def encode_tree(nodes: list[Node]) -> bytes:
    """The tree blob of ``nodes`` (already sorted by name)."""
    doc = {"nodes": [n.to_dict() for n in nodes]}
    if any(n.meta for n in nodes):  # floats print differently: keep the stdlib's form
        return _stdlib(doc)
    try:
        raw = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # lone surrogates (names that are not UTF-8), integers beyond 64 bits
        return _stdlib(doc)
    # json.dumps escapes everything outside ' '..'~' as \uXXXX; orjson writes DEL and
    # non-ASCII as they are: only then do the two differ
    if raw.isascii() and b"\x7f" not in raw:
        return raw
    return _stdlib(doc)


def decode_tree(raw: bytes) -> list[Node]:
    """The nodes of a tree blob (any JSON the standard library reads)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:  # lone surrogate escapes, NaN, integers beyond 64 bits
        doc = json.loads(raw)
    return [Node(**n) for n in doc["nodes"]]
