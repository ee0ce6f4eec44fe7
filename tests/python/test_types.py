"""Key and value type matrix: round trips between the interpreter and njit, size limits,
unsupported types."""

import numpy as np
import pytest
from numba import njit, types
from numba.core.errors import TypingError

from pardict import Dict, DictType

pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaTypeSafetyWarning")

I64 = types.int64
T = types.Tuple
U = types.unicode_type


# ---- keys -----------------------------------------------------------------------------------------

KEY_CASES = [
    (types.int8, [-128, -1, 0, 1, 127]),
    (types.int16, [-32768, -1, 0, 300, 32767]),
    (types.int32, [-(2**31), -1, 0, 70000, 2**31 - 1]),
    (types.int64, [-(2**63), -1, 0, 2**40, 2**63 - 1]),
    (types.uint8, [0, 1, 128, 255]),
    (types.uint16, [0, 1, 40000, 65535]),
    (types.uint32, [0, 1, 2**31, 2**32 - 1]),
    (types.uint64, [0, 1, 2**63, 2**64 - 1]),
    (types.float32, [0.0, -1.5, 3.25, 2.0**100, -(2.0**-126)]),
    (types.float64, [0.0, -1.5, 1e300, 5e-324, -7.0]),
    (types.boolean, [False, True]),
    (U, ["", "a", "é", "€", "😀", "mixed é€😀", "x" * 70]),
    (T([I64, I64]), [(0, 0), (0, 1), (1, 0), (-1, -1), (2**62, -(2**62))]),
    (
        T([types.int32, types.float64, types.boolean]),
        [(0, 0.0, False), (0, 0.0, True), (1, 0.5, False), (-5, -0.5, True)],
    ),
    (T([U, I64]), [("", 0), ("a", 0), ("a", 1), ("😀", -3), ("é€", 2**40)]),
    (T([U, U]), [("", ""), ("a", ""), ("", "a"), ("ab", "c"), ("a", "bc"), ("é", "😀")]),
]


def _njit_keys(kt, keys):
    """Keys as njit sees them: arrays of the exact dtype for scalars, a tuple otherwise."""
    if isinstance(kt, (types.Integer, types.Float, types.Boolean)):
        return np.array(keys, dtype=np.dtype(str(kt) if kt != types.boolean else "bool"))
    return tuple(keys)


@njit
def check_keys_njit(d, e, keys, vals):
    """Looks every key up in d (filled by the interpreter), walks d, fills e from njit."""
    found = 0
    for i in range(len(keys)):
        if keys[i] in d and d[keys[i]] == vals[i] and d.get(keys[i], -1) == vals[i]:
            found += 1
    walked = 0
    for k, v in d.items():
        for i in range(len(keys)):
            if keys[i] == k and vals[i] == v:
                walked += 1
    for i in range(len(keys)):
        e[keys[i]] = vals[i]
    return found, walked, len(d)


@pytest.mark.parametrize("kt,keys", KEY_CASES, ids=[str(c[0]) for c in KEY_CASES])
def test_key_type_round_trip(kt, keys):
    model = {k: i * 10 + 1 for i, k in enumerate(keys)}
    assert len(model) == len(keys)
    d = Dict.empty(kt, I64)
    for k, v in model.items():
        # Python ints beyond int64 need a uint64 scalar once an int64 overload exists (numba's
        # dispatcher types every Python int as int64 then; typed.Dict behaves the same)
        d[np.uint64(k) if kt == types.uint64 else k] = v
    assert len(d) == len(keys)
    e = Dict.empty(kt, I64)
    vals = np.array([model[k] for k in keys], dtype=np.int64)
    found, walked, n = check_keys_njit(d, e, _njit_keys(kt, keys), vals)
    assert (found, walked, n) == (len(keys), len(keys), len(keys))
    for dd in (d, e):
        got = dd.to_dict()
        assert got == model
        assert all(
            type(a) is type(b)
            for a, b in zip(sorted(got, key=repr), sorted(model, key=repr), strict=True)
        )
    assert d[keys[0]] == model[keys[0]]


