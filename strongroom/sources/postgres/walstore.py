"""The WAL archive inside a repository.

Layout (all through the engine's snapshot API, so WAL is encrypted and deduplicated like every
other blob): the WAL of cluster ``NAME`` lives in snapshots of source ``NAME-wal`` (source kind
``postgres-wal``, kind ``snapshot``, tag ``wal``). Each holds one or more files under ``wal/``
(segments, ``.partial`` segments, timeline ``.history`` files) and lists them in its meta::

    meta = {"wal": {"cluster": NAME, "system_id": "...", "seg_size": 16777216,
                    "files": [[file name, size, sha256], ...]}}

so listing the archive reads manifests only, never trees. Each archived file first becomes its
own small snapshot (durable as soon as it is committed); :func:`compact` later folds many of
them into one snapshot (reusing their stored content, nothing is re-read or re-uploaded) and
removes the small ones, so the number of manifests stays small. A file may appear in several
snapshots (a crash between the two steps of compaction, or two archivers): identical copies
are harmless and the catalogue keeps one.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from strongroom.errors import IntegrityError, SnapshotNotFound, SourceError
from strongroom.repository import Repository, Snapshot
from strongroom.sources.postgres import walnames as wn
from strongroom.sources.postgres.backups import physical_snapshots

KIND = "postgres-wal"
COMPACT_AT = 48  # fold the small WAL snapshots once there are this many


def wal_source(name: str) -> str:
    return f"{name}-wal"


@dataclass
class WalEntry:
    name: str
    size: int
    sha256: str
    snapshot: Snapshot

    @property
    def time(self) -> datetime:
        return self.snapshot.time


class WalCatalog:
    """What the archive holds for one cluster, from snapshot manifests only."""

    def __init__(self, repo: Repository, name: str, snaps: list[Snapshot]) -> None:
        self.repo = repo
        self.name = name
        self.snapshots = snaps
        self.files: dict[str, WalEntry] = {}
        self.seg_size = 0
        self.system_id: str | None = None
        for snap in snaps:
            wal = snap.meta.get("wal") or {}
            self.seg_size = int(wal.get("seg_size") or self.seg_size)
            self.system_id = wal.get("system_id") or self.system_id
            for fname, size, sha in wal.get("files", []):
                # snapshots come oldest first: a newer .partial supersedes an older one
                if fname not in self.files or fname.endswith(".partial"):
                    self.files[fname] = WalEntry(fname, int(size), sha, snap)

    @classmethod
    def load(cls, repo: Repository, name: str) -> WalCatalog:
        return cls(repo, name, repo.list_snapshots(wal_source(name)))

    def segments(self) -> dict[tuple[int, int], str]:
        """{(timeline, segno): file name} of complete segments."""
        out = {}
        for fname in self.files:
            if wn.classify(fname) == "segment":
                out[wn.parse_segment(fname, self.seg_size)] = fname
        return out

    def histories(self) -> dict[int, list[wn.Fork]]:
        out = {}
        for fname in self.files:
            m = wn.HISTORY_RE.match(fname)
            if m:
                out[int(m[1], 16)] = wn.parse_history(self.read(fname).decode())
        return out

    def lookup(self, fname: str) -> WalEntry | None:
        """The stored file for a requested name; a segment falls back to its ``.partial``."""
        entry = self.files.get(fname)
        if entry is None and wn.classify(fname) == "segment":
            entry = self.files.get(fname + ".partial")
        return entry

    def read(self, fname: str) -> bytes:
        entry = self.files[fname]
        data = self.repo.reader(entry.snapshot).read_bytes(f"wal/{fname}")
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise IntegrityError(f"WAL file {fname} in snapshot {entry.snapshot.short_id} does "
                                 "not match its recorded checksum")
        return data

    def last_segment(self) -> tuple[int, int] | None:
        segs = self.segments()
        return max(segs, key=lambda k: (k[1], k[0])) if segs else None


def _sha256_file(path: Path) -> tuple[int, str]:
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            sha.update(block)
            size += len(block)
    return size, sha.hexdigest()


def push(repo: Repository, name: str, paths: Iterable[Path], *, seg_size: int,
         system_id: str | None = None, catalog: WalCatalog | None = None,
         as_name: dict[Path, str] | None = None) -> Snapshot | None:
    """Store WAL files as one snapshot; already archived identical files are skipped.

    A complete segment already archived with different contents is refused (PostgreSQL then
    retries and reports it), except a ``.partial`` which a later copy may replace."""
    catalog = catalog or WalCatalog.load(repo, name)
    todo: list[tuple[Path, str, int, str]] = []
    for path in paths:
        fname = (as_name or {}).get(path, path.name)
        if not wn.classify(fname):
            raise SourceError(f"not a WAL file name: {fname}")
        try:
            size, sha = _sha256_file(path)
        except OSError as exc:
            raise SourceError(f"cannot read WAL file {path}: {exc.strerror}") from None
        have = catalog.files.get(fname)
        if have is not None and have.sha256 == sha:
            continue
        if have is not None and wn.classify(fname) in ("segment", "history"):
            raise IntegrityError(f"WAL file {fname} is already archived with different "
                                 "contents; refusing to overwrite it")
        todo.append((path, fname, size, sha))
    if not todo:
        return None
    files = []
    with repo.writer(wal_source(name), KIND, kind="snapshot", tags=["wal"]) as w:
        for path, fname, size, sha in todo:
            with open(path, "rb") as fh:
                node = w.add_stream(f"wal/{fname}", fh, mode=0o600)
            if node.sha256 != sha or node.size != size:
                raise SourceError(f"WAL file {fname} changed while it was being archived")
            files.append([fname, size, sha])
        w.set_meta({"wal": {"cluster": name, "system_id": system_id, "seg_size": seg_size,
                            "files": files}})
        snap = w.commit()
    return snap


def fetch(catalog: WalCatalog, fname: str, dest: Path) -> bool:
    """Write the archived ``fname`` to ``dest`` atomically; False when it is not archived."""
    entry = catalog.lookup(fname)
    if entry is None:
        return False
    data = catalog.read(entry.name)
    write_atomic(dest, data)
    return True


def write_atomic(dest: Path, data: bytes) -> None:
    tmp = dest.with_name(f".{dest.name}.strongroom-tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, dest)


def compact(repo: Repository, name: str, catalog: WalCatalog | None = None,
            at_least: int = COMPACT_AT, before_segno: int | None = None) -> Snapshot | None:
    """Fold the WAL snapshots into one (content reused, not re-read) and drop the small ones.
    With ``before_segno``, segments (and partials) numbered below it are left out: expiry of
    WAL no retained base backup needs; history files are always kept."""
    catalog = catalog or WalCatalog.load(repo, name)
    snaps = catalog.snapshots
    if before_segno is not None:
        catalog.files = {f: e for f, e in catalog.files.items() if wn.classify(f) not in
                         ("segment", "partial")
                         or wn.parse_segment(f[:24], catalog.seg_size)[1] >= before_segno}
        at_least = 1
    if len(snaps) < max(at_least, 1 if before_segno is not None else 2):
        return None
    wal: dict[str, Any] = {"cluster": name, "system_id": catalog.system_id,
                           "seg_size": catalog.seg_size, "files": []}
    with repo.writer(wal_source(name), KIND, kind="snapshot", tags=["wal", "compacted"]) as w:
        readers = {}
        for fname, entry in sorted(catalog.files.items()):
            reader = readers.setdefault(entry.snapshot.id, repo.reader(entry.snapshot))
            w.add_node(f"wal/{fname}", reader.node(f"wal/{fname}"))
            wal["files"].append([fname, entry.size, entry.sha256])
        w.set_meta({"wal": wal})
        merged = w.commit()
    for snap in snaps:
        try:
            repo.remove_snapshot(snap)
        except (SnapshotNotFound, OSError):
            pass
    return merged


def read_stream(catalog: WalCatalog, fname: str) -> io.BytesIO:
    return io.BytesIO(catalog.read(fname))


def missing_segments(catalog: WalCatalog, start_lsn: int, end_lsn: int | None,
                     path: list[tuple[int, int]], seg_size: int) -> tuple[list[str], int]:
    """Segments absent from the archive between ``start_lsn`` and ``end_lsn`` (default: the
    newest archived segment) along a timeline path; also returns the last segment number
    checked. A segment counts as present if any timeline on the path at or after the one
    holding it has it (PostgreSQL copies the switch segment to the new timeline)."""
    segs = catalog.segments()
    partials = {n.removesuffix(".partial") for n in catalog.files if n.endswith(".partial")}
    first = wn.lsn_segno(start_lsn, seg_size)
    if end_lsn is None:  # the newest segment on the path (a timeline only up to its fork)
        ends = dict(path)
        ours = [s for (t, s) in segs if t in ends and s * seg_size < ends[t]]
        last = max([first, *ours])
    else:
        last = wn.lsn_segno(max(end_lsn - 1, start_lsn), seg_size)
    missing = []
    for segno in range(first, last + 1):
        tli = wn.tli_at(segno * seg_size, path)
        later = [t for t, _ in path if t >= tli]
        if any((t, segno) in segs for t in later):
            continue
        fname = wn.segment_name(tli, segno, seg_size)
        if fname in partials and segno == last:
            continue
        missing.append(fname)
    return missing, last


def expire(repo: Repository, name: str) -> dict[str, Any]:
    """Drop archived WAL older than the oldest physical backup of ``name`` still in the
    repository (run after retention removed old backups)."""
    snaps = physical_snapshots(repo, name)
    if not snaps:
        raise SnapshotNotFound(f"no physical backup of {name!r}: refusing to expire its WAL")
    catalog = WalCatalog.load(repo, name)
    seg = catalog.seg_size or int(snaps[0].meta["postgres"]["wal_segment_size"])
    oldest = min(wn.parse_lsn(s.meta["postgres"]["start_lsn"]) for s in snaps) // seg
    before = len(catalog.files)
    merged = compact(repo, name, catalog, before_segno=oldest)
    after = len(WalCatalog.load(repo, name).files) if merged else before
    return {"name": name, "oldest_needed": wn.segment_name(
        int(snaps[0].meta["postgres"]["timeline"]), oldest, seg),
        "files_before": before, "files_after": after}
