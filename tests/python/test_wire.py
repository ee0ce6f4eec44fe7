"""pardict's pickle wire format (python/pardict/_wire.py) and its checksum, CRC-32C."""

import numpy as np
import pytest

from pardict import _ext

# ---- CRC-32C -------------------------------------------------------------------------------------


@pytest.mark.parametrize("crc", [_ext.crc32c, _ext.crc32c_software])
def test_crc32c_known_values(crc):
    # The check value of the CRC catalogue, and the iSCSI test vectors of RFC 3720 (B.4).
    assert crc(b"123456789") == 0xE3069283
    assert crc(b"") == 0
    assert crc(bytes(32)) == 0x8A9136AA
    assert crc(b"\xff" * 32) == 0x62A8AB43
    assert crc(bytes(range(32))) == 0x46DD794E
    assert crc(bytes(range(31, -1, -1))) == 0x113FDB5C


def test_crc32c_hardware_and_software_agree_at_every_length_and_alignment():
    # The hardware path stitches three interleaved lanes of 8 KiB; lengths around a multiple of
    # 3 lanes, odd tails and unaligned starts cover its joins.
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, 3 * 3 * 8192 + 64, dtype=np.uint8).tobytes()
    for n in (1, 7, 8, 9, 63, 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1, 6 * 8192 + 13, len(data) - 3):
        for start in (0, 1, 3):
            chunk = data[start : start + n]
            assert _ext.crc32c(chunk) == _ext.crc32c_software(chunk), (n, start)
    # continuing from a previous value is the CRC of the concatenation
    assert _ext.crc32c(data[5000:], _ext.crc32c(data[:5000])) == _ext.crc32c(data)
    assert _ext.crc32c_implementation() in ("sse4.2", "armv8-crc", "software")


def test_crc32c_many_takes_any_buffer():
    a = np.arange(1 << 19, dtype=np.int64)  # 4 MiB: its own thread
    b = bytearray(b"abc")
    out = _ext.crc32c_many([a, b, memoryview(b"xyz"), b""])
    assert out == [_ext.crc32c(a), _ext.crc32c(b"abc"), _ext.crc32c(b"xyz"), 0]
    with pytest.raises(TypeError):
        _ext.crc32c_many([object()])
    with pytest.raises((TypeError, BufferError, ValueError)):
        _ext.crc32c(np.arange(10)[::2])  # not contiguous
