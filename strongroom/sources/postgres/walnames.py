"""WAL file names, LSNs and timeline history files."""

from __future__ import annotations

import re
from dataclasses import dataclass

SEGMENT_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
HISTORY_RE = re.compile(r"^([0-9A-F]{8})\.history$")
PARTIAL_RE = re.compile(r"^([0-9A-F]{24})\.partial$")
BACKUP_RE = re.compile(r"^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$")


def parse_lsn(text: str) -> int:
    hi, _, lo = text.strip().partition("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def segs_per_xlogid(seg_size: int) -> int:
    return 0x100000000 // seg_size


def segment_name(tli: int, segno: int, seg_size: int) -> str:
    per = segs_per_xlogid(seg_size)
    return f"{tli:08X}{segno // per:08X}{segno % per:08X}"


def parse_segment(name: str, seg_size: int) -> tuple[int, int]:
    """(timeline, segment number) of a segment file name."""
    m = SEGMENT_RE.match(name)
    if not m:
        raise ValueError(f"not a WAL segment name: {name}")
    return int(m[1], 16), int(m[2], 16) * segs_per_xlogid(seg_size) + int(m[3], 16)


def lsn_segno(lsn: int, seg_size: int) -> int:
    return lsn // seg_size


def classify(name: str) -> str:
    """'segment' | 'history' | 'partial' | 'backup' | '' for a file name under pg_wal."""
    if SEGMENT_RE.match(name):
        return "segment"
    if HISTORY_RE.match(name):
        return "history"
    if PARTIAL_RE.match(name):
        return "partial"
    if BACKUP_RE.match(name):
        return "backup"
    return ""


@dataclass(frozen=True)
class Fork:
    """One line of a timeline history file: ``parent`` was left at ``switch_lsn``."""

    parent: int
    switch_lsn: int
    reason: str


def parse_history(text: str) -> list[Fork]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        out.append(Fork(int(parts[0]), parse_lsn(parts[1]), parts[2] if len(parts) > 2 else ""))
    return out


def timeline_path(target_tli: int, histories: dict[int, list[Fork]]) -> list[tuple[int, int]]:
    """``[(tli, end_lsn)]`` from the oldest ancestor to ``target_tli`` (its end unbounded)."""
    forks = histories.get(target_tli, [])
    path = [(f.parent, f.switch_lsn) for f in forks]
    return path + [(target_tli, 1 << 64)]


def tli_at(lsn: int, path: list[tuple[int, int]]) -> int:
    """The timeline that holds ``lsn`` on a timeline path."""
    for tli, end in path:
        if lsn < end:
            return tli
    return path[-1][0]