def test_scalar_keys_differing_only_in_width_do_not_collide():
    # int8 -1 is 0xff; uint8 255 is 0xff: both are stored in a 4-byte class with zero padding.
    d = Dict.empty(types.int16, I64)
    for k in (-1, 255, 65535 - 65536, 0, 256):
        d[k] = k
    assert d.to_dict() == {-1: -1, 255: 255, 0: 0, 256: 256}


# ---- values ---------------------------------------------------------------------------------------


def _same(a, b):
    if isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b)
        )
    if isinstance(b, tuple):
        return isinstance(a, tuple) and len(a) == len(b) and all(map(_same, a, b))
    return a == b and type(a) is type(b)


VALUE_CASES = [
    ("int8", types.int8, lambda i: i - 3),
    ("uint16", types.uint16, lambda i: 65535 - i),
    ("int32", types.int32, lambda i: -(2**31) + i),
    ("float32", types.float32, lambda i: i * 0.5),
    ("float64", types.float64, lambda i: i / 3.0),
    ("boolean", types.boolean, lambda i: i % 2 == 0),
    ("complex128", types.complex128, lambda i: complex(i, -i)),
    ("(int64,float64)", T([I64, types.float64]), lambda i: (i, i * 0.5)),
    (
        "(float32,int8,boolean)",
        T([types.float32, types.int8, types.boolean]),
        lambda i: (i * 0.25, -i, i % 2 == 1),
    ),
    (
        "UniTuple(float64,4)",
        types.UniTuple(types.float64, 4),
        lambda i: (float(i), 1.0, 2.0, -i * 1.0),
    ),
    ("(unicode,int64)", T([U, I64]), lambda i: ("s" * i + "é", i)),
    (
        "(int64,float64[:])",
        T([I64, types.float64[:]]),
        lambda i: (i, np.arange(i, dtype=np.float64)),
    ),
    ("float64[::1]", types.float64[::1], lambda i: np.arange(i, dtype=np.float64)),
    (
        "int32[:, ::1]",
        types.int32[:, ::1],
        lambda i: np.arange(6 * i, dtype=np.int32).reshape(2, 3 * i),
    ),
    (
        "float64[::1, :] F",
        types.float64[::1, :],
        # (an empty F array would be typed 'C'; numba cannot cast C to F: typed.Dict fails alike)
        lambda i: np.asfortranarray(np.arange(4 * i + 4, dtype=np.float64).reshape(2 * i + 2, 2)),
    ),
    (
        "float32[:] non-contiguous",
        types.float32[:],
        lambda i: np.arange(3 * i + 3, dtype=np.float32)[::3],
    ),
    ("uint8[:, :, :]", types.uint8[:, :, :], lambda i: np.full((2, i, 3), i, dtype=np.uint8)),
    ("bool[:]", types.boolean[:], lambda i: np.arange(i + 2) % 2 == 0),
    ("complex64[:]", types.complex64[:], lambda i: np.arange(i, dtype=np.complex64) * 1j),
    ("unicode", U, lambda i: "é€😀"[: i % 4] + str(i)),
]


@njit
def copy_items_njit(d, e):
    n = 0
    for k, v in d.items():
        e[k] = v
        n += 1
    return n


@njit
def get_njit(d, k):
    return d[k]


@pytest.mark.parametrize("vt,val", [c[1:] for c in VALUE_CASES], ids=[c[0] for c in VALUE_CASES])
def test_value_type_round_trip(vt, val):
    n = 4
    d = Dict.empty(I64, vt)
    src = {i: val(i) for i in range(n)}
    for k, v in src.items():
        d[k] = v
    e = Dict.empty(I64, vt)
    assert copy_items_njit(d, e) == n
    for dd in (d, e):
        got = dd.to_dict()
        assert set(got) == set(range(n))
        for k in range(n):
            assert _same(got[k], val(k)), (k, got[k], val(k))
    assert _same(get_njit(e, 2), val(2))
    assert _same(d[3], val(3))
    if isinstance(vt, types.Array):
        assert np.shares_memory(d[1], src[1]) and np.shares_memory(e[1], src[1])
        if vt.layout == "F":
            assert e[1].flags.f_contiguous and not e[1].flags.c_contiguous
        if vt.layout == "A":
            assert e[2].strides == src[2].strides


# ---- wide strings ----------------------------------------------------------------------------------


