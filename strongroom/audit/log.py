"""The audit log: one immutable, hash-chained, MAC'd object per operation, ``audit/<seq>``.

Record ``n`` is stored at ``audit/<n as 12 digits>`` (n from 1) and holds the SHA-256 of the
stored bytes of record ``n-1`` (``prev``) and an HMAC-SHA256 over its other fields (``mac``)
under the repository's stable ``audit-mac`` subkey (HKDF of the master key in format 1, a base
key in format 2: no key rotation or migration changes it; ``key`` names it). Writers claim the
next sequence number with ``put_if_absent``: of two writers racing for one number exactly one
wins; the other reads the winner's record, links to it and tries the next number. So the
numbers are dense by construction, and a gap, a broken link or a bad MAC is tampering.

A record naming another key (none should: the key is stable) cannot be MAC-checked; it is
accepted only when the hash chain from a later record whose MAC checks vouches for it. Records
are JSON, not encrypted: they hold operation names, arguments without secrets, user, host,
snapshot ids and sizes, never file contents or keys.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strongroom.errors import IntegrityError, StorageError
from strongroom.storage.base import Backend, MissingObject

PREFIX = "audit/"
SEQ_DIGITS = 12
GENESIS = "0" * 64
RECORD_VERSION = 1
CLAIM_ATTEMPTS = 200  # racing writers: each lost claim moves one number on
_NAME = re.compile(r"^audit/(\d{12})$")


def key_id(key: bytes) -> str:
    """A public name of an audit key (which master key MAC'd a record), not the key."""
    return hmac.new(key, b"strongroom audit key id", hashlib.sha256).hexdigest()[:16]


def record_key(seq: int) -> str:
    return f"{PREFIX}{seq:0{SEQ_DIGITS}d}"


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def record_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _mac(key: bytes, body: dict[str, Any]) -> str:
    return hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


def seal(key: bytes, body: dict[str, Any]) -> bytes:
    """The stored bytes of a record: its fields, its key id and their MAC."""
    doc = {**body, "key": key_id(key)}
    doc["mac"] = _mac(key, doc)
    return _canonical(doc)


# ---- finding the head --------------------------------------------------------------------

def find_head(backend: Backend, hint: int = 0) -> int:
    """The highest record number in use (0: empty log), by galloping and binary search over
    ``exists`` (about 2·log2(n) requests, no listing). ``hint`` is a number known to exist."""
    low = hint if hint > 0 and backend.exists(record_key(hint)) else 0
    step = 1
    high = low + step
    while backend.exists(record_key(high)):
        low = high
        step *= 2
        high = low + step
    while high - low > 1:  # low exists (or is 0), high does not
        mid = (low + high) // 2
        if backend.exists(record_key(mid)):
            low = mid
        else:
            high = mid
    return low


def _read_hash(backend: Backend, seq: int) -> str:
    if seq <= 0:
        return GENESIS
    return record_hash(backend.get(record_key(seq)))


_HEADS: dict[str, int] = {}  # backend url -> highest number this process saw (a hint)


def append(backend: Backend, key: bytes, body: dict[str, Any]) -> tuple[int, str]:
    """Write ``body`` as the next record; return its number and hash. Racing writers each get
    their own number; the chain stays linear."""
    head = find_head(backend, _HEADS.get(backend.url, 0))
    for _attempt in range(CLAIM_ATTEMPTS):
        seq = head + 1
        try:
            prev = _read_hash(backend, head)
        except MissingObject:  # the head we found vanished: the log was tampered with
            raise IntegrityError(f"audit record {head} vanished while appending") from None
        raw = seal(key, {"v": RECORD_VERSION, "seq": seq, "prev": prev, **body})
        if backend.put_if_absent(record_key(seq), raw):
            _HEADS[backend.url] = seq
            return seq, record_hash(raw)
        head = find_head(backend, seq)  # someone took it: link to theirs (and any after it)
    raise StorageError(f"could not append an audit record after {CLAIM_ATTEMPTS} attempts "
                       "(too many concurrent writers)")


# ---- reading and verifying ---------------------------------------------------------------

@dataclass
class Record:
    """One stored record as read back (``doc`` is its JSON, ``raw`` its stored bytes)."""

    seq: int
    raw: bytes
    doc: dict[str, Any]

    @property
    def time(self) -> datetime | None:
        try:
            return datetime.fromisoformat(str(self.doc.get("time")))
        except ValueError:
            return None


def _numbers(backend: Backend) -> tuple[list[int], list[str]]:
    numbers, strays = [], []
    for name, _size in backend.list(PREFIX):
        m = _NAME.match(name)
        if m:
            numbers.append(int(m.group(1)))
        else:
            strays.append(name)
    return sorted(numbers), strays


def read_records(backend: Backend) -> Iterator[Record]:
    """Every record that parses, in sequence order (for listing; :func:`verify` judges)."""
    numbers, _ = _numbers(backend)
    for seq in numbers:
        try:
            raw = backend.get(record_key(seq))
            doc = json.loads(raw)
        except (MissingObject, ValueError):
            continue
        if isinstance(doc, dict):
            yield Record(seq, raw, doc)


@dataclass
class VerifyResult:
    records: int = 0
    head: int = 0
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)
    older_key: int = 0  # records authenticated through the chain, not their own MAC

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "head": self.head,
                "head_hash": self.head_hash, "older_key_records": self.older_key,
                "problems": self.problems}


