"""pardict.group_indices against a pure-Python model (a dict from key to its rows, groups in order
of first occurrence), in the interpreter and in @njit code, at several thread counts, from a
prange body and from interpreter threads at once."""

import math
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit, prange
from numba.core.errors import TypingError

import pardict
from pardict import group_indices

NAN = object()  # the model's one NaN key


def _canon(k):
    if isinstance(k, float) and math.isnan(k):
        return NAN
    return k  # -0.0 == 0.0 and hash alike: one dict key


def model(keys):
    """(first rows, rows per group) of a 1-d array, the slow way."""
    rows = {}
    for i, k in enumerate(keys.tolist()):
        rows.setdefault(_canon(k), []).append(i)
    groups = list(rows.values())  # dicts keep insertion order: first occurrence
    return [g[0] for g in groups], groups


def check(keys, got):
    uniques, offsets, indices = got
    first, groups = model(keys)
    assert offsets.dtype == np.int64 and indices.dtype == np.int64
    assert offsets.tolist() == [0, *np.cumsum([len(g) for g in groups]).tolist()]
    assert indices.tolist() == [i for g in groups for i in g]
    # uniques[g] is the key of group g's first row, bit for bit (-0.0 stays -0.0, NaN payloads)
    assert uniques.dtype == keys.dtype
    want = keys[np.array(first, dtype=np.int64)]
    if keys.dtype.kind in "fiub":
        assert uniques.tobytes() == want.tobytes()
    else:
        assert uniques.tolist() == want.tolist()


SETTINGS = settings(max_examples=60, deadline=None)
small_ints = st.integers(-4, 4) | st.integers(-(2**63), 2**63 - 1)
specials = st.sampled_from([0.0, -0.0, math.nan, -math.nan, math.inf, -math.inf, 1.5, -1.5])
words = st.text(alphabet=st.sampled_from(["a", "b", "\0", "é", "\U0001f600"]), max_size=4)


@SETTINGS
@given(st.lists(small_ints, max_size=300))
def test_int64_matches_the_model(xs):
    keys = np.array(xs, dtype=np.int64)
    check(keys, group_indices(keys))


@SETTINGS
@given(st.lists(specials | st.floats(allow_nan=True), max_size=300))
def test_float64_matches_the_model_with_nan_and_signed_zero(xs):
    keys = np.array(xs, dtype=np.float64)
    check(keys, group_indices(keys))


@SETTINGS
@given(st.lists(st.booleans(), max_size=300))
def test_bool_matches_the_model(xs):
    keys = np.array(xs, dtype=np.bool_)
    check(keys, group_indices(keys))


@SETTINGS
@given(st.lists(words, min_size=1, max_size=300))
def test_str_matches_the_model(xs):
    # NumPy strips trailing NULs ("a\0" is "a"); inner ones stay ("a\0b" is not "ab")
    keys = np.array(xs, dtype=str)
    check(keys, group_indices(keys))
    check(keys, group_indices(xs))  # a list of str: the same


@settings(max_examples=12, deadline=None)
@given(
    st.lists(specials | small_ints.map(float), min_size=1, max_size=50),
    st.integers(0, 2**32 - 1),
    st.sampled_from([70_000, 150_000]),
)
def test_thread_counts_give_the_models_result(pool, seed, n):
    # Enough rows for several workers; every thread count must give the model's result.
    keys = np.random.default_rng(seed).choice(np.array(pool), n)
    results = [group_indices(keys, threads=t) for t in (1, 2, 8)]
    check(keys, results[0])
    for r in results[1:]:
        for a, b in zip(results[0], r, strict=True):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    "dtype",
    ["int8", "int16", "int32", "uint8", "uint16", "uint32", "uint64", "float32", ">i8", ">f4"],
)
def test_other_dtypes(dtype):
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 120, 80_000).astype(dtype)
    if keys.dtype.kind == "f":
        keys[::7] = -0.0
        keys[::11] = np.nan
    got = group_indices(keys, threads=2)
    check(keys.astype(keys.dtype.newbyteorder("=")), got)


@pytest.mark.parametrize(
    "keys",
    [np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, "<U3"), []],
    ids=["int64", "float32", "str", "list"],
)
def test_empty(keys):
    uniques, offsets, indices = group_indices(keys)
    assert uniques.size == 0 and offsets.tolist() == [0] and indices.size == 0
    if isinstance(keys, np.ndarray):
        assert uniques.dtype == keys.dtype


def test_one_group_and_all_distinct():
    n = 100_000
    u, o, i = group_indices(np.full(n, 7, np.int64), threads=2)
    assert u.tolist() == [7] and o.tolist() == [0, n]
    np.testing.assert_array_equal(i, np.arange(n))
    keys = np.random.default_rng(1).permutation(n).astype(np.float64)
    u, o, i = group_indices(keys, threads=2)
    np.testing.assert_array_equal(u, keys)
    np.testing.assert_array_equal(o, np.arange(n + 1))
    np.testing.assert_array_equal(i, np.arange(n))
    words = np.array([f"w{k}" for k in range(n)])
    u, o, i = group_indices(words, threads=2)
    np.testing.assert_array_equal(u, words)
    np.testing.assert_array_equal(i, np.arange(n))


