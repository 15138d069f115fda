"""Type-aware fingerprints of Redis keys: per-db counts, types, expiries and value checksums.

A key's digest covers its type and its logical value (not its encoding), so it is equal on any
server that holds the same data. Unordered types (hash, set) fold element hashes by addition
modulo 2**256; ordered types (list, zset, stream) hash their elements in order. A database's
checksum folds ``H(key, type, digest)`` the same way, so it does not depend on SCAN order.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

BATCH = 500  # keys per pipeline round trip
CHUNK = 1000  # elements per read of a large collection
_MOD = 1 << 256


def _h(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.digest()


def _b(v: object) -> bytes:
    if isinstance(v, bytes):
        return v
    return b"" if v is None else str(v).encode()


class Fold:
    """Order-independent fold of 32-byte hashes."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, digest: bytes) -> None:
        self.total = (self.total + int.from_bytes(digest, "big")) % _MOD

    def digest(self) -> bytes:
        return self.total.to_bytes(32, "big")


@dataclass
class KeyFacts:
    """One key as read from one server."""

    type: str  # "none" when the key does not exist (any more)
    expire_ms: int  # absolute unix ms, -1 for no expiry, -2 when missing
    digest: bytes


@dataclass
class DbFacts:
    """A database's totals; ``checksum`` and ``expiry_checksum`` are hex."""

    keys: int = 0
    types: Counter = field(default_factory=Counter)
    expires: int = 0
    expire_first_ms: int | None = None  # earliest absolute expiry (unix ms)
    expire_last_ms: int | None = None
    checksum: str = ""
    expiry_checksum: str = ""

    def as_meta(self) -> dict:
        return {"keys": self.keys, "types": dict(sorted(self.types.items())),
                "expires": self.expires, "expire_first_ms": self.expire_first_ms,
                "expire_last_ms": self.expire_last_ms, "checksum": self.checksum,
                "expiry_checksum": self.expiry_checksum}


def keyspace_dbs(client: redis.Redis) -> list[int]:
    """Database numbers that hold keys, from INFO keyspace."""
    info = client.info("keyspace")
    return sorted(int(name[2:]) for name, v in info.items()
                  if name.startswith("db") and int(v.get("keys", 0)) > 0)


def scan_batches(client: redis.Redis, batch: int = BATCH) -> Iterator[list[bytes]]:
    """Every key of the client's database once, in batches (SCAN may repeat keys: dropped)."""
    seen: set[int] = set()
    cursor = 0
    pending: list[bytes] = []
    while True:
        cursor, keys = client.scan(cursor=cursor, count=batch)
        for k in keys:
            tag = int.from_bytes(hashlib.blake2b(k, digest_size=12).digest(), "little")
            if tag not in seen:
                seen.add(tag)
                pending.append(k)
        if len(pending) >= batch or (cursor == 0 and pending):
            yield pending
            pending = []
        if cursor == 0:
            return


def _expire_times(client: redis.Redis, keys: list[bytes]) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.execute_command("PEXPIRETIME", k)
    return [int(x) for x in pipe.execute()]


def key_facts(client: redis.Redis, keys: list[bytes]) -> list[KeyFacts]:
    """Type, absolute expiry and value digest of each key (three pipelined round trips)."""
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.type(k)
        pipe.execute_command("PEXPIRETIME", k)
    raw = pipe.execute()
    types = [_b(t).decode() for t in raw[0::2]]
    expires = [int(x) for x in raw[1::2]]
    pipe = client.pipeline(transaction=False)
    for k, t in zip(keys, types, strict=True):
        _size_cmd(pipe, t, k)
    sizes = pipe.execute()
    pipe = client.pipeline(transaction=False)
    small: list[int] = []
    for i, (k, t, n) in enumerate(zip(keys, types, sizes, strict=True)):
        if t in ("list", "set", "hash", "zset", "stream") and int(n) <= CHUNK:
            _read_all(pipe, t, k)
            small.append(i)
    values = dict(zip(small, pipe.execute(), strict=True))
    out = []
    for i, (k, t) in enumerate(zip(keys, types, strict=True)):
        if t == "none":
            digest = b""
        elif t == "string":
            digest = _h(b"string", _b(sizes[i]))
        elif i in values:
            digest = _digest_small(client, t, k, values[i])
        elif t in ("list", "set", "hash", "zset", "stream"):
            digest = _digest_large(client, t, k)
        else:  # module types: fall back on the serialized payload
            digest = _h(t.encode(), _b(client.dump(k)))
        out.append(KeyFacts(t, expires[i] if t != "none" else -2, digest))
    return out


def _size_cmd(pipe, t: str, k: bytes) -> None:
    cmd = {"string": "GET", "list": "LLEN", "set": "SCARD", "hash": "HLEN", "zset": "ZCARD",
           "stream": "XLEN"}.get(t)
    if cmd:
        pipe.execute_command(cmd, k)
    else:
        pipe.exists(k)


