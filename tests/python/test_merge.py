"""d.merge(other, op): the reduction step of per-partition dicts, from the interpreter (parallel
C++ path for numeric dicts, jitted loop otherwise) and inside njit."""

import numpy as np
import pytest
from numba import njit, prange, types
from numba.core.errors import TypingError

from pardict import Dict

I64, F64, U = types.int64, types.float64, types.unicode_type


def _pair():
    a = Dict.empty(I64, F64)
    b = Dict.empty(I64, F64)
    for k in range(10):
        a[k] = float(k)
    for k in range(5, 15):
        b[k] = 100.0 + k
    return a, b


@pytest.mark.parametrize(
    "op, expect_5, expect_0, expect_14",
    [
        ("assign", 105.0, 0.0, 114.0),
        ("add", 110.0, 0.0, 114.0),
        ("min", 5.0, 0.0, 114.0),
        ("max", 105.0, 0.0, 114.0),
    ],
)
def test_interpreter_merge_numeric(op, expect_5, expect_0, expect_14):
    a, b = _pair()
    assert a.merge(b, op) == 5  # keys 10..14 are new
    assert (a[5], a[0], a[14]) == (expect_5, expect_0, expect_14)
    assert len(a) == 15 and len(b) == 10


def test_merge_general_values_goes_through_njit():
    a = Dict.empty(U, types.UniTuple(I64, 2))
    b = Dict.empty(U, types.UniTuple(I64, 2))
    a["x"] = (1, 2)
    b["x"] = (10, 20)
    b["y"] = (3, 4)
    assert a.merge(b, "add") == 1
    assert a.to_dict() == {"x": (11, 22), "y": (3, 4)}
    s = Dict.empty(I64, U)
    t = Dict.empty(I64, U)
    t[1] = "one"
    assert s.merge(t) == 1 and s[1] == "one"
    with pytest.raises(TypeError, match="numeric values"):
        s.merge(t, "add")


@pytest.mark.parametrize("op", ["assign", "add", "min", "max"])
@pytest.mark.parametrize("threads", [1, 2])
def test_str_keys_merge_in_cpp_exactly(op, threads, no_leaks):
    """Same-typed dicts that are not numeric (here str keys) merge through pardict_merge: checked
    against a dict model for every op, on one and two threads, with no reference leaked."""
    rng = np.random.default_rng(11)
    words = [f"w{i}" + "é" * (i % 3) + "x" * (i % 40) for i in range(20_000)]
    a, b = Dict.empty(U, I64), Dict.empty(U, I64)
    ma, mb = {}, {}
    for i in rng.choice(len(words), 12_000, replace=False):
        a[words[i]] = ma[words[i]] = int(rng.integers(-100, 100))
    for i in rng.choice(len(words), 12_000, replace=False):
        b[words[i]] = mb[words[i]] = int(rng.integers(-100, 100))
    combine = {"assign": lambda x, y: y, "add": lambda x, y: x + y, "min": min, "max": max}[op]
    want = dict(ma)
    for k, v in mb.items():
        want[k] = combine(want[k], v) if k in want else v
    assert a.merge(b, op, threads=threads) == len(set(mb) - set(ma))
    assert a.to_dict() == want and b.to_dict() == mb
    assert a.merge(a, op) == 0  # into itself: each element read once
    assert a.to_dict() == {k: combine(v, v) for k, v in want.items()}


def test_str_values_merge_by_assignment_without_leaks(no_leaks):
    a, b = Dict.empty(U, U), Dict.empty(U, U)
    for i in range(3000):
        a[f"k{i}"] = f"a{i}" * (i % 5)
        b[f"k{i + 1500}"] = f"b{i}" * (i % 7)
    assert a.merge(b, threads=2) == 1500
    assert len(a) == 4500 and a["k1500"] == b["k1500"] and a["k0"] == ""
    del a, b


def test_merge_into_untyped_and_bad_args():
    a, b = _pair()
    e = Dict()
    assert e.merge(b) == 10 and e.to_dict() == b.to_dict()
    with pytest.raises(ValueError):
        a.merge(b, "mul")
    with pytest.raises(TypeError):
        a.merge({1: 2.0})


def test_self_merge_doubles():
    a, _ = _pair()
    assert a.merge(a, "add") == 0
    assert a[9] == 18.0


@njit(parallel=True)
def partitioned_group_sum(keys, vals, nparts):
    parts = [Dict.empty(I64, F64) for _ in range(nparts)]
    n = keys.size
    for p in prange(nparts):
        d = parts[p]
        for i in range(p * n // nparts, (p + 1) * n // nparts):
            d.add(keys[i], vals[i])
    total = Dict.empty(I64, F64)
    for p in range(nparts):
        total.merge(parts[p], "add")
    return total


def test_njit_partition_then_merge_matches_numpy():
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 3000, 200_000)
    vals = rng.integers(-50, 50, keys.size).astype(np.float64)
    total = partitioned_group_sum(keys, vals, 4)
    uniq, inv = np.unique(keys, return_inverse=True)
    np.testing.assert_array_equal(total.get_many(uniq), np.bincount(inv, weights=vals))
    assert len(total) == uniq.size


@njit
def merge_with_op(d, o):
    return d.merge(o, "mul")


@njit
def merge_int_into_float(d, o):
    return d.merge(o, "max")


def test_njit_merge_typing():
    a, b = _pair()
    with pytest.raises(TypingError, match="unknown op"):
        merge_with_op(a, b)
    ints = Dict.empty(I64, I64)
    ints[1] = 7
    assert merge_int_into_float(a, ints) == 0 and a[1] == 7.0
