"""pardict's pickle wire format (python/pardict/_wire.py) and its checksum, CRC-32C."""

import pickle
import re
import warnings

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from numba.core import types
from numba.core.errors import NumbaTypeSafetyWarning

from pardict import Dict, _ext, _wire

U = types.unicode_type

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


# ---- the wire format: round trips ----------------------------------------------------------------

_SCALARS = [
    types.boolean,
    types.int8,
    types.int16,
    types.int32,
    types.int64,
    types.uint8,
    types.uint16,
    types.uint32,
    types.uint64,
    types.float32,
    types.float64,
]
# Every scalar type as a key and as a value (each key type with the value type three places on,
# one compilation per pair), str keys with scalar values (wire format), and types that keep
# pickle's general path.
WIRE_PAIRS = [(k, _SCALARS[(i + 3) % len(_SCALARS)]) for i, k in enumerate(_SCALARS)]
WIRE_PAIRS += [(U, types.int64), (U, types.float32), (U, types.boolean)]
GENERAL_PAIRS = [
    (U, U),
    (types.Tuple([types.int64, U]), types.float64),
    (types.int64, types.float32[:]),
]


def _scalars(ty):
    if ty == types.boolean:
        return st.booleans()
    if isinstance(ty, types.Integer):
        info = np.iinfo(str(ty))
        return st.integers(int(info.min), int(info.max))
    if isinstance(ty, types.Float):
        # -0.0 and NaN are stored canonically (one 0.0 key, one NaN key)
        return st.floats(width=ty.bitwidth, allow_nan=True, allow_infinity=True)
    if ty == U:
        return st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
    if isinstance(ty, types.BaseTuple):
        return st.tuples(*(_scalars(t) for t in ty))
    if isinstance(ty, types.Array):
        return st.lists(st.floats(width=32, allow_nan=False), max_size=4).map(
            lambda xs: np.array(xs, dtype=np.float32)
        )
    raise AssertionError(ty)


def _canon(k):
    if isinstance(k, float):
        return "nan" if k != k else k + 0.0
    if isinstance(k, tuple):
        return tuple(map(_canon, k))
    return k


def _same_value(a, b):
    if isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(b, float) and b != b:
        return isinstance(a, float) and a != a
    return type(a) is type(b) and a == b


def _np(ty):
    return "bool" if ty == types.boolean else str(ty)


def _model_dict(kt, vt, items):
    d = Dict.empty(kt, vt, n_keys=len(items))
    if vt in _SCALARS and (kt in _SCALARS or kt == U):
        # arrays: a Python int beyond int64 (uint64 keys) has no scalar numba type
        keys = np.array([k for k, _ in items], dtype=str if kt == U else _np(kt))
        d.set_many(keys, np.array([v for _, v in items], dtype=_np(vt)), threads=1)
        return d
    for k, v in items:
        d[k] = v
    return d


def _check_same(r, d):
    assert isinstance(r, Dict) and (r.key_type, r.value_type) == (d.key_type, d.value_type)
    want = {_canon(k): v for k, v in d.items()}
    got = {_canon(k): v for k, v in r.items()}
    assert set(got) == set(want)
    for k, v in want.items():
        assert _same_value(got[k], v), (k, got[k], v)


@pytest.mark.parametrize(
    "kt, vt", WIRE_PAIRS + GENERAL_PAIRS, ids=lambda t: str(t).replace(" ", "")
)
def test_round_trip_every_family_and_protocol(kt, vt):
    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(_scalars(kt), _scalars(vt)), max_size=40))
    def run(items):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
            d = _model_dict(kt, vt, items)
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            _check_same(pickle.loads(pickle.dumps(d, protocol=protocol)), d)
        bufs = []
        data = pickle.dumps(d, protocol=5, buffer_callback=bufs.append)
        _check_same(pickle.loads(data, buffers=bufs), d)
        # the receiving side may get read-only buffers (bytes, as a transport delivers them)
        _check_same(pickle.loads(data, buffers=[bytes(b.raw()) for b in bufs]), d)

    run()


