"""Bulk operations on NumPy arrays (set_many, add_many, min_many, max_many, count_many, get_many,
contains_many, to_arrays, from_arrays) against NumPy oracles, at several thread counts."""

import collections
import threading

import numpy as np
import pytest
from numba import njit, prange, types
from numba.core.errors import TypingError
from numba.typed import List

from pardict import Dict

I64, F64 = types.int64, types.float64


def _keys(n, distinct, skew, seed=0):
    rng = np.random.default_rng(seed)
    if skew:
        return (rng.zipf(1.2, n) % distinct).astype(np.int64)
    return rng.integers(0, distinct, n)


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("skew", [False, True], ids=["uniform", "zipf"])
def test_group_by_sum_min_max_match_numpy(threads, skew):
    keys = _keys(300_000, 20_000, skew)
    vals = np.random.default_rng(1).integers(-1000, 1000, keys.size).astype(np.float64)
    s, lo, hi = (Dict.empty(I64, F64) for _ in range(3))
    new = s.add_many(keys, vals, threads=threads)
    lo.min_many(keys, vals, threads=threads)
    hi.max_many(keys, vals, threads=threads)
    uniq, inv = np.unique(keys, return_inverse=True)
    assert new == uniq.size == len(s) == len(lo) == len(hi)
    np.testing.assert_array_equal(s.get_many(uniq), np.bincount(inv, weights=vals))
    mins = np.full(uniq.size, np.inf)
    np.minimum.at(mins, inv, vals)
    maxs = np.full(uniq.size, -np.inf)
    np.maximum.at(maxs, inv, vals)
    np.testing.assert_array_equal(lo.get_many(uniq), mins)
    np.testing.assert_array_equal(hi.get_many(uniq), maxs)
    assert s.add_many(keys, vals, threads=threads) == 0  # all present now: nothing new
    np.testing.assert_array_equal(s.get_many(uniq), 2 * np.bincount(inv, weights=vals))


@pytest.mark.parametrize("threads", [1, 3])
def test_count_many_and_contains_many(threads):
    keys = _keys(200_000, 5_000, True).astype(np.int32)
    c = Dict.empty(types.int32, types.int64)
    c.count_many(keys, threads=threads)
    uniq, counts = np.unique(keys, return_counts=True)
    np.testing.assert_array_equal(c.get_many(uniq), counts)
    probe = np.arange(-10, 6000, dtype=np.int32)
    np.testing.assert_array_equal(c.contains_many(probe, threads=threads), np.isin(probe, uniq))


def test_get_many_default_and_small_values():
    # int16 values live in a 4-byte class: the results go through the padded path
    d = Dict.empty(types.int16, types.int16)
    d.set_many(np.arange(10, dtype=np.int16), np.arange(10, dtype=np.int16) * -3)
    got = d.get_many(np.array([0, 9, 10, -1], dtype=np.int16), default=99)
    np.testing.assert_array_equal(got, [0, -27, 99, 99])
    assert got.dtype == np.int16


def test_set_many_last_wins_on_one_thread_and_assigns():
    d = Dict.empty(I64, F64)
    assert d.set_many(np.array([1, 2, 1]), np.array([1.0, 2.0, 3.0]), threads=1) == 2
    assert d.to_dict() == {1: 3.0, 2: 2.0}
    assert d.set_many(np.array([2]), np.array([5.0])) == 0
    assert d[2] == 5.0


def test_to_arrays_and_from_arrays_round_trip():
    keys = np.random.default_rng(3).permutation(100_000).astype(np.uint32)
    vals = keys.astype(np.float32) / 7
    d = Dict.from_arrays(keys, vals)
    assert (d.key_type, d.value_type) == (types.uint32, types.float32) and len(d) == keys.size
    k, v = d.to_arrays()
    assert k.dtype == np.uint32 and v.dtype == np.float32
    order = np.argsort(k)
    np.testing.assert_array_equal(k[order], np.sort(keys))
    np.testing.assert_array_equal(v[order], np.sort(keys).astype(np.float32) / 7)


_SCALARS = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
_SCALARS += ["float32", "float64"]


