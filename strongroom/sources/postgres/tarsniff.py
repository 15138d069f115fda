"""A pass-through reader over a tar stream that keeps a few small members as it goes by.

pg_basebackup writes ``backup_label`` and ``backup_manifest`` into the tar it streams to
stdout; this lets the backup keep them without staging the archive on disk.
"""

from __future__ import annotations

from typing import IO, Any

BLOCK = 512


class TarSniffer:
    """Wraps a binary stream; ``members`` gets the contents of the wanted member names."""

    def __init__(self, raw: IO[bytes], wanted: tuple[str, ...], limit: int = 256 << 20,
                 split: int = 0) -> None:
        self.raw = raw
        self.wanted = wanted
        self.limit = limit
        self.split = split  # >0: record content-aligned cut points (see ``cuts``)
        # Offsets where the stream may be cut into parts without hurting deduplication: each
        # member header, and every ``split`` bytes into a large member's data.
        self.cuts: list[int] = []
        self._pos = 0  # offset of the next byte fed
        self.members: dict[str, bytes] = {}
        self.total = 0
        self._buf = bytearray()  # header bytes being assembled
        self._skip = 0  # member bytes (with padding) still to pass
        self._capture: tuple[str, bytearray, int] | None = None  # name, data, size
        self._ended = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n and n > 0 else 1 << 20)
        if data:
            self.total += len(data)
            self._feed(memoryview(data))
        return data

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def _feed(self, view: memoryview) -> None:
        while view and not self._ended:
            if self._skip:
                n = min(self._skip, len(view))
                self._pos += n
                if self._capture is not None:
                    name, acc, size = self._capture
                    room = size - len(acc)
                    if room > 0:
                        acc += view[: min(n, room)]
                    if self._skip == n:
                        self.members[name] = bytes(acc[:size])
                        self._capture = None
                self._skip -= n
                view = view[n:]
                continue
            n = min(BLOCK - len(self._buf), len(view))
            self._buf += view[:n]
            self._pos += n
            view = view[n:]
            if len(self._buf) == BLOCK:
                start = self._pos - BLOCK
                self._header(bytes(self._buf))
                self._buf.clear()
                if self.split and self._skip:
                    self.cuts.append(start)
                    for off in range(self.split, self._skip, self.split):
                        self.cuts.append(self._pos + off)

    def _header(self, block: bytes) -> None:
        if block == b"\0" * BLOCK:
            return  # end-of-archive blocks
        name = block[:100].split(b"\0", 1)[0].decode(errors="replace")
        prefix = block[345:500].split(b"\0", 1)[0].decode(errors="replace")
        if prefix and block[257:262] == b"ustar":
            name = f"{prefix}/{name}"
        size_field = block[124:136]
        if size_field[0] & 0x80:
            size = int.from_bytes(size_field[1:], "big")
        else:
            size = int(size_field.split(b"\0", 1)[0].strip() or b"0", 8)
        self._skip = (size + BLOCK - 1) // BLOCK * BLOCK
        name = name.removeprefix("./")
        if name in self.wanted and size <= self.limit:
            self._capture = (name, bytearray(), size)
            if size == 0:
                self.members[name] = b""
                self._capture = None