@pytest.mark.parametrize("kt, vt", WIRE_PAIRS, ids=lambda t: str(t))
def test_protocol_5_sends_numbers_out_of_band(kt, vt):
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(0, 100, 60).astype(str if kt == U else _np(kt)))
    d = Dict.empty(kt, vt)
    d.set_many(keys, np.ones(keys.size, dtype=_np(vt)))
    bufs = []
    data = pickle.dumps(d, protocol=5, buffer_callback=bufs.append)
    assert len(bufs) == (3 if kt == U else 2)  # code points, offsets, values / keys, values
    assert len(data) < 300  # the header and the reconstructor's name: no element is in-band
    raw = [b.raw() for b in bufs]
    if kt != U:
        assert sorted(np.frombuffer(raw[0], dtype=_np(kt))) == sorted(keys)
    assert pickle.loads(data, buffers=bufs) == d


def test_size_is_the_raw_bytes_plus_a_header():
    n = 100_000
    d = Dict.from_arrays(np.arange(n, dtype=np.int64), np.ones(n))
    bufs = []
    data = pickle.dumps(d, protocol=5, buffer_callback=bufs.append)
    payload = sum(b.raw().nbytes for b in bufs)
    assert payload == 16 * n and len(data) < 200 + _wire.GEOMETRY.size
    assert len(pickle.dumps(d, protocol=5)) < 16 * n * 1.01  # in-band: the same bytes


def test_protocols_below_4_pickle_the_items():
    d = Dict.from_arrays(np.arange(3), np.ones(3))
    for protocol in range(4):
        fn, args = d.__reduce_ex__(protocol)
        assert (
            fn.__name__ == "_rebuild_items"
            and args[2] == [(0, 1.0), (1, 1.0), (2, 1.0)]
            or (sorted(args[2]) == [(0, 1.0), (1, 1.0), (2, 1.0)])
        )
    assert pickle.dumps(d, protocol=3).find(_wire.MAGIC) < 0
    # payloads written before the wire format (the DictType and the items) still load
    from pardict.dict import _rebuild

    assert _rebuild(d._dict_type, [(1, 2.0)]).to_dict() == {1: 2.0}


@pytest.mark.parametrize("str_keys", [False, True])
def test_protocol_4_writes_the_wire_format_in_band(str_keys):
    # Dask's scheduler (results gathered to a client) and Python before 3.14 by default speak
    # protocol 4: the flat buffers as bytes, not an object per entry.
    n = 20_000
    keys = np.array([f"w{i}" for i in range(n)]) if str_keys else np.arange(n, dtype=np.int64)
    d = Dict.from_arrays(keys, np.arange(n, dtype=np.float64))
    fn, args = d.__reduce_ex__(4)
    assert fn is _wire.rebuild and all(type(b) is bytes for b in args[1:])
    data = pickle.dumps(d, protocol=4)
    assert data.find(_wire.MAGIC) >= 0
    if not str_keys:
        assert len(data) < 16 * n + 200 + _wire.GEOMETRY.size
    back = pickle.loads(data)
    _check_same(back, d)
    # corrupting a buffer byte in band is caught by its checksum
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0x40
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(bytes(bad))


def test_wire_round_trips_leave_nothing_behind(no_leaks):
    s = Dict.empty(U, types.float64)
    s.add_many(np.array(["a", "é", "日本", "🙂", ""]), np.arange(5.0))
    n = Dict.from_arrays(np.arange(1000), np.arange(1000.0))
    for d in (s, n):
        for _ in range(3):
            bufs = []
            data = pickle.dumps(d, protocol=5, buffer_callback=bufs.append)
            r = pickle.loads(data, buffers=bufs)
            assert r == d
            del r, bufs, data
    del s, n


def test_misaligned_out_of_band_buffers_are_copied_not_misread():
    d = Dict.from_arrays(np.arange(50, dtype=np.int64), np.arange(50.0))
    bufs = []
    data = pickle.dumps(d, protocol=5, buffer_callback=bufs.append)
    shifted = []
    for b in bufs:
        raw = b.raw()
        room = bytearray(raw.nbytes + 1)
        room[1:] = raw
        shifted.append(memoryview(room)[1:])  # starts one byte past an aligned allocation
    assert pickle.loads(data, buffers=shifted) == d


# ---- the wire format: bad payloads -------------------------------------------------------------------


def _payload(d):
    bufs = []
    data = pickle.dumps(d, protocol=5, buffer_callback=bufs.append)
    return data, [bytearray(b.raw()) for b in bufs]