@pytest.mark.parametrize("kdt", _SCALARS)
def test_to_arrays_every_scalar_type(kdt):
    # One C++ walk into blob arrays; 1- and 2-byte types come back narrowed from 4-byte blobs.
    # Each key type is paired with another value type (one compilation per pair).
    vdt = _SCALARS[(_SCALARS.index(kdt) + 3) % len(_SCALARS)]
    keys = np.unique(np.arange(-60, 200).astype(kdt))
    v = (np.arange(keys.size) % 7).astype(vdt)
    d = Dict.from_arrays(keys, v)
    for k, got in (d.to_arrays(), njit_to_arrays(d)):
        assert k.dtype == keys.dtype and got.dtype == v.dtype
        assert dict(zip(k.tolist(), got.tolist(), strict=True)) == dict(
            zip(keys.tolist(), v.tolist(), strict=True)
        )


def test_bulk_values_are_stored_bit_for_bit_and_arrays_are_read_in_place():
    # Values keep their bits (-0.0 stays -0.0, as d[k] = v stores it); only keys are canonical.
    d = Dict.empty(I64, types.float64)
    d.set_many(np.array([1, 2]), np.array([-0.0, 0.5]))
    assert np.signbit(d[1]) and d[2] == 0.5
    # int64 keys and float64 values are handed to C++ as they are: read-only arrays work too
    k = np.arange(1000)
    v = np.ones(1000)
    k.flags.writeable = v.flags.writeable = False
    assert d.add_many(k, v) == 998 and d[999] == 1.0 and d[1] == 1.0


def test_float_keys_are_canonical_in_bulk_too():
    d = Dict.from_arrays(np.array([-0.0, np.nan, 1.5]), np.array([1, 2, 3]))
    assert len(d) == 3
    assert d[0.0] == 1 and d[float("nan")] == 2
    np.testing.assert_array_equal(
        d.get_many(np.array([0.0, -0.0, np.float64("nan"), 2.0]), default=-1), [1, 1, 2, -1]
    )


def test_bulk_agrees_with_single_key_operations():
    d = Dict.empty(F64, I64)
    d.add(-0.0, 5)
    d.add_many(np.array([0.0, np.nan]), np.array([1, 1]))
    d.add(float("nan"), 1)
    assert d.to_dict().get(0.0) == 6 and len(d) == 2


def test_bad_input():
    t = Dict.empty(types.UniTuple(I64, 2), F64)
    with pytest.raises(TypeError, match="numeric, bool or str keys"):
        t.get_many(np.array([1]))
    s = Dict.empty(types.unicode_type, F64)
    with pytest.raises(TypeError, match="cannot be used as str keys"):
        s.add_many(np.array([1, 2]), np.array([1.0, 2.0]))
    a = Dict.empty(I64, types.float64[:])
    with pytest.raises(TypeError, match="numeric or bool values"):
        a.set_many(np.array([1]), np.array([1.0]))
    d = Dict.empty(I64, F64)
    with pytest.raises(TypeError, match="cannot be used as int64"):
        d.set_many(np.array([1.5]), np.array([1.0]))
    with pytest.raises(ValueError, match="differ in length"):
        d.add_many(np.array([1, 2]), np.array([1.0]))
    with pytest.raises(ValueError, match="1-d"):
        d.get_many(np.zeros((2, 2), dtype=np.int64))
    b = Dict.empty(I64, types.boolean)
    with pytest.raises(TypeError, match="integer or float values"):
        b.add_many(np.array([1]), np.array([True]))
    with pytest.raises(TypeError, match="integer values"):
        d.count_many(np.array([1]))
    with pytest.raises(TypeError, match="typed"):
        Dict().get_many(np.array([1]))
    assert len(d) == 0 and len(b) == 0


def test_bulk_calls_from_python_threads_lose_nothing():
    keys = _keys(100_000, 1000, True)
    d = Dict.empty(I64, I64)
    ts = [
        threading.Thread(target=d.count_many, args=(keys,), kwargs={"threads": 2}) for _ in range(4)
    ]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    uniq, counts = np.unique(keys, return_counts=True)
    np.testing.assert_array_equal(d.get_many(uniq), 4 * counts)


# ---- str keys: NumPy unicode arrays or sequences of str (prange loops, GIL released) -------------