def verify(backend: Backend, key: bytes, known_head: tuple[int, str] | None = None,
           visit: Callable[[Record], None] | None = None) -> VerifyResult:
    """Check every record: numbering without gaps, each MAC, each link to its predecessor;
    ``known_head`` (number, hash) a record this client saw before, which must still be there
    unchanged (catches a log cut short at its end). ``visit`` sees each record that parses
    (one pass for a summary that is also a verification)."""
    result = VerifyResult()
    numbers, strays = _numbers(backend)
    for name in strays:
        result.problems.append(f"{name}: not an audit record name (forged or misplaced)")
    mine = key_id(key)
    present = set(numbers)
    top = numbers[-1] if numbers else 0
    prev_hash: str | None = GENESIS
    unauthenticated: list[int] = []  # older-key records waiting for a checked successor
    for seq in range(1, top + 1):
        if seq not in present:
            result.problems.append(f"audit record {seq} is missing (removed)")
            prev_hash = None
            unauthenticated.clear()
            continue
        try:
            raw = backend.get(record_key(seq))
        except MissingObject:
            result.problems.append(f"audit record {seq} is missing (removed)")
            prev_hash = None
            continue
        result.records += 1
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise ValueError
        except ValueError:
            result.problems.append(f"audit record {seq} is damaged (not a record)")
            prev_hash = record_hash(raw)
            continue
        if visit is not None:
            visit(Record(seq, raw, doc))
        body = {k: v for k, v in doc.items() if k != "mac"}
        if doc.get("seq") != seq:
            result.problems.append(f"audit record {seq} says it is record {doc.get('seq')} "
                                   "(reordered or moved)")
        if prev_hash is not None and doc.get("prev") != prev_hash:
            result.problems.append(f"audit record {seq} does not link to record {seq - 1} "
                                   f"(record {seq - 1} altered or replaced, or {seq} forged)")
        if doc.get("key") == mine:
            if not hmac.compare_digest(str(doc.get("mac", "")), _mac(key, body)):
                result.problems.append(f"audit record {seq} fails its MAC (altered or forged)")
            else:
                unauthenticated.clear()  # its chain vouches for the older-key records before
        else:
            unauthenticated.append(seq)
            result.older_key += 1
        prev_hash = record_hash(raw)
        result.head, result.head_hash = seq, prev_hash
    for seq in unauthenticated:
        result.problems.append(f"audit record {seq} is under another key and no later record "
                               "vouches for it (forged?)")
    if known_head is not None:
        seq, digest = known_head
        if seq > top:
            result.problems.append(f"audit records {top + 1}..{seq} are missing: this client saw "
                                   f"record {seq} before (the log was cut short)")
        elif seq in present:
            try:
                if record_hash(backend.get(record_key(seq))) != digest:
                    result.problems.append(f"audit record {seq} differs from the one this "
                                           "client saw before (replaced)")
            except MissingObject:
                pass
    return result


def summary(backend: Backend, since: datetime | None = None, key: bytes | None = None,
            known_head: tuple[int, str] | None = None) -> dict[str, Any]:
    """Counts for reports: records since ``since`` by operation and outcome, and how many of
    them came from a Prefect flow run. With the audit ``key``, the same pass verifies the whole
    chain: ``verified``, ``problems`` (the first few), ``second_factor_refusals`` and
    ``failed`` (operations that failed) are added."""
    by_op: dict[str, int] = {}
    by_outcome: dict[str, int] = {}
    counts = {"total": 0, "from_flows": 0}

    def count(rec: Record) -> None:
        if since is not None and (rec.time is None or rec.time < since):
            return
        counts["total"] += 1
        op, outcome = str(rec.doc.get("op")), str(rec.doc.get("outcome"))
        by_op[op] = by_op.get(op, 0) + 1
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
        context = rec.doc.get("context")
        counts["from_flows"] += bool(isinstance(context, dict) and context.get("flow_run"))

    if key is None:
        for rec in read_records(backend):
            count(rec)
        checked = None
    else:
        checked = verify(backend, key, known_head, visit=count)
    out: dict[str, Any] = {"records": counts["total"], "by_operation": by_op,
                           "by_outcome": by_outcome, "from_flow_runs": counts["from_flows"]}
    if checked is not None:
        out |= {"verified": checked.ok, "chain_records": checked.records,
                "problems": checked.problems[:3], "failed": by_outcome.get("failed", 0),
                "second_factor_refusals": by_op.get("mfa refused", 0)}
    return out