@pytest.fixture(scope="module")
def numeric():
    return Dict.from_arrays(np.arange(1000, dtype=np.int64), np.arange(1000.0))


@pytest.fixture(scope="module")
def words():
    d = Dict.empty(U, types.int64)
    d.count_many(np.array(["a", "bb", "é", "日本", "🙂", "a"]))
    return d


@pytest.mark.parametrize("which", ["numeric", "words"])
def test_a_corrupted_buffer_is_refused(which, request):
    d = request.getfixturevalue(which)
    data, bufs = _payload(d)
    for i in range(len(bufs)):
        for pos in (0, len(bufs[i]) // 2, len(bufs[i]) - 1):
            bad = [bytearray(b) for b in bufs]
            bad[i][pos] ^= 0x10
            with pytest.raises(pickle.UnpicklingError, match="checksum does not match"):
                pickle.loads(data, buffers=bad)
        short = [bytearray(b) for b in bufs]
        del short[i][-1:]
        with pytest.raises(pickle.UnpicklingError, match="bytes"):
            pickle.loads(data, buffers=short)
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data, buffers=bufs[:-1])  # a buffer missing: pickle's own error
    with pytest.raises(pickle.UnpicklingError, match="buffers for a header"):
        _wire.rebuild(_wire.dump(d)[1][0], *bufs[:-1])
    assert pickle.loads(data, buffers=bufs) == d  # the untouched payload still loads


def test_a_corrupted_header_is_refused(numeric):
    header, *bufs = _wire.dump(numeric)[1]
    for pos in range(len(header)):
        bad = bytearray(header)
        bad[pos] ^= 0x01
        with pytest.raises(pickle.UnpicklingError):
            _wire.rebuild(bytes(bad), *bufs)
    for cut in (0, 5, 9, 20, len(header) - 1):
        with pytest.raises(pickle.UnpicklingError):
            _wire.rebuild(header[:cut], *bufs)


def test_a_future_version_and_foreign_payloads_are_named(numeric):
    header, *bufs = _wire.dump(numeric)[1]
    future = bytearray(header)
    future[8:10] = (_wire.FORMAT_VERSION + 1).to_bytes(2, "little")
    newer = f"version {_wire.FORMAT_VERSION + 1}, newer than the version"
    with pytest.raises(pickle.UnpicklingError, match=newer):
        _wire.rebuild(bytes(future), *bufs)
    with pytest.raises(pickle.UnpicklingError, match="not a pardict payload"):
        _wire.rebuild(b"PK\x03\x04" + bytes(60), *bufs)
    with pytest.raises(pickle.UnpicklingError, match="not bytes"):
        _wire.rebuild(12345, *bufs)
    with pytest.raises(pickle.UnpicklingError, match="not a contiguous buffer"):
        _wire.rebuild(header, object(), bufs[1])