@pytest.mark.parametrize("threads", [1, 2])
def test_str_keys_count_get_contains_to_arrays(threads):
    rng = np.random.default_rng(4)
    vocab = np.array([f"w{i}" for i in range(3000)])
    tokens = vocab[rng.zipf(1.3, 100_000) % vocab.size]
    d = Dict.empty(types.unicode_type, I64)
    new = d.count_many(tokens, threads=threads)
    uniq, counts = np.unique(tokens, return_counts=True)
    assert new == uniq.size == len(d)
    np.testing.assert_array_equal(d.get_many(uniq, threads=threads), counts)
    probe = ["w0", "nope", "w1"]
    np.testing.assert_array_equal(
        d.contains_many(probe), [d.get("w0") is not None, False, d.get("w1") is not None]
    )
    k, v = d.to_arrays()
    assert k.dtype.kind == "U" and dict(zip(k.tolist(), v.tolist(), strict=True)) == dict(
        zip(uniq.tolist(), counts.tolist(), strict=True)
    )


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_str_get_and_contains_many_read_unicode_arrays_in_place(threads):
    # C++ looks NumPy elements up through borrowed views: any kind of stored word, padding,
    # big-endian and strided arrays, lists, and misses that leave the default.
    rng = np.random.default_rng(14)
    vocab = [f"w{i}" for i in range(5000)] + ["é", "日本", "😀x", ""]
    d = Dict.empty(types.unicode_type, I64)
    stored = {w: i for i, w in enumerate(vocab) if i % 3 != 1}
    for w, v in stored.items():
        d[w] = v
    probe = np.array(vocab + ["nope", "w1x", "日"])[rng.permutation(len(vocab) + 3)]
    want = [stored.get(w, -7) for w in probe.tolist()]
    big_endian = probe.astype(probe.dtype.newbyteorder(">"))
    for keys in (probe, big_endian, np.repeat(probe, 2)[::2], probe.tolist()):
        np.testing.assert_array_equal(d.get_many(keys, -7, threads=threads), want)
        np.testing.assert_array_equal(
            d.contains_many(keys, threads=threads), [w in stored for w in probe.tolist()]
        )
    assert d.get_many(np.array([], dtype="U3")).size == 0


@njit
def njit_contains(d, keys):
    return d.contains_many(keys)


def test_contains_many_with_any_value_type():
    # A membership test reads no values, so values holding references (arrays, str) are fine.
    for kt, k, j in ((types.unicode_type, "k", "j"), (I64, 7, 8)):
        a = Dict.empty(kt, types.float64[:])
        a[k] = np.ones(2)
        t = Dict.empty(kt, types.UniTuple(types.int64, 2))
        t[k] = (1, 2)
        u = Dict.empty(kt, types.unicode_type)
        u[k] = "v"
        keys = np.array([k, j, k])
        for d in (a, t, u):
            np.testing.assert_array_equal(d.contains_many(keys), [True, False, True])
            np.testing.assert_array_equal(njit_contains(d, keys), [True, False, True])
            with pytest.raises(TypeError, match="numeric or bool values"):
                d.get_many(keys)


def test_str_get_many_while_another_thread_grows_the_dict():
    # Words present for the whole call are always found, with their values, while a writer
    # thread inserts enough new words to migrate every shard several times.
    d = Dict.empty(types.unicode_type, I64)
    present = np.array([f"p{i}" for i in range(20_000)])
    d.set_many(present, np.arange(present.size))
    stop = threading.Event()

    def writer():
        j = 0
        while not stop.is_set() and j < 40:
            d.count_many(np.array([f"n{j}_{i}" for i in range(10_000)]), threads=1)
            j += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(20):
            np.testing.assert_array_equal(
                d.get_many(present, -1, threads=2), np.arange(present.size)
            )
    finally:
        stop.set()
        t.join()


def test_str_keys_set_min_max_from_lists():
    d = Dict.empty(types.unicode_type, F64)
    assert d.set_many(["a", "b"], [1.0, 2.0]) == 2
    d.min_many(["a", "b", "c"], [0.5, 3.0, 7.0])
    d.max_many(["c"], [1.0])
    assert d.to_dict() == {"a": 0.5, "b": 2.0, "c": 7.0}
    assert d.add_many([], []) == 0


# ---- the same bulk methods inside @njit (numeric keys and values) --------------------------------


