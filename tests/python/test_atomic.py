"""Atomic read-modify-write: d.add / d.min / d.max, from the interpreter and from prange, against
exact oracles (a plain loop, NumPy)."""

import math

import numpy as np
import pytest
from numba import njit, prange, types
from numba.core.errors import TypingError

from pardict import Dict

I64, F64, U = types.int64, types.float64, types.unicode_type


def test_interpreter_add_min_max():
    d = Dict.empty(I64, F64)
    assert d.add(1, 2.5) == 2.5  # absent: stores x
    assert d.add(1, 1.0) == 3.5
    assert d.min(2, 5.0) == 5.0
    assert d.min(2, 7.0) == 5.0
    assert d.min(2, 3.0) == 3.0
    assert d.max(2, 1.0) == 3.0
    assert d.max(2, 4.0) == 4.0
    assert d.to_dict() == {1: 3.5, 2: 4.0}


def test_nan_never_replaces_in_min_max():
    d = Dict.empty(I64, F64)
    d.max(1, 2.0)
    assert d.max(1, math.nan) == 2.0
    assert d.min(1, math.nan) == 2.0
    assert math.isnan(d.add(1, math.nan))


def test_integer_add_wraps_like_numba_integers():
    d = Dict.empty(I64, types.int8)
    d[0] = np.int8(127)
    assert d.add(0, np.int8(1)) == -128
    u = Dict.empty(I64, types.uint64)
    u[0] = np.uint64(2**64 - 1)
    assert u.add(0, np.uint64(2)) == 1


def test_tuples_combine_field_by_field():
    t = Dict.empty(U, types.Tuple([types.int32, F64]))
    assert t.add("a", (np.int32(1), 0.5)) == (1, 0.5)
    assert t.add("a", (np.int32(2), 0.25)) == (3, 0.75)
    m = Dict.empty(I64, types.UniTuple(types.int16, 3))
    m.min(0, (np.int16(5), np.int16(-1), np.int16(9)))
    assert m.min(0, (np.int16(7), np.int16(-4), np.int16(2))) == (5, -4, 2)
    assert m.max(0, (np.int16(6), np.int16(0), np.int16(1))) == (6, 0, 2)


def test_untyped_dict_is_typed_by_the_first_add():
    d = Dict()
    d.add("x", 1)
    d.add("x", 2)
    assert (d.key_type, d.value_type) == (U, I64)
    assert d["x"] == 3


def test_non_numeric_values_are_rejected():
    s = Dict.empty(I64, U)
    with pytest.raises(TypeError, match="needs numeric values"):
        s.add(1, "x")
    assert len(s) == 0


@njit
def njit_add_str(d):
    return d.add(1, "x")


def test_non_numeric_values_are_a_typing_error_in_njit():
    with pytest.raises(TypingError, match="needs numeric values"):
        njit_add_str(Dict.empty(I64, U))


@njit
def njit_float_into_int(d):
    return d.add(1, 1.5)


def test_domain_change_is_a_typing_error():
    with pytest.raises(TypingError):
        njit_float_into_int(Dict.empty(I64, I64))


# ---- no lost update under prange ----------------------------------------------------------------


@njit(parallel=True)
def count(d, keys):
    for i in prange(keys.size):
        d.add(keys[i], 1)
    return d


@njit(parallel=True)
def group_stats(s, lo, hi, keys, vals):
    for i in prange(keys.size):
        s.add(keys[i], (1, vals[i]))
        lo.min(keys[i], vals[i])
        hi.max(keys[i], vals[i])


@njit(parallel=True)
def lossy_count(d, keys):
    # The pattern d.add replaces: a read and a write, each atomic, but not together.
    for i in prange(keys.size):
        d[keys[i]] = d.get(keys[i], 0) + 1
    return d


@pytest.mark.parametrize("n_keys", [1, 7, 1000, 200_000])
def test_prange_count_is_exact(n_keys):
    rng = np.random.default_rng(n_keys)
    keys = rng.integers(0, n_keys, 1_000_000)
    for _ in range(3):
        d = count(Dict.empty(I64, I64), keys)
        expect = np.bincount(keys, minlength=n_keys)
        got = d.to_dict()
        assert len(got) == np.count_nonzero(expect)
        assert all(got[k] == expect[k] for k in got)
        assert sum(got.values()) == keys.size


