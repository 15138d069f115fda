"""CRC-64/Jones as Redis computes it for RDB files and DUMP payloads.

Reflected polynomial 0xad93d23594c935a9, initial value 0, no final xor (check value of
``b"123456789"`` is 0xe9c6d914c4b8d9ca). With init 0 the CRC is linear, so a long buffer is cut
into many equal lanes that numpy advances side by side and whose CRCs are then folded together
with "append n zero bytes" operators; without numpy a plain table loop is used (slow but right).
"""

from __future__ import annotations

from functools import lru_cache

try:  # optional fast path
    import numpy as _np
except ImportError:  # pragma: no cover - numpy is present wherever the test extras are
    _np = None

_POLY = 0x95AC9329AC4BC9B5  # 0xad93d23594c935a9 bit-reversed
_MASK = (1 << 64) - 1
_LANE = 2048  # bytes per lane in the vectorised path
_FAST_MIN = 1 << 16  # below this, the table loop is cheaper than numpy's set-up


def _make_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _make_table()


def _crc_slow(crc: int, data: bytes | memoryview) -> int:
    table = _TABLE
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _apply(op: tuple[int, ...], value: int) -> int:
    """Apply a linear operator given as the images of the 64 unit bits."""
    out = 0
    bit = 0
    while value:
        if value & 1:
            out ^= op[bit]
        value >>= 1
        bit += 1
    return out


def _compose(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The operator ``a`` after ``b``."""
    return tuple(_apply(a, col) for col in b)


@lru_cache(maxsize=64)
def _zeros_pow2(k: int) -> tuple[int, ...]:
    """Operator that advances a CRC state over 2**k zero bytes."""
    if k == 0:
        return tuple(_TABLE[(1 << i) & 0xFF] ^ ((1 << i) >> 8) for i in range(64))
    half = _zeros_pow2(k - 1)
    return _compose(half, half)


def _shift(crc: int, nbytes: int) -> int:
    """Advance ``crc`` over ``nbytes`` zero bytes."""
    k = 0
    while nbytes and crc:
        if nbytes & 1:
            crc = _apply(_zeros_pow2(k), crc)
        nbytes >>= 1
        k += 1
    return crc


@lru_cache(maxsize=32)
def _byte_tables(k: int):  # -> numpy array (8, 256) for the 2**k zero-byte operator
    op = _zeros_pow2(k)
    tabs = _np.zeros((8, 256), dtype=_np.uint64)
    for j in range(8):
        for v in range(256):
            tabs[j, v] = _apply(op, v << (8 * j))
    return tabs


def _shift_vec(crcs, k: int):
    tabs = _byte_tables(k)
    out = _np.zeros_like(crcs)
    for j in range(8):
        out ^= tabs[j][(crcs >> _np.uint64(8 * j)) & _np.uint64(0xFF)]
    return out


def _crc_fast(data: bytes | memoryview) -> tuple[int, int]:
    """CRC from state 0 of the longest prefix of 2**m whole lanes: (crc, its length)."""
    lanes = len(data) // _LANE
    lanes = 1 << (lanes.bit_length() - 1)
    n = lanes * _LANE
    table = _np.array(_TABLE, dtype=_np.uint64)
    rows = _np.frombuffer(data, dtype=_np.uint8, count=n).reshape(lanes, _LANE).T.copy()
    crc = _np.zeros(lanes, dtype=_np.uint64)
    ff = _np.uint64(0xFF)
    eight = _np.uint64(8)
    for i in range(_LANE):
        idx = (crc & ff) ^ rows[i]
        crc >>= eight
        crc ^= table[idx]
    k = _LANE.bit_length() - 1  # lane length is 2**k bytes
    while len(crc) > 1:
        crc = _shift_vec(crc[0::2], k) ^ crc[1::2]
        k += 1
    return int(crc[0]), n


class Crc64:
    """Incremental CRC-64/Jones: ``update()`` with successive pieces, read ``value``."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        while _np is not None and len(view) >= _FAST_MIN:
            part, n = _crc_fast(view)
            self.value = _shift(self.value, n) ^ part
            view = view[n:]
        if len(view):
            self.value = _crc_slow(self.value, view)


def crc64(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC-64/Jones of ``data`` continuing from ``crc``."""
    c = Crc64()
    c.value = crc
    c.update(data)
    return c.value