@njit
def njit_bulk(keys, vals, probe, threads):
    d = Dict.empty(types.int16, types.float32)
    new = d.add_many(keys, vals, threads)
    d.max_many(keys, vals * 2, threads)
    c = Dict.empty(F64, I64)
    c.count_many(np.array([-0.0, 0.0, np.nan, np.nan, 1.5]))
    s = Dict.empty(I64, F64)
    s.set_many(np.arange(5), np.arange(5) * 0.5)
    return (
        new,
        d.get_many(probe, -1.0, threads),
        d.contains_many(probe, threads),
        c.get_many(np.array([0.0, np.nan, 2.0])),
        len(c),
        s.get_many(np.arange(6)),
    )


@pytest.mark.parametrize("threads", [1, 2])
def test_bulk_methods_in_njit(threads):
    keys = np.array([1, 2, 1, -3], np.int16)
    vals = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    probe = np.array([1, 2, -3, 7], np.int16)
    new, got, has, counts, nc, s = njit_bulk(keys, vals, probe, threads)
    assert new == 3
    np.testing.assert_array_equal(got, [6.0, 4.0, 8.0, -1.0])  # max(sum, 2 * each value)
    np.testing.assert_array_equal(has, [True, True, True, False])
    np.testing.assert_array_equal(counts, [2, 2, 0])  # -0.0 and 0.0 one key; NaNs one key
    assert nc == 3
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0, 1.5, 2.0, 0.0])


@njit
def njit_count(d, keys):
    return d.count_many(keys)


@njit
def njit_bulk_float_keys_into_int(d, keys):
    return d.count_many(keys)


@njit
def njit_to_arrays(d):
    return d.to_arrays()


@njit
def njit_from_arrays(keys, values):
    return Dict.from_arrays(keys, values)


def test_njit_bulk_typing_errors():
    with pytest.raises(TypingError, match="numeric or bool keys"):
        njit_count(Dict.empty(types.UniTuple(I64, 2), I64), np.array([1]))
    with pytest.raises(TypingError, match="numeric or bool"):
        njit_count(Dict.empty(types.unicode_type, types.unicode_type), np.array(["a"]))
    with pytest.raises(TypingError):
        njit_bulk_float_keys_into_int(Dict.empty(I64, I64), np.array([1.5]))
    with pytest.raises(TypingError, match="str keys: call it from the interpreter"):
        njit_to_arrays(Dict.empty(types.unicode_type, I64))
    with pytest.raises(TypingError, match="1-d array"):
        njit_from_arrays(np.zeros((2, 2)), np.zeros(4))


# ---- from_arrays / to_arrays and str keys inside @njit -------------------------------------------


def test_from_arrays_and_to_arrays_in_njit():
    keys = np.array([3.5, -0.0, 0.0, np.nan, np.nan, 7.0])
    vals = np.arange(6, dtype=np.int32)
    d = njit_from_arrays(keys, vals)
    assert d.key_type == F64 and d.value_type == types.int32
    assert len(d) == 4  # -0.0/0.0 one key, the NaNs one key
    k, v = njit_to_arrays(d)
    assert k.dtype == np.float64 and v.dtype == np.int32
    assert sorted(map(repr, zip(k.tolist(), v.tolist(), strict=True))) == sorted(
        map(repr, d.items())
    )
    assert sorted(map(repr, d.items())) == ["(0.0, 2)", "(3.5, 0)", "(7.0, 5)", "(nan, 4)"]
    s = njit_from_arrays(np.array(["b", "a", "b", "日本"]), np.array([1, 2, 3, 4]))
    assert s.key_type == types.unicode_type
    assert s.to_dict() == {"a": 2, "b": 3, "日本": 4}  # one thread: the last pair wins
    with pytest.raises(ValueError, match="differ in length"):
        njit_from_arrays(np.arange(3), np.arange(2.0))
    e = njit_from_arrays(np.zeros(0, np.int64), np.zeros(0))
    assert len(e) == 0 and [a.size for a in njit_to_arrays(e)] == [0, 0]


@njit
def njit_str_bulk(d, tokens, vals, probe, threads):
    new = d.add_many(tokens, vals, threads)
    d.min_many(tokens[:3], vals[:3] - 100, threads)
    d.max_many(tokens[-3:], vals[-3:] + 100, threads)
    return new, d.get_many(probe, -1, threads), d.contains_many(probe, threads)