def test_prange_group_sum_min_max_are_exact():
    rng = np.random.default_rng(1)
    keys = rng.zipf(1.3, 500_000) % 5000
    vals = rng.integers(-(10**6), 10**6, keys.size).astype(np.float64)  # exact sums in float64
    s = Dict.empty(I64, types.Tuple([I64, F64]))
    lo, hi = Dict.empty(I64, F64), Dict.empty(I64, F64)
    group_stats(s, lo, hi, keys, vals)
    uniq, inv = np.unique(keys, return_inverse=True)
    sums = np.bincount(inv, weights=vals)
    cnts = np.bincount(inv)
    mins = np.full(uniq.size, np.inf)
    np.minimum.at(mins, inv, vals)
    maxs = np.full(uniq.size, -np.inf)
    np.maximum.at(maxs, inv, vals)
    assert len(s) == len(lo) == len(hi) == uniq.size
    for i, k in enumerate(uniq):
        assert s[k] == (cnts[i], sums[i])
        assert lo[k] == mins[i] and hi[k] == maxs[i]


def test_add_is_atomic_where_get_then_set_is_not():
    """The same counting with d[k] = d.get(k, 0) + 1 on one hot key runs without error but is
    allowed to lose updates; d.add never does. (Only d.add's total is asserted.)"""
    keys = np.zeros(200_000, dtype=np.int64)
    assert count(Dict.empty(I64, I64), keys)[0] == keys.size
    assert 1 <= lossy_count(Dict.empty(I64, I64), keys)[0] <= keys.size


# ---- array values: elementwise, in place, under the element's lock ----------------------------------


def test_array_add_min_max_elementwise():
    d = Dict.empty(I64, types.float64[:])
    x = np.array([1.0, 2.0])
    stored = d.add(1, x)
    assert stored is not x and np.array_equal(stored, x)  # absent: a copy is stored
    d.add(1, x)
    assert np.array_equal(x, [1.0, 2.0])  # the caller's array is never written
    assert np.array_equal(d[1], [2.0, 4.0]) and np.shares_memory(d[1], stored)
    d.min(1, np.array([0.5, 10.0]))
    d.max(1, np.array([np.nan, 7.0]))  # NaN never replaces
    assert np.array_equal(d[1], [0.5, 7.0])
    f = Dict.empty(I64, types.int32[:, :])
    f.add(0, np.ones((2, 3), np.int32))
    f.add(0, np.full((2, 3), 2, np.int16))  # a same-kind dtype is cast
    assert np.array_equal(f[0], np.full((2, 3), 3))


def test_array_shape_mismatch_raises_and_leaves_the_entry():
    d = Dict.empty(I64, types.float64[:])
    d.add(1, np.ones(2))
    with pytest.raises(ValueError, match="differ in shape"):
        d.add(1, np.ones(3))
    assert np.array_equal(d[1], [1.0, 1.0])
    assert d.add(1, np.ones(2))[0] == 2.0  # the element's lock was released


@njit
def add_wrong_ndim(d):
    return d.add(1, np.ones((2, 2)))


def test_array_wrong_ndim_is_a_typing_error():
    with pytest.raises(TypingError, match="dimension"):
        add_wrong_ndim(Dict.empty(I64, types.float64[:]))


@njit(parallel=True)
def accumulate_rows(d, rows, width):
    for i in prange(rows.size):
        v = np.full(width, 1.0)
        v[0] = rows[i]
        d.add(rows[i] % 7, v)


def test_prange_array_accumulation_is_exact_and_balanced():
    import gc

    import pardict

    gc.collect()
    base = pardict.live_refs()
    rows = np.arange(70_000)
    d = Dict.empty(I64, types.float64[:])
    accumulate_rows(d, rows, 4)
    for k in range(7):
        sel = rows[rows % 7 == k]
        assert np.array_equal(d[k], [sel.sum(), sel.size, sel.size, sel.size])
    assert pardict.live_refs() - base == 7  # one array per key; every copy that lost is freed
    del d
    gc.collect()
    assert pardict.live_refs() == base
