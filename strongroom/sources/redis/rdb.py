"""Checks an RDB file before it is sealed or placed: magic, version, CRC-64 footer, aux fields."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from strongroom.errors import IntegrityError
from strongroom.sources.redis.crc64 import Crc64

RDB_PATH = "dump.rdb"  # the file name of the RDB inside a snapshot
MAGIC = b"REDIS"
MAX_VERSION = 12  # Redis 7.4 writes 12; 7.0 writes 10
_EOF = 0xFF
_AUX = 0xFA
_READ = 1 << 22


@dataclass
class RdbInfo:
    """What validation learned about one RDB file."""

    version: int
    size: int
    sha256: str
    crc64: str  # stored footer, hex
    checksum: str  # "ok", "off" (zero footer: rdbchecksum no) or "none" (RDB < 5)
    aux: dict[str, str] = field(default_factory=dict)

    def as_meta(self) -> dict:
        return asdict(self)


def _length(buf: bytes, pos: int) -> tuple[int, bool, int]:
    """Decode an RDB length at ``pos``: (value, is_special_encoding, new_pos)."""
    first = buf[pos]
    kind = first >> 6
    if kind == 0:
        return first & 0x3F, False, pos + 1
    if kind == 1:
        return ((first & 0x3F) << 8) | buf[pos + 1], False, pos + 2
    if kind == 3:
        return first & 0x3F, True, pos + 1
    if first == 0x80:
        return struct.unpack(">I", buf[pos + 1:pos + 5])[0], False, pos + 5
    if first == 0x81:
        return struct.unpack(">Q", buf[pos + 1:pos + 9])[0], False, pos + 9
    raise ValueError("bad length encoding")


def _string(buf: bytes, pos: int) -> tuple[str | None, int]:
    n, special, pos = _length(buf, pos)
    if not special:
        return buf[pos:pos + n].decode("utf-8", "replace"), pos + n
    if n in (0, 1, 2):
        width = 1 << n
        return str(int.from_bytes(buf[pos:pos + width], "little", signed=True)), pos + width
    if n == 3:  # LZF-compressed: skip it, the value is not needed
        clen, _, pos = _length(buf, pos)
        _, _, pos = _length(buf, pos)
        return None, pos + clen
    raise ValueError("bad string encoding")


def parse_aux(head: bytes) -> dict[str, str]:
    """The auxiliary fields (redis-ver, ctime, ...) that follow the magic."""
    aux: dict[str, str] = {}
    pos = 9
    try:
        while pos < len(head) and head[pos] == _AUX:
            key, pos = _string(head, pos + 1)
            value, pos = _string(head, pos)
            if key is not None and value is not None and pos <= len(head):
                aux[key] = value
    except (ValueError, IndexError, struct.error):
        pass  # aux fields are informative; the CRC decides validity
    return aux


def check_header(head: bytes, label: str) -> int:
    """The RDB version, or IntegrityError naming ``label``."""
    if len(head) < 9 or head[:5] != MAGIC or not head[5:9].isdigit():
        raise IntegrityError(f"{label} is not an RDB file (bad magic)")
    version = int(head[5:9])
    if not 1 <= version <= MAX_VERSION:
        raise IntegrityError(f"{label} has unsupported RDB version {version}")
    return version


def validate_stream(f: BinaryIO, label: str) -> RdbInfo:
    """Read an RDB from ``f`` to the end and check it; IntegrityError names ``label``."""
    crc = Crc64()
    sha = hashlib.sha256()
    head = b""
    held = b""  # the last 8 bytes seen: the footer is not part of what the CRC covers
    last9 = b""
    size = 0
    while block := f.read(_READ):
        size += len(block)
        sha.update(block)
        if len(head) < 65536:
            head += block[:65536 - len(head)]
        data = held + block
        if len(data) > 8:
            crc.update(memoryview(data)[:-8])
        held = data[-8:]
        last9 = (last9 + block)[-9:]
    version = check_header(head, label)
    if version < 5:  # no checksum footer before RDB 5
        return RdbInfo(version=version, size=size, sha256=sha.hexdigest(), crc64="",
                       checksum="none", aux=parse_aux(head))
    if size < 18 or last9[0] != _EOF:
        raise IntegrityError(f"{label} is truncated (no EOF marker before the checksum)")
    stored = int.from_bytes(held, "little")
    if stored and stored != crc.value:
        raise IntegrityError(
            f"{label} failed its CRC-64 check (stored {stored:016x}, computed {crc.value:016x})")
    return RdbInfo(version=version, size=size, sha256=sha.hexdigest(), crc64=f"{stored:016x}",
                   checksum="ok" if stored else "off", aux=parse_aux(head))


def validate_file(path: Path, label: str | None = None) -> RdbInfo:
    """Validate the RDB at ``path``."""
    with open(path, "rb") as f:
        return validate_stream(f, label or str(path))
