"""pardict's pickle wire format: a Dict of numbers or bools (or str keys with such values) as a
small header and a few flat buffers.

With pickle protocol 5, Dict.__reduce_ex__ returns (rebuild, (header, *buffers)) where each buffer
is a pickle.PickleBuffer over a NumPy array: with a buffer_callback (Dask, Ray, mpi4py's pkl5,
multiprocessing's shared memory tools) they travel out of band, as separate frames, without being
copied through Python objects; without one, pickle writes them in-band as bytes. With protocol 4
the buffers are bytes objects (one copy each): protocol 4 is Python's default before 3.14, and
Dask's scheduler speaks it, so results gathered to a Dask client through the scheduler travel in
it. Protocols 0 to 3 pickle the items (protocol 3 cannot hold a bytes object over 4 GiB).

Header (little-endian, HEADER_FIXED.size [+ GEOMETRY.size] + BUFFER_ENTRY.size * n_buffers + 4
bytes):

    magic        8 bytes   b"pardict\\x00"
    version      uint16    FORMAT_VERSION (2); the reader refuses newer versions by name and
                           reads version 1 (which has no flags)
    key type     uint8     a code of TYPE_CODES (STR_CODE: str keys)
    value type   uint8     a code of TYPE_CODES
    char width   uint8     str keys: bytes per code point (1, 2 or 4); else 0
    n_buffers    uint8     2 (numeric keys) or 3 (str keys)
    flags        uint16    FLAG_GEOMETRY or 0
    count        uint64    entries
    geometry     (with FLAG_GEOMETRY) 64 x uint32 shard seeds, 64 x uint64 shard group counts
    per buffer:  nbytes uint64, crc32c uint32, reserved uint32 (0)
    header crc   uint32    CRC-32C of every header byte before it

Buffers, in order, each little-endian and packed:

    numeric keys:  keys (count x key itemsize), values (count x value itemsize)
    str keys:      code points (width bytes each, all keys concatenated),
                   offsets (int64, count + 1: key i is code points offsets[i] .. offsets[i + 1]),
                   values (count x value itemsize)

Every key appears once; floats are canonical (no -0.0, one NaN bit pattern), as the dict stores
them. Keys come in the sender's table order, which is grouped by shard; the geometry (each shard
table's seed and size, version 2, numeric keys) lets the receiver place every key where the sender
had it, so that building the dict writes each shard's table front to back (pardict_load_many):
a 10M-entry dict unpickles at about the speed of a copy instead of at the speed of 10M inserts to
random places in 250 MB. The geometry is only a placement hint: a payload whose keys are not in
that order, or not grouped by shard, builds the same dict, more slowly.

Reading checks everything before building: the magic, the version, the header's own checksum, the
type codes, that every buffer has its declared size and checksum, and (for what the checksum
cannot vouch for, a payload written by something else) canonical float keys, valid offsets and
code points, bools that are 0 or 1, no duplicate key. Any failure is a pickle.UnpicklingError
naming it. The dict is then built by one bulk insert: numeric keys go to the C++ table on several
threads with the GIL released (pardict_load_many); str keys need a numba string each, made
in C++ as numba makes one (NRT_MemInfo_alloc) and inserted in the same pass, with the GIL released.
"""

from __future__ import annotations

import pickle
import struct
import sys
from typing import Any

import numba
import numpy as np
from numba.core import types

from . import _ext

MAGIC = b"pardict\x00"
FORMAT_VERSION = 2
HEADER_FIXED = struct.Struct("<8sHBBBBHQ")
FLAG_GEOMETRY = 1
GEOMETRY = struct.Struct("<256s512s")  # 64 uint32 seeds, 64 uint64 group counts
# Smaller dicts travel without a geometry: their tables fit in cache, where placement matters
# little, and Dask may ship many of them.
GEOMETRY_MIN_COUNT = 1 << 14
BUFFER_ENTRY = struct.Struct("<QII")
HEADER_CRC = struct.Struct("<I")

# Wire codes of the scalar types; never renumber (payloads outlive the code that wrote them).
TYPE_CODES: dict[types.Type, int] = {
    types.boolean: 1,
    types.int8: 2,
    types.int16: 3,
    types.int32: 4,
    types.int64: 5,
    types.uint8: 6,
    types.uint16: 7,
    types.uint32: 8,
    types.uint64: 9,
    types.float32: 10,
    types.float64: 11,
}
STR_CODE = 12
_TYPES_BY_CODE = {code: ty for ty, code in TYPE_CODES.items()}
_DTYPES = {
    ty: np.dtype(str(ty) if ty != types.boolean else "bool").newbyteorder("<") for ty in TYPE_CODES
}


def supports(key_type: types.Type, value_type: types.Type) -> bool:
    """Whether a dict of these types travels in the wire format (else pickle's general path)."""
    return value_type in TYPE_CODES and (key_type in TYPE_CODES or key_type == types.unicode_type)