def _op_oracle(pairs, start=()):
    out = dict(start)
    for op, ks, vs in pairs:
        fn = {"add": lambda a, b: a + b, "min": min, "max": max}[op]
        for k, v in zip(ks, vs, strict=True):
            out[k] = fn(out[k], v) if k in out else v
    return out


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("contiguous", [True, False])
def test_str_bulk_methods_in_njit(threads, contiguous):
    rng = np.random.default_rng(8)
    vocab = np.array([f"w{i}" for i in range(700)] + ["é", "日本", "😀x", ""])
    tokens = vocab[rng.zipf(1.3, 80_000) % vocab.size]
    if not contiguous:  # a strided view: the loop of single operations instead of C++ aggregation
        tokens = np.repeat(tokens, 2)[::2]
        assert not tokens.flags.c_contiguous
    vals = rng.integers(-5, 50, tokens.size)
    d = Dict.empty(types.unicode_type, I64)
    d["w1"] = 1000
    probe = np.array(["w1", "nope", "日本", "w3"])
    new, got, has = njit_str_bulk(d, tokens, vals, probe, threads)
    t, v = tokens.tolist(), vals.tolist()
    want = _op_oracle(
        [
            ("add", t, v),
            ("min", t[:3], [x - 100 for x in v[:3]]),
            ("max", t[-3:], [x + 100 for x in v[-3:]]),
        ],
        {"w1": 1000},
    )
    assert new == len(set(t) - {"w1"})
    assert d.to_dict() == want
    np.testing.assert_array_equal(got, [want.get(k, -1) for k in probe.tolist()])
    np.testing.assert_array_equal(has, [k in want for k in probe.tolist()])


@njit
def njit_str_lookups(d, probe, threads):
    return d.get_many(probe, -1, threads), d.contains_many(probe, threads)


@njit
def njit_str_contains(d, probe):
    return d.contains_many(probe)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_str_lookups_in_njit_match_a_dict(threads):
    rng = np.random.default_rng(15)
    vocab = [f"v{i}" for i in range(4000)] + ["é", "日本", ""]
    d = Dict.empty(types.unicode_type, I64)
    stored = {w: 3 * i for i, w in enumerate(vocab) if i % 4 != 0}
    for w, v in stored.items():
        d[w] = v
    probe = np.array(vocab + ["zz"])[rng.integers(0, len(vocab) + 1, 30_000)]
    for keys in (probe, probe[::-1][::2]):  # C-contiguous (C++), strided (calling thread)
        got, has = njit_str_lookups(d, keys, threads)
        np.testing.assert_array_equal(got, [stored.get(w, -1) for w in keys.tolist()])
        np.testing.assert_array_equal(has, [w in stored for w in keys.tolist()])
    a = Dict.empty(types.unicode_type, types.float64[:])
    a["k"] = np.ones(1)
    np.testing.assert_array_equal(njit_str_contains(a, np.array(["k", "x"])), [True, False])


@njit
def njit_str_lists(words, vals):
    d = Dict.empty(types.unicode_type, F64)
    a = d.set_many(words, vals)
    d.add_many(words, vals)
    return d, a, d.get_many(words, -1.0), d.contains_many(["zz", words[0]])


@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPendingDeprecationWarning")
def test_str_bulk_from_lists_in_njit():
    from numba.typed import List

    words = ["x", "y", "x", "ü"]
    vals = np.array([1.0, 2.0, 3.0, 4.0])
    for seq in (List(words), words):
        d, new, got, has = njit_str_lists(seq, vals)
        assert new == 3
        assert d.to_dict() == {"x": 3.0 + 1.0 + 3.0, "y": 4.0, "ü": 8.0}
        np.testing.assert_array_equal(got, [7.0, 4.0, 7.0, 8.0])
        np.testing.assert_array_equal(has, [False, True])
    c = Dict.empty(types.unicode_type, types.int16)
    assert njit_count(c, List(words)) == 3 and c.to_dict() == {"x": 2, "y": 1, "ü": 1}


@njit(parallel=True)
def njit_count_in_prange(d, chunks):
    for c in prange(len(chunks)):
        d.count_many(chunks[np.int64(c)])