@njit
def lookup_slice(d, s, a, b):
    return d[s[a:b]]


@njit
def store_slice(d, s, a, b, v):
    d[s[a:b]] = v


@njit
def lookup_slice_tuple(d, s, a, b, i):
    return d[(s[a:b], i)]


def test_wide_string_keys_match_across_kinds():
    d = Dict.empty(U, I64)
    d["abc"] = 1  # ASCII (kind 1)
    d["é"] = 2  # latin-1, not ASCII
    d["é€"] = 3  # UCS-2
    d["😀x"] = 4  # UCS-4
    # slicing a UCS-4 string in njit keeps the wide kind; lookups go by code points
    assert lookup_slice(d, "😀abc", 1, 4) == 1
    assert lookup_slice(d, "😀é", 1, 2) == 2
    assert lookup_slice(d, "😀é€", 1, 3) == 3
    assert lookup_slice(d, "a😀xz", 1, 3) == 4
    assert lookup_slice(d, "€abc", 1, 4) == 1
    # storing a sliced (wide) string replaces the same key
    store_slice(d, "😀abc", 1, 4, 10)
    store_slice(d, "€é€", 1, 3, 30)
    assert len(d) == 4
    assert d.to_dict() == {"abc": 10, "é": 2, "é€": 30, "😀x": 4}
    with pytest.raises(KeyError):
        lookup_slice(d, "😀abd", 1, 4)


def test_wide_string_in_tuple_keys():
    d = Dict.empty(T([U, I64]), I64)
    d[("abc", 7)] = 1
    d[("é€", 7)] = 2
    assert lookup_slice_tuple(d, "😀abc", 1, 4, 7) == 1
    assert lookup_slice_tuple(d, "😀é€", 1, 3, 7) == 2
    with pytest.raises(KeyError):
        lookup_slice_tuple(d, "😀abc", 1, 4, 8)


# ---- size limits ------------------------------------------------------------------------------------


BIG_KEY = types.UniTuple(types.float64, 20)


@njit
def make_too_large_key():
    return Dict.empty(BIG_KEY, types.int64)


def test_too_large_key_type():
    with pytest.raises((TypingError, TypeError), match="too large"):
        Dict.empty(types.UniTuple(types.float64, 20), I64)
    with pytest.raises((TypingError, TypeError), match="too large"):
        make_too_large_key()


def test_too_large_value_type():
    with pytest.raises((TypingError, TypeError), match="too large"):
        Dict.empty(I64, types.UniTuple(types.float64, 40))


@njit
def wide_key_round_trip(d, k, v):
    d[k] = v
    return d[k], len(d)


def test_largest_key_and_value_types_work():
    kt = types.UniTuple(types.float64, 16)  # 128 bytes: the largest key class
    vt = types.UniTuple(types.float64, 32)  # 256 bytes: the largest value class
    d = Dict.empty(kt, vt)
    k = tuple(float(i) for i in range(16))
    v = tuple(float(-i) for i in range(32))
    assert wide_key_round_trip(d, k, v) == (v, 1)
    k2 = k[:-1] + (99.0,)
    d[k2] = v[::-1]
    assert d.to_dict() == {k: v, k2: v[::-1]}


# ---- unsupported key and value types --------------------------------------------------------------


@pytest.mark.parametrize(
    "kt",
    [
        types.float64[:],
        types.List(I64),
        types.none,
        types.Optional(I64),
        types.UniTuple(types.float64[:], 2),
    ],
    ids=str,
)
def test_unsupported_key_types(kt):
    with pytest.raises(TypingError):
        Dict.empty(kt, I64)
    with pytest.raises(TypingError):
        DictType(kt, I64)


@njit
def make_array_keyed():
    return Dict.empty(types.float64[:], types.int64)


def test_unsupported_key_type_in_njit():
    with pytest.raises(TypingError):
        make_array_keyed()


def test_unsupported_key_from_untyped_dict():
    d = Dict()
    with pytest.raises((TypingError, TypeError)):
        d[np.zeros(3)] = 1
    assert len(d) == 0


@pytest.mark.parametrize("vt", [types.none, types.Optional(I64)], ids=str)
def test_unsupported_value_types(vt):
    with pytest.raises(TypingError):
        Dict.empty(I64, vt)