def _fail(what: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(f"pardict: cannot unpickle this Dict: {what}")


def _narrow(blobs: np.ndarray, ty: types.Type) -> np.ndarray:
    """C ABI blobs (a byte array; 1- and 2-byte types padded to 4) as an array of ty's dtype."""
    dt = _DTYPES[ty]
    if dt.itemsize >= 4:
        return blobs.view(dt)
    return blobs.view("<u4").astype(f"<u{dt.itemsize}").view(dt)


def _widen(arr: np.ndarray, ty: types.Type) -> np.ndarray:
    """An array of ty's dtype as C ABI blobs (aligned, 1- and 2-byte types padded to 4 bytes)."""
    dt = _DTYPES[ty]
    if dt.itemsize < 4:
        return arr.view(f"<u{dt.itemsize}").astype("<u4")
    if arr.ctypes.data % dt.itemsize:  # an out-of-band buffer may start anywhere
        return arr.copy()
    return arr


def _little(native: bytes, dtype: str) -> bytes:
    """The shard geometry _ext.shard_geometry gives (native byte order) as little-endian bytes."""
    return np.frombuffer(native, dtype=dtype[1:]).astype(dtype).tobytes()


def _native(little: bytes, dtype: str) -> bytes:
    """A little-endian shard geometry as the native-order bytes _ext.insert_plain reads."""
    return np.frombuffer(little, dtype=dtype).astype(dtype[1:]).tobytes()


# ---- writing -------------------------------------------------------------------------------------


def dump(d: Any, in_band: bool = False) -> tuple:
    """The (callable, args) of d's pickle (d's types satisfy supports()): the buffers as
    pickle.PickleBuffer (protocol 5), or as bytes when in_band (protocol 4, which has no
    out-of-band buffers: one copy of each buffer, and still no Python object per entry)."""
    ty = d._numba_type_
    kt, vt = ty.key_type, ty.value_type
    _, _, kc, vc = ty.layouts
    handle = d._handle()
    if kt == types.unicode_type:
        chars, width, offsets, vblobs = _ext.export_str(handle, vc)
        offsets = offsets.view("<i8")
        buffers = [chars, offsets, _narrow(vblobs, vt)]
        count = offsets.size - 1
        key_code = STR_CODE
        geometry = b""
    else:
        # The geometry first: if the dict grows between the two calls, the keys merely come
        # in an order the receiver's placement does not follow (slower, same dict).
        seeds, groups = _ext.shard_geometry(handle)
        kblobs, vblobs = _ext.export_plain(handle, kc, vc)
        buffers = [_narrow(kblobs, kt), _narrow(vblobs, vt)]
        geometry = (
            GEOMETRY.pack(_little(seeds, "<u4"), _little(groups, "<u8"))
            if buffers[0].size >= GEOMETRY_MIN_COUNT
            else b""
        )
        count = buffers[0].size
        width = 0
        key_code = TYPE_CODES[kt]
    crcs = _ext.crc32c_many(buffers)
    flags = FLAG_GEOMETRY if geometry else 0
    header = HEADER_FIXED.pack(
        MAGIC, FORMAT_VERSION, key_code, TYPE_CODES[vt], width, len(buffers), flags, count
    )
    header += geometry
    header += b"".join(
        BUFFER_ENTRY.pack(b.nbytes, c, 0) for b, c in zip(buffers, crcs, strict=True)
    )
    header += HEADER_CRC.pack(_ext.crc32c(header))
    if in_band:
        return rebuild, (header, *(b.tobytes() for b in buffers))
    return rebuild, (header, *(pickle.PickleBuffer(b) for b in buffers))


# ---- reading ---------------------------------------------------------------------------------------


def _bytes_of(buf: Any, what: str) -> np.ndarray:
    try:
        return np.frombuffer(buf, dtype=np.uint8)
    except (TypeError, ValueError) as e:
        raise _fail(f"the {what} buffer is not a contiguous buffer ({e})") from None


def _parse_header(header: Any) -> tuple:
    if not isinstance(header, (bytes, bytearray, memoryview)):
        raise _fail(f"the header is a {type(header).__name__}, not bytes")
    header = bytes(header)
    if len(header) < 10 or header[:8] != MAGIC:
        raise _fail("not a pardict payload (bad magic bytes)")
    (version,) = struct.unpack_from("<H", header, 8)
    if version > FORMAT_VERSION:
        raise _fail(
            f"it was written in pardict wire format version {version}, newer than the version "
            f"this pardict reads ({FORMAT_VERSION}); upgrade pardict where it is unpickled"
        )
    if version < 1:
        raise _fail(f"unknown wire format version {version}")
    if len(header) < HEADER_FIXED.size:
        raise _fail("the header is truncated")
    _, _, key_code, value_code, width, n_buffers, flags, count = HEADER_FIXED.unpack_from(header)
    known = FLAG_GEOMETRY if version >= 2 else 0
    if flags & ~known:
        raise _fail(f"unknown header flags {flags:#x} in a version {version} header")
    geo_size = GEOMETRY.size if flags & FLAG_GEOMETRY else 0
    size = HEADER_FIXED.size + geo_size + BUFFER_ENTRY.size * n_buffers + HEADER_CRC.size
    if len(header) != size:
        raise _fail(f"the header has {len(header)} bytes, expected {size}")
    (crc,) = HEADER_CRC.unpack_from(header, size - HEADER_CRC.size)
    if _ext.crc32c(header[: size - HEADER_CRC.size]) != crc:
        raise _fail("the header's checksum does not match (corrupted)")
    geometry = GEOMETRY.unpack_from(header, HEADER_FIXED.size) if geo_size else None
    entries = [
        BUFFER_ENTRY.unpack_from(header, HEADER_FIXED.size + geo_size + i * BUFFER_ENTRY.size)
        for i in range(n_buffers)
    ]
    return key_code, value_code, width, count, entries, geometry


def rebuild(header: Any, *buffers: Any) -> Any:
    """The Dict a protocol-5 pickle of Dict describes (see the module docstring)."""
    from .dict import Dict

    key_code, value_code, width, count, entries, geometry = _parse_header(header)
    vt = _TYPES_BY_CODE.get(value_code)
    kt = types.unicode_type if key_code == STR_CODE else _TYPES_BY_CODE.get(key_code)
    if kt is None or vt is None:
        raise _fail(f"unknown key or value type code ({key_code}, {value_code})")
    str_keys = kt == types.unicode_type
    if len(buffers) != len(entries) or len(entries) != (3 if str_keys else 2):
        raise _fail(f"{len(buffers)} buffers for a header that declares {len(entries)}")
    names = ("code points", "offsets", "values") if str_keys else ("keys", "values")
    raw = [_bytes_of(b, name) for b, name in zip(buffers, names, strict=True)]
    for a, (nbytes, _, _), name in zip(raw, entries, names, strict=True):
        if a.nbytes != nbytes:
            raise _fail(f"the {name} buffer has {a.nbytes} bytes, the header says {nbytes}")
    for got, (_, crc, _), name in zip(_ext.crc32c_many(raw), entries, names, strict=True):
        if got != crc:
            raise _fail(f"the {name} buffer's checksum does not match (corrupted)")
    values = _typed(raw[-1], vt, count, "values")
    # Numeric keys: no presizing, pardict_load_many sizes each shard's table for its keys.
    d = Dict.empty(kt, vt, n_keys=count if str_keys else 0)
    if str_keys:
        chars, offsets = _str_keys(raw[0], raw[1], width, count)
        vc = d._dict_type.layouts[3]
        new = _ext.insert_new_strings(
            d._handle(), chars, offsets, _widen(values, vt).view(np.uint8), vc, -1, 0
        )
    else:
        keys = _typed(raw[0], kt, count, "keys")
        if isinstance(kt, types.Float) and not _canonical(keys):
            raise _fail("a float key is not canonical (-0.0 or a non-standard NaN)")
        seeds, groups = (
            (_native(geometry[0], "<u4"), _native(geometry[1], "<u8")) if geometry else (None, None)
        )
        new = _ext.insert_plain(
            d._handle(), _widen(keys, kt), _widen(values, vt), count, seeds, groups, _threads()
        )
    if new != count:
        raise _fail(f"{count - new} duplicate keys")
    return d


def _typed(raw: np.ndarray, ty: types.Type, count: int, what: str) -> np.ndarray:
    dt = _DTYPES[ty]
    if raw.nbytes != count * dt.itemsize:
        raise _fail(f"{raw.nbytes} bytes of {what} for {count} entries of {ty}")
    arr = raw.view(dt)
    if ty == types.boolean and arr.view(np.uint8).max(initial=0) > 1:
        raise _fail(f"{what}: a bool that is neither 0 nor 1")
    return arr


def _canonical(keys: np.ndarray) -> bool:
    """No -0.0, and every NaN has the bit pattern the dict stores (NumPy's NaN)."""
    if np.any((keys == 0) & np.signbit(keys)):
        return False
    nans = np.isnan(keys)
    if not nans.any():
        return True
    bits = keys.view(f"<u{keys.itemsize}")[nans]
    return bool(np.all(bits == np.array(np.nan, dtype=keys.dtype).view(bits.dtype)))


def _str_keys(chars: np.ndarray, offsets: np.ndarray, width: int, count: int) -> tuple:
    if width not in (1, 2, 4):
        raise _fail(f"str keys with {width} bytes per code point")
    if chars.nbytes % width or offsets.nbytes != 8 * (count + 1):
        raise _fail("the code point or offset buffer has the wrong size")
    cps = chars.view(f"<u{width}")
    if cps.ctypes.data % width:
        cps = cps.copy()
    offs = offsets.view("<i8")
    if offs.ctypes.data % 8:
        offs = offs.copy()
    if offs[0] != 0 or offs[-1] != cps.size or np.any(np.diff(offs) < 0):
        raise _fail("the str key offsets are not increasing from 0 to the code point count")
    if width == 4 and cps.size and cps.max() > sys.maxunicode:
        raise _fail("a code point beyond U+10FFFF")
    return cps, offs


def _threads() -> int:
    # numba's thread count, as the bulk methods default to (the C side never runs more workers
    # than the CPUs the process may use); read from the config, which starts no thread pool.
    return int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))