def _read_all(pipe, t: str, k: bytes) -> None:
    if t == "list":
        pipe.lrange(k, 0, -1)
    elif t == "set":
        pipe.smembers(k)
    elif t == "hash":
        pipe.hgetall(k)
    elif t == "zset":
        pipe.zrange(k, 0, -1, withscores=True, score_cast_func=_b)
    else:
        pipe.xrange(k, "-", "+")


def _digest_small(client: redis.Redis, t: str, k: bytes, value) -> bytes:
    if t == "list":
        return _ordered(b"list", (_h(v) for v in value))
    if t == "set":
        return _unordered(b"set", (_h(m) for m in value))
    if t == "hash":
        return _unordered(b"hash", (_h(f, v) for f, v in value.items()))
    if t == "zset":
        return _ordered(b"zset", (_h(m, s) for m, s in value))
    return _stream(client, k, value)


def _ordered(tag: bytes, items: Iterator[bytes]) -> bytes:
    h = hashlib.sha256(tag)
    for d in items:
        h.update(d)
    return h.digest()


def _unordered(tag: bytes, items: Iterator[bytes]) -> bytes:
    s = Fold()
    for d in set(items):  # SCAN-style reads may repeat an element
        s.add(d)
    return _h(tag, s.digest())


def _entry(entry) -> bytes:
    eid, fields = entry
    flat = [_b(eid)]
    for f, v in (fields or {}).items():
        flat += [_b(f), _b(v)]
    return _h(*flat)


def _stream(client: redis.Redis, k: bytes, entries) -> bytes:
    h = hashlib.sha256(b"stream")
    for e in entries:
        h.update(_entry(e))
    h.update(_stream_state(client, k))
    return h.digest()


def _stream_state(client: redis.Redis, k: bytes) -> bytes:
    info = {_b(a).decode(): b for a, b in client.execute_command("XINFO", "STREAM", k).items()}
    parts = [_b(info.get(f)) for f in ("length", "last-generated-id", "max-deleted-entry-id",
                                       "entries-added")]
    for g in sorted(client.execute_command("XINFO", "GROUPS", k),
                    key=lambda g: _b(g.get(b"name", g.get("name")))):
        g = {_b(a).decode(): b for a, b in g.items()}
        parts += [_b(g.get(f)) for f in ("name", "last-delivered-id", "pending", "entries-read",
                                         "consumers")]
    return _h(*parts)


def _digest_large(client: redis.Redis, t: str, k: bytes) -> bytes:
    if t == "list":
        def items():
            start = 0
            while chunk := client.lrange(k, start, start + CHUNK - 1):
                yield from (_h(v) for v in chunk)
                start += CHUNK
        return _ordered(b"list", items())
    if t == "zset":
        def zitems():
            start = 0
            while chunk := client.zrange(k, start, start + CHUNK - 1, withscores=True,
                                         score_cast_func=_b):
                yield from (_h(m, s) for m, s in chunk)
                start += CHUNK
        return _ordered(b"zset", zitems())
    if t == "set":
        return _unordered(b"set", (_h(m) for m in client.sscan_iter(k, count=CHUNK)))
    if t == "hash":
        return _unordered(b"hash", (_h(f, v) for f, v in client.hscan_iter(k, count=CHUNK)))
    h = hashlib.sha256(b"stream")
    last = "-"
    while chunk := client.xrange(k, last, "+", count=CHUNK):
        for e in chunk:
            h.update(_entry(e))
        last = "(" + _b(chunk[-1][0]).decode()
    h.update(_stream_state(client, k))
    return h.digest()


def db_facts(client: redis.Redis) -> DbFacts:
    """Totals for the client's selected database."""
    facts = DbFacts()
    total, expiry = Fold(), Fold()
    for keys in scan_batches(client):
        for k, f in zip(keys, key_facts(client, keys), strict=True):
            if f.type == "none":
                continue  # expired while we looked
            facts.keys += 1
            facts.types[f.type] += 1
            total.add(fingerprint(k, f.type, f.digest))
            if f.expire_ms >= 0:
                facts.expires += 1
                facts.expire_first_ms = min(facts.expire_first_ms or f.expire_ms, f.expire_ms)
                facts.expire_last_ms = max(facts.expire_last_ms or 0, f.expire_ms)
                expiry.add(_h(k, str(f.expire_ms).encode()))
    facts.checksum = total.digest().hex()
    facts.expiry_checksum = expiry.digest().hex()
    return facts


def inventory(server_client, dbs: list[int]) -> dict[int, DbFacts]:
    """Facts per database; ``server_client(db)`` returns a client bound to that db."""
    return {db: db_facts(server_client(db)) for db in dbs}


def fingerprint(key: bytes, type_: str, digest: bytes) -> bytes:
    """What a database checksum folds for one key."""
    return _h(key, type_.encode(), digest)


def now_ms() -> int:
    return int(time.time() * 1000)