def test_str_count_many_inside_a_prange_body():
    # The C++ aggregation starts its own workers, so calling it from prange workers is safe on
    # every threading layer (a nested prange kernel would abort under workqueue).
    rng = np.random.default_rng(9)
    vocab = np.array([f"k{i}" for i in range(300)])
    tokens = vocab[rng.integers(0, vocab.size, 64 * 500)]
    chunks = List([tokens[i * 500 : (i + 1) * 500] for i in range(64)])
    d = Dict.empty(types.unicode_type, I64)
    njit_count_in_prange(d, chunks)
    uniq, counts = np.unique(tokens, return_counts=True)
    assert d.to_dict() == dict(zip(uniq.tolist(), counts.tolist(), strict=True))


def test_str_counting_finds_keys_of_every_kind():
    # New keys are stored as numba strings (narrowest kind: 1, 2 or 4 bytes per code point); later
    # tokens are looked up through a borrowed 4-byte view of the NumPy element: the same key.
    words = np.array(["a", "é", "日本", "😀x", "a", "é", "日本", "😀x", "abc"])
    d = Dict.empty(types.unicode_type, I64)
    assert d.count_many(np.tile(words, 50), threads=2) == 5
    assert d.to_dict() == {"a": 100, "é": 100, "日本": 100, "😀x": 100, "abc": 50}
    d.add("日本", 1)  # from a Python str (a numba string, not a view)
    assert d["日本"] == 101


# ---- str keys through the C++ per-word aggregation (add/min/max/count_many) -------------------


def _oracle(op, tokens, vals, start):
    out = dict(start)
    fn = {"add": lambda a, b: a + b, "min": min, "max": max}[op]
    for k, v in zip(tokens.tolist(), vals.tolist(), strict=True):
        out[k] = fn(out[k], v) if k in out else v
    return {k: np.array(v).astype(vals.dtype)[()] for k, v in out.items()}  # sums wrap as stored


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.float32, np.uint16])
@pytest.mark.parametrize("op", ["add", "min", "max"])
def test_str_bulk_aggregates_words_exactly(threads, dtype, op):
    rng = np.random.default_rng(11)
    vocab = np.array([f"w{i}" for i in range(2000)] + ["", "é", "日本", "😀", "a" * 30])
    tokens = vocab[rng.zipf(1.2, 60_000) % vocab.size]
    vals = rng.integers(0, 5, tokens.size).astype(dtype)  # small: int8 sums wrap identically
    vty = numba_type_of(dtype)
    d = Dict.empty(types.unicode_type, vty)
    start = {"w0": 3, "日本": 1, "absent-from-tokens": 2}
    for k, v in start.items():
        d[k] = dtype(v)
    new = getattr(d, f"{op}_many")(tokens, vals, threads=threads)
    want = _oracle(op, tokens, vals, start)
    assert new == len(want) - len(start)
    got = d.to_dict()
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == want[k], k


def numba_type_of(dtype):
    from numba.np.numpy_support import from_dtype

    return from_dtype(np.dtype(dtype))


def test_str_count_many_padding_byte_order_and_repeats():
    words = np.array(["ab", "a", "ab\x00", "", "b"], dtype="<U4")  # NumPy drops trailing NULs
    d = Dict.empty(types.unicode_type, I64)
    assert d.count_many(words) == 4
    assert d.to_dict() == {"ab": 2, "a": 1, "": 1, "b": 1}
    assert d.count_many(words.astype(">U4")) == 0  # big-endian input: the same words
    assert d.count_many(np.tile(words, 10_000), threads=3) == 0
    assert d.to_dict() == {"ab": 20_004, "a": 10_002, "": 10_002, "b": 10_002}


def test_str_max_many_nan_never_hides_later_rows():
    d = Dict.empty(types.unicode_type, F64)
    d["w"] = 0.5
    d.max_many(np.array(["w", "w", "v", "v"]), np.array([np.nan, 1.0, np.nan, 2.0]))
    assert d["w"] == 1.0  # every order of the rows gives 1.0 (a NaN never replaces)
    assert d["v"] == 2.0 or np.isnan(d["v"])  # absent: the first row decides; some order gives each


