"""pardict.update(d, key, fn, default): fn runs on the stored value as one atomic step; its
failures leave the entry unchanged and never deadlock."""

import numpy as np
import pytest
from numba import njit, prange, types
from numba.core.errors import TypingError

import pardict
from pardict import Dict

I64, F64 = types.int64, types.float64


@njit
def inc(x):
    return x + 1


@njit
def halve_or_fail(x):
    if x > 100:
        raise ValueError("too big")
    return x // 2


@njit
def swap_and_bump(t):
    return (t[1] + 1, t[0])


@njit
def to_float(x):
    return x * 0.5


def test_absent_then_present():
    d = Dict.empty(I64, I64)
    assert pardict.update(d, 1, inc, 10) == 11  # absent: fn(default)
    assert pardict.update(d, 1, inc, 10) == 12  # present: fn(stored)
    assert d.to_dict() == {1: 12}


def test_tuple_values():
    d = Dict.empty(I64, types.UniTuple(I64, 2))
    d[0] = (1, 2)
    assert pardict.update(d, 0, swap_and_bump, (0, 0)) == (3, 1)
    assert d[0] == (3, 1)


def test_raising_fn_leaves_the_entry_unchanged():
    d = Dict.empty(I64, I64)
    d[2] = 500
    with pytest.raises(ValueError, match="too big"):
        pardict.update(d, 2, halve_or_fail, 0)
    assert d[2] == 500
    with pytest.raises(ValueError, match="too big"):
        pardict.update(d, 3, halve_or_fail, 1000)  # absent: nothing is inserted either
    assert 3 not in d and len(d) == 1
    assert pardict.update(d, 2, inc, 0) == 501  # the element's lock was released


@njit(parallel=True)
def count_with_update(d, keys):
    for i in prange(keys.size):
        pardict.update(d, keys[i], inc, 0)


@pytest.mark.parametrize("distinct", [1, 13, 5000])
def test_no_lost_update_under_prange(distinct):
    keys = np.random.default_rng(distinct).integers(0, distinct, 300_000)
    d = Dict.empty(I64, I64)
    count_with_update(d, keys)
    uniq, counts = np.unique(keys, return_counts=True)
    np.testing.assert_array_equal(d.get_many(uniq), counts)
    assert len(d) == uniq.size


GLOBAL_D = Dict.empty(I64, I64)


@njit
def touches_global(x):
    return x + len(GLOBAL_D)


def test_fn_cannot_reach_the_dict():
    # fn only sees the value; the one way to name d inside it, a global, does not compile (the C
    # ABI would answer a call on d from fn with PARDICT_ERR_REENTRANT, see test_capi.cpp).
    GLOBAL_D[0] = 1
    with pytest.raises(TypingError):
        pardict.update(GLOBAL_D, 0, touches_global, 0)
    assert GLOBAL_D[0] == 1


def test_bad_fn_and_bad_values():
    d = Dict.empty(I64, I64)
    with pytest.raises(TypingError, match="cannot be stored"):
        pardict.update(d, 1, to_float, 0)  # float result into int values
    with pytest.raises(TypeError, match="@njit function"):
        pardict.update(d, 1, lambda x: x, 0)
    a = Dict.empty(I64, types.float64[:])
    with pytest.raises(TypingError, match="without references"):
        pardict.update(a, 1, inc, np.zeros(1))
    assert len(d) == 0
