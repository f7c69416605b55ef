"""CRC-32 of cache payloads: zlib-ng's implementation when installed, else the standard library's.

Both compute the same CRC-32 (zlib's polynomial and chaining: ``crc32(b, crc32(a)) == crc32(a + b)``),
so entries written with one are read with the other. zlib-ng's uses carry-less multiplication
(PCLMUL / VPCLMUL): about 0.2 ms for a 3.4 MB decoded clip where zlib 1.2's takes 1-2 ms, which
is the largest single cost of a warm cache read after the normalisation.
"""
from __future__ import annotations

import zlib

try:  # declared in requirements.txt; the stdlib fallback gives identical values, only slower
    from zlib_ng.zlib_ng import crc32 as _crc32

    CRC32_IMPLEMENTATION = "zlib-ng"
except ImportError:  # pragma: no cover - depends on the environment
    _crc32 = zlib.crc32
    CRC32_IMPLEMENTATION = "zlib"


def crc32(data, value: int = 0) -> int:
    """CRC-32 of ``data`` (any contiguous buffer), continuing from ``value``."""
    return _crc32(data, value)