def test_a_truncated_in_band_pickle_raises(numeric, words):
    for d in (numeric, words):
        data = pickle.dumps(d, protocol=5)
        for cut in sorted({1, 10, 50, 100, len(data) // 2, len(data) - 200, len(data) - 1}):
            with pytest.raises((pickle.UnpicklingError, EOFError, ValueError)):
                pickle.loads(data[:cut])


def _craft(key_code, value_code, width, count, buffers, geometry=None, version=1, flags=None):
    """A payload with valid checksums whose content pardict would never write (version 1 unless
    a geometry is given)."""
    buffers = [np.ascontiguousarray(b).view(np.uint8) for b in buffers]
    if geometry is not None:
        version, flags = 2, _wire.FLAG_GEOMETRY if flags is None else flags
    header = _wire.HEADER_FIXED.pack(
        _wire.MAGIC, version, key_code, value_code, width, len(buffers), flags or 0, count
    )
    if geometry is not None:
        seeds, groups = geometry
        header += _wire.GEOMETRY.pack(
            np.asarray(seeds, "<u4").tobytes(), np.asarray(groups, "<u8").tobytes()
        )
    for b in buffers:
        header += _wire.BUFFER_ENTRY.pack(b.nbytes, _ext.crc32c(b), 0)
    header += _wire.HEADER_CRC.pack(_ext.crc32c(header))
    return header, buffers


def test_well_formed_but_impossible_contents_are_refused():
    I64, F, B = (_wire.TYPE_CODES[t] for t in (types.int64, types.float64, types.boolean))
    S = _wire.STR_CODE
    ok = _craft(I64, F, 0, 3, [np.array([1, 2, 3]), np.ones(3)])
    assert _wire.rebuild(ok[0], *ok[1]).to_dict() == {1: 1.0, 2: 1.0, 3: 1.0}
    cases = {
        "duplicate keys": _craft(I64, F, 0, 3, [np.array([1, 2, 1]), np.ones(3)]),
        "not canonical": _craft(F, F, 0, 2, [np.array([-0.0, 1.0]), np.ones(2)]),
        "neither 0 nor 1": _craft(I64, B, 0, 2, [np.array([1, 2]), np.array([1, 2], np.uint8)]),
        "bytes of values": _craft(I64, F, 0, 3, [np.array([1, 2, 3]), np.ones(2)]),
        "unknown key or value type": _craft(99, F, 0, 1, [np.array([1]), np.ones(1)]),
        "offsets are not increasing": _craft(
            S, I64, 1, 3, [np.frombuffer(b"abc", np.uint8), np.array([0, 2, 1, 3]), np.ones(3, int)]
        ),
        "beyond U+10FFFF": _craft(
            S, I64, 4, 1, [np.array([0x110000], np.uint32), np.array([0, 1]), np.ones(1, np.int64)]
        ),
        "duplicate": _craft(
            S, I64, 1, 2, [np.frombuffer(b"abab", np.uint8), np.array([0, 2, 4]), np.ones(2, int)]
        ),
        "bytes per code point": _craft(
            S, I64, 3, 1, [np.zeros(3, np.uint8), np.array([0, 1]), np.ones(1, np.int64)]
        ),
    }
    for what, (header, bufs) in cases.items():
        with pytest.raises(pickle.UnpicklingError, match=re.escape(what)):
            _wire.rebuild(header, *bufs)


def _payload_of(d):
    bufs = []
    data = pickle.dumps(d, protocol=5, buffer_callback=bufs.append)
    return data, bufs


def test_large_numeric_dicts_carry_their_placement_and_rebuild_it():
    n = 3 * _wire.GEOMETRY_MIN_COUNT
    rng = np.random.default_rng(3)
    d = Dict.from_arrays(rng.permutation(10 * n)[:n].astype(np.int64), rng.random(n))
    header, *bufs = _wire.dump(d)[1]
    flags = _wire.HEADER_FIXED.unpack_from(header)[6]
    assert flags == _wire.FLAG_GEOMETRY and len(header) > _wire.GEOMETRY.size
    r = _wire.rebuild(header, *bufs)
    assert r == d and len(r) == n
    # Same seeds (placement), each shard table at least the sender's size.
    (s1, g1), (s2, g2) = (_ext.shard_geometry(x._handle()) for x in (d, r))
    assert s1 == s2
    assert np.all(np.frombuffer(g2, np.uint64) >= np.frombuffer(g1, np.uint64))
    # A small dict's header has no geometry.
    small = Dict.from_arrays(np.arange(10, dtype=np.int64), np.ones(10))
    assert _wire.HEADER_FIXED.unpack_from(_wire.dump(small)[1][0])[6] == 0


def test_a_geometry_is_only_a_hint():
    """Keys out of the sender's order, seeds of another dict, absurd group counts: the same dict,
    exactly (the placement hint changes speed and memory, never contents)."""
    I64, F = (_wire.TYPE_CODES[t] for t in (types.int64, types.float64))
    n = 40_000
    rng = np.random.default_rng(4)
    keys = rng.choice(1 << 40, n, replace=False).astype(np.int64)
    values = rng.random(n)
    model = dict(zip(keys.tolist(), values.tolist(), strict=True))
    geometries = {
        "fresh seeds": (np.zeros(64), np.zeros(64)),
        "odd and even seeds": (rng.integers(0, 1 << 32, 64), np.full(64, 100)),
        "absurd sizes": (rng.integers(0, 1 << 32, 64), np.full(64, 1 << 62)),
    }
    for what, geo in geometries.items():
        header, bufs = _craft(I64, F, 0, n, [keys, values], geometry=geo)
        r = _wire.rebuild(header, *bufs)
        assert r.to_dict() == model, what
        assert len(r) == n
    # Duplicates are still found when the keys come grouped by shard with a geometry.
    d = Dict.from_arrays(keys, values)
    header, *bufs = _wire.dump(d)[1]
    k = np.frombuffer(bufs[0].raw(), np.int64).copy()
    k[-1] = k[-2]  # same shard, adjacent
    v = np.frombuffer(bufs[1].raw(), np.float64)
    geo_bytes = header[_wire.HEADER_FIXED.size : _wire.HEADER_FIXED.size + _wire.GEOMETRY.size]
    seeds = np.frombuffer(geo_bytes[:256], "<u4")
    groups = np.frombuffer(geo_bytes[256:], "<u8")
    bad, bad_bufs = _craft(I64, F, 0, n, [k, v], geometry=(seeds, groups))
    with pytest.raises(pickle.UnpicklingError, match="1 duplicate keys"):
        _wire.rebuild(bad, *bad_bufs)


def test_flags_are_checked_against_the_version():
    I64, F = (_wire.TYPE_CODES[t] for t in (types.int64, types.float64))
    keys, values = np.array([1, 2, 3]), np.ones(3)
    header, bufs = _craft(I64, F, 0, 3, [keys, values], version=1, flags=_wire.FLAG_GEOMETRY)
    with pytest.raises(pickle.UnpicklingError, match="unknown header flags 0x1 in a version 1"):
        _wire.rebuild(header, *bufs)
    header, bufs = _craft(
        I64, F, 0, 3, [keys, values], geometry=(np.ones(64), np.ones(64)), flags=6
    )
    with pytest.raises(pickle.UnpicklingError, match="unknown header flags"):
        _wire.rebuild(header, *bufs)


def test_strings_made_in_cpp_are_numba_strings(no_leaks):
    """_ext.insert_new_strings (str unpickling, the misses of bulk calls on Arrow strings) makes
    each key as numba makes a string: found by keys made in Python and in njit, of every kind,
    equal to them, hashed alike; bad code points or offsets are refused before anything is made."""
    words = ["", "a", "abc", "é", "日本", "😀x", "x\x00y", "a" * 100]
    for width, dt in ((1, np.uint8), (2, np.uint16), (4, np.uint32)):
        ws = [w for w in words if all(ord(c) < 1 << (8 * width) for c in w)]
        points = np.array([ord(c) for w in ws for c in w], dtype=dt)
        starts = np.cumsum([0] + [len(w) for w in ws]).astype(np.int64)
        d = Dict.empty(types.unicode_type, types.int64)
        d["abc"] = 100
        values = np.arange(len(ws), dtype=np.int64)
        new = _ext.insert_new_strings(d._handle(), points, starts, values.view(np.uint8), 8, -1, 0)
        assert new == len(ws) - ("abc" in ws)
        want = {w: i for i, w in enumerate(ws)}
        if "abc" in ws:
            want["abc"] = 100  # insert keeps an existing key's value
        assert d.to_dict() == want
        assert all(w in d for w in ws) and {hash(k) for k in d} == {hash(w) for w in ws}
        # A combining op (add, int64 field) adds to the keys now present.
        blobs = values.view(np.uint8)
        assert _ext.insert_new_strings(d._handle(), points, starts, blobs, 8, 0, 4) == 0
        assert d.to_dict() == {w: v + ws.index(w) for w, v in want.items()}
        del d
    d = Dict.empty(types.unicode_type, types.int64)
    one = np.zeros(8, np.uint8)
    bad = {
        "decreasing": (np.array([97, 98], np.uint32), np.array([0, 2, 1], np.int64)),
        "past the end": (np.array([97], np.uint32), np.array([0, 2], np.int64)),
        "not a code point": (np.array([0x110000], np.uint32), np.array([0, 1], np.int64)),
    }
    for what, (points, starts) in bad.items():
        with pytest.raises(ValueError, match="bad code points or offsets"):
            _ext.insert_new_strings(d._handle(), points, starts, np.zeros(16, np.uint8), 8, -1, 0)
        assert len(d) == 0, what
    with pytest.raises(TypeError):  # no silent conversion of the value blobs
        _ext.insert_new_strings(d._handle(), one, np.array([0, 1]), np.ones(1), 8, -1, 0)