def test_nan_payloads_and_signed_zero_group_together():
    bits = np.array(
        [0x7FF8000000000000, 0xFFF8000000000001, 0x8000000000000000, 0, 0x7FF4000000000000],
        dtype=np.uint64,
    )
    keys = bits.view(np.float64)  # NaN, another NaN, -0.0, 0.0, a signalling NaN
    u, o, i = group_indices(keys)
    assert u.view(np.uint64).tolist() == [0x7FF8000000000000, 0x8000000000000000]
    assert o.tolist() == [0, 3, 5] and i.tolist() == [0, 1, 4, 2, 3]


def test_non_contiguous_input():
    rng = np.random.default_rng(2)
    table = rng.integers(0, 50, (60_000, 3))
    for keys in (table[:, 1], table[::-1, 0], table.astype(np.float32)[::2, 2]):
        assert not keys.flags.c_contiguous
        got = group_indices(keys, threads=2)
        check(np.ascontiguousarray(keys), got)
        jit = _njit_group(keys, 2)
        for a, b in zip(got, jit, strict=True):
            np.testing.assert_array_equal(a, b)
    words = np.array(["x", "yy", "x", "zzz", "yy", "x"])[::-1]
    check(np.ascontiguousarray(words), group_indices(words))


@njit
def _njit_group(keys, threads):
    return pardict.group_indices(keys, threads)


@njit
def _njit_group_default(keys):
    return pardict.group_indices(keys)


def test_njit_is_the_interpreters_result():
    rng = np.random.default_rng(3)
    for keys in (
        rng.integers(-5, 5, 50_000),
        rng.random(50_000).round(2),
        np.array(["b", "a", "b", "", "é"] * 1000),
        rng.integers(0, 2, 1000).astype(np.bool_),
    ):
        want = group_indices(keys)
        for got in (_njit_group(keys, 2), _njit_group_default(keys)):
            for a, b in zip(want, got, strict=True):
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)


@njit(parallel=True)
def _groups_in_prange(parts):
    sizes = np.zeros(parts.shape[0], dtype=np.int64)
    firsts = np.zeros(parts.shape[0], dtype=np.int64)
    for p in prange(parts.shape[0]):
        u, o, i = pardict.group_indices(parts[p], 2)
        sizes[p] = u.size
        firsts[p] = i[o[u.size - 1]]  # the first row of the last group
    return sizes, firsts


def test_inside_a_prange_body():
    parts = np.random.default_rng(4).integers(0, 1000, (8, 70_000))
    sizes, firsts = _groups_in_prange(parts)
    for p in range(parts.shape[0]):
        first, groups = model(parts[p])
        assert sizes[p] == len(groups) and firsts[p] == first[-1]


def test_interpreter_threads_at_once():
    rng = np.random.default_rng(6)
    inputs = [rng.integers(0, 5000, 120_000) for _ in range(4)]
    inputs.append(np.array([f"k{k}" for k in rng.integers(0, 300, 60_000)]))
    out = [None] * len(inputs)

    def work(j):
        for _ in range(3):
            out[j] = group_indices(inputs[j], threads=2)

    threads = [threading.Thread(target=work, args=(j,)) for j in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for keys, got in zip(inputs, out, strict=True):
        check(keys, got)


@pytest.mark.usefixtures("no_leaks")
def test_no_leaks():
    keys = np.array([3, 1, 3, 2])
    for _ in range(3):
        group_indices(keys)
        _njit_group(keys, 1)
        group_indices(np.array(["a", "b", "a"]))


def test_errors():
    with pytest.raises(ValueError, match="1-d"):
        group_indices(np.zeros((2, 2)))
    for bad in (np.array([1 + 2j]), np.array([b"x"]), np.array([None]), np.zeros(3, np.float16)):
        with pytest.raises(TypeError, match="keys must be"):
            group_indices(bad)
    with pytest.raises(TypeError, match="mixes str with int"):
        group_indices(["a", 1])
    with pytest.raises(ValueError, match="threads must be at least 1"):
        group_indices(np.arange(3), threads=0)
    with pytest.raises(TypeError, match="threads must be an int"):
        group_indices(np.arange(3), threads=2.0)
    with pytest.raises(TypingError, match="keys must be a 1-d array"):
        _njit_group(np.zeros((2, 2)), 1)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        _njit_group(np.arange(3), 0)


def test_without_the_jit():
    # NUMBA_DISABLE_JIT=1: nothing compiles; a NumPy implementation gives the same result.
    program = textwrap.dedent(
        """
        import numpy as np, pardict
        keys = np.array([2.0, -0.0, np.nan, 2.0, 0.0, np.nan, 5.0])
        u, o, i = pardict.group_indices(keys)
        print(u.tolist(), o.tolist(), i.tolist())
        u, o, i = pardict.group_indices(["b", "a", "b"])
        print(u.tolist(), o.tolist(), i.tolist())
        """
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [
        "[2.0, -0.0, nan, 5.0] [0, 2, 4, 6, 7] [0, 3, 1, 4, 2, 5, 6]",
        "['b', 'a'] [0, 2, 3] [0, 2, 1]",
    ]