def test_numeric_bulk_hot_cache_matches_numpy_with_nans():
    # Many rows on few keys take the private pre-aggregation path; check it row-exactly, NaNs too.
    rng = np.random.default_rng(5)
    keys = (rng.zipf(1.1, 200_000) % 5000).astype(np.int64)
    vals = rng.integers(0, 9, keys.size).astype(np.float64)
    vals[rng.random(keys.size) < 0.01] = np.nan
    for op, red in (("min", np.fmin), ("max", np.fmax)):
        for threads in (1, 2):
            d = Dict.empty(I64, F64)
            d[int(keys[5])] = 4.5
            getattr(d, f"{op}_many")(keys, vals, threads=threads)
            u = np.unique(keys)
            want = {int(k): red.reduce(vals[keys == k]) for k in u[:300]}
            want[int(keys[5])] = red(want[int(keys[5])], 4.5)
            for k, w in want.items():
                got = d[k]
                assert got == w or (np.isnan(w) and np.isnan(got)), (op, k, got, w)
    d = Dict.empty(I64, I64)
    d.add_many(keys, np.ones(keys.size, np.int64), threads=2)
    u, c = np.unique(keys, return_counts=True)
    np.testing.assert_array_equal(d.get_many(u), c)


# ---- keys and values that do not fit -----------------------------------------------------------


@pytest.mark.parametrize(
    "kt,bad",
    [
        (types.int32, np.array([1, 2**32 + 1], dtype=np.int64)),
        (types.int32, np.array([1, -(2**32) + 1], dtype=np.int64)),
        (types.int64, np.array([1, 2**63], dtype=np.uint64)),
        (types.uint64, np.array([1, -1], dtype=np.int64)),
        (types.uint8, np.array([1, 256], dtype=np.int16)),
    ],
    ids=["int32<-int64 big", "int32<-int64 negative", "int64<-uint64", "uint64<-int64", "u8<-i16"],
)
def test_bulk_keys_that_do_not_fit_are_refused(kt, bad):
    d = Dict.empty(kt, I64)
    d[1] = 7
    ones = np.ones(bad.size, dtype=np.int64)
    for call in (
        lambda: d.add_many(bad, ones),
        lambda: d.set_many(bad, ones),
        lambda: d.count_many(bad),
        lambda: d.get_many(bad),
        lambda: d.contains_many(bad),
    ):
        with pytest.raises(OverflowError, match=f"key {bad[1]} does not fit"):
            call()
    assert d.to_dict() == {1: 7}  # nothing stored, nothing combined into key 1


def test_bulk_values_that_do_not_fit_are_refused():
    d = Dict.empty(I64, types.int8)
    with pytest.raises(OverflowError, match="value 300 does not fit"):
        d.add_many(np.array([1, 2]), np.array([1, 300]))
    assert len(d) == 0
    d.add_many(np.array([1, 2]), np.array([1, -128], dtype=np.int64))  # in range: fine
    assert d.to_dict() == {1: 1, 2: -128}


@pytest.mark.parametrize("threads", [0, -5])
def test_bulk_threads_must_be_positive(threads):
    d = Dict.empty(I64, I64)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        d.add_many(np.array([1]), np.array([1]), threads=threads)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        d.get_many(np.array([1]), threads=threads)
    with pytest.raises(TypeError, match="threads must be an int"):
        d.count_many(np.array([1]), threads=1.5)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("large", [False, True])
def test_str_bulk_reads_arrow_strings_in_place(threads, large):
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(5)
    vocab = [f"w{i}" for i in range(3000)] + ["", "é", "日本", "😀", "a" * 40, "x\x00y"]
    tokens = [vocab[i] for i in rng.zipf(1.2, 80_000) % len(vocab)]
    typ = pa.large_string() if large else pa.string()
    arr = pa.array(["skipped"] * 7 + tokens + ["skipped"], type=typ).slice(7, len(tokens))
    assert arr.offset == 7  # a slice: the offsets start past the buffer's first string
    d = Dict.empty(types.unicode_type, types.int64)
    d["w0"] = 5
    d["日本"] = 1
    assert d.count_many(arr, threads=threads) == len(set(tokens)) - 2
    want = collections.Counter(tokens)
    want["w0"] += 5
    want["日本"] += 1
    assert d.to_dict() == dict(want)
    # a chunked array, and add/min/max with values (the misses' aggregates inserted once)
    chunked = pa.chunked_array([arr.slice(0, 30_000), arr.slice(30_000)])
    vals = rng.integers(0, 5, len(tokens)).astype(np.float32)
    for op in ("add", "min", "max"):
        e = Dict.empty(types.unicode_type, types.float32)
        e["w0"] = np.float32(3)
        getattr(e, f"{op}_many")(chunked, vals, threads=threads)
        assert e.to_dict() == _oracle(op, np.array(tokens, dtype=object), vals, {"w0": 3})


def test_str_bulk_arrow_refuses_nulls():
    pa = pytest.importorskip("pyarrow")
    d = Dict.empty(types.unicode_type, types.int64)
    with pytest.raises(ValueError, match="1 missing values"):
        d.count_many(pa.array(["a", None]))
    assert len(d) == 0


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_str_bulk_arrow_words_seen_by_every_thread(threads):
    # Every word occurs in every thread's share of the rows, so each worker's table holds all of
    # them: the workers' tables are folded together before the dict is touched, so each new word
    # is counted as new once and every row lands once. Long words share their first 16 bytes
    # (the part a slot holds) and differ in the tail or only in length.
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(11)
    stem = "0123456789abcdef"
    vocab = [f"w{i}" for i in range(4000)]
    vocab += [stem + f"{i}" for i in range(200)] + [stem, stem + "0" * 40, stem + "0" * 41]
    vocab += ["", "é", "ñandú", "日本語", "😀x", "x\x00y"]
    half = [vocab[i] for i in rng.integers(0, len(vocab), 60_000)] + vocab
    tokens = half + half[::-1]  # the second half of the rows repeats the first
    arr = pa.array(tokens, type=pa.string())
    d = Dict.empty(types.unicode_type, types.int64)
    d["w1"] = 10
    new = d.count_many(arr, threads=threads)
    want = collections.Counter(tokens)
    assert new == len(want) - 1
    want["w1"] += 10
    assert d.to_dict() == dict(want)


def test_str_bulk_arrow_concurrent_callers_count_every_row():
    # Interpreter threads feeding one dict at once: a word that two calls both found missing is
    # inserted by one and combined by the other (no row lost, no word twice).
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(12)
    tokens = [f"t{i}" for i in rng.integers(0, 20_000, 100_000)]
    arr = pa.array(tokens, type=pa.large_string())
    d = Dict.empty(types.unicode_type, types.int64)
    d.count_many(arr[:10])  # compiles the jitted miss loop before the race
    d.clear()
    news = []
    workers = [
        threading.Thread(target=lambda: news.append(d.count_many(arr, threads=2))) for _ in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    want = collections.Counter(tokens)
    assert sum(news) == len(want)
    assert d.to_dict() == {k: 4 * v for k, v in want.items()}


def test_utf8_gather_refuses_rows_and_offsets_outside_the_array():
    from pardict import _ext

    offsets = np.array([0, 2, 6], dtype=np.int32)
    points, starts = _ext.utf8_gather(b"abcd\xc3\xa9", offsets, 4, 0, 2, np.array([1, 0]))
    assert points.view(np.uint32).tolist() == [ord(c) for c in "cdé" + "ab"]
    assert starts.view(np.int64).tolist() == [0, 3, 5]
    # a cut UTF-8 sequence (Arrow validates its strings; a foreign buffer may not) is U+FFFD
    cut = np.array([0, 5], dtype=np.int32)
    points, _ = _ext.utf8_gather(b"abcd\xc3\xa9", cut, 4, 0, 1, np.array([0]))
    assert points.view(np.uint32).tolist()[-1] == 0xFFFD
    for rows in ([2], [-1]):
        with pytest.raises(ValueError, match="bad rows or offsets"):
            _ext.utf8_gather(b"abcd\xc3\xa9", offsets, 4, 0, 2, np.array(rows, dtype=np.int64))
    with pytest.raises(ValueError, match="bad rows or offsets"):  # past the data
        _ext.utf8_gather(b"ab", offsets, 4, 0, 2, np.array([1], dtype=np.int64))


def test_str_bulk_arrow_words_longer_than_a_slot_records():
    # A slot keeps sizes below 2^16 exactly; longer words, and words equal in their first 16 bytes
    # and in length but not after, are told apart by their bytes.
    pa = pytest.importorskip("pyarrow")
    big = "x" * 70_000
    tokens = [big, big + "x", big, big[:-1] + "y", "y", big + "x", "é" * 40_000] * 3
    d = Dict.empty(types.unicode_type, types.int64)
    assert d.count_many(pa.array(tokens), threads=2) == 5
    assert d.to_dict() == dict(collections.Counter(tokens))
