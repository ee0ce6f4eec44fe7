"""Dict.split(n) and pardict.partition_of: a partition of a dict's items by a key hash that is the
same in every process, in the interpreter and in @njit."""

import os
import subprocess
import sys
import textwrap
import warnings

import hypothesis.strategies as st
import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from numba.core import types
from numba.core.errors import NumbaTypeSafetyWarning

import pardict
from pardict import Dict

U = types.unicode_type


@numba.njit
def njit_split(d, n):
    return d.split(n)


def _check_partition(d, parts, n):
    assert len(parts) == n
    seen = set()
    for i, p in enumerate(parts):
        assert isinstance(p, Dict) and p._numba_type_ == d._numba_type_
        for k, v in p.items():
            canon = "nan" if k != k else k  # every NaN key is one key
            assert canon not in seen, f"key {k!r} in two parts"
            seen.add(canon)
            with warnings.catch_warnings():  # a Python float/int into float32/uint8 keys
                warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
                assert d[k] == v  # pardict looks NaN keys up as one key
            assert pardict.partition_of(k, n) == i
    assert len(seen) == len(d)


def _words(n):
    return np.array([f"w{i}é" if i % 3 else f"{i}🙂" for i in range(n)])


CASES = {
    "int64->float64": lambda: Dict.from_arrays(np.arange(-500, 500) * 7919, np.arange(1000.0)),
    "uint8->int32": lambda: Dict.from_arrays(np.arange(256, dtype=np.uint8), np.arange(256)),
    "float32->int64": lambda: Dict.from_arrays(
        np.array([0.0, -0.0, np.nan, 1.5, -2.25, np.inf], np.float32), np.arange(6)
    ),
    "bool->float64": lambda: Dict.from_arrays(np.array([True, False]), np.array([1.0, 2.0])),
    "str->int64": lambda: Dict.from_arrays(_words(300), np.arange(300)),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("n", [1, 2, 5, 64])
def test_split_holds_every_item_exactly_once(name, n):
    d = CASES[name]()
    before = d.copy()
    parts = d.split(n)
    _check_partition(d, parts, n)
    assert d == before  # the source is left as it was
    # the interpreter runs the jitted method: the same parts
    assert all(a == b for a, b in zip(njit_split(d, n), parts, strict=True))


def test_split_of_tuple_keys_and_array_values_walks_the_items():
    d = Dict.empty(types.Tuple([types.int64, U]), types.float64[:])
    for i in range(50):
        d[(i, str(i))] = np.arange(i, dtype=np.float64)
    parts = d.split(3)
    assert sum(len(p) for p in parts) == 50
    for i, p in enumerate(parts):
        for k, v in p.items():
            assert pardict.partition_of(k, 3) == i and np.array_equal(v, np.arange(k[0]))


def test_parts_are_new_tables_and_bad_counts_raise(no_leaks):
    d = Dict.from_arrays(np.arange(10), np.arange(10.0))
    parts = d.split(2)
    parts[0].clear()
    assert len(d) == 10
    assert all(len(p) == 0 for p in Dict.empty(types.int64, types.float64).split(4))
    assert [type(p) for p in Dict().split(2)] == [Dict, Dict]
    for bad in (0, -1):
        with pytest.raises(ValueError):
            d.split(bad)
    with pytest.raises(TypeError):
        d.split(2.0)
    with pytest.raises(ValueError):
        pardict.partition_of(np.arange(3), 0)
    del d, parts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sets(st.integers(-(2**63), 2**63 - 1), max_size=200), st.integers(1, 9))
def test_split_partitions_any_int_key_set(keys, n):
    d = Dict.from_arrays(np.array(sorted(keys), dtype=np.int64), np.ones(len(keys)))
    _check_partition(d, d.split(n), n)


def test_integer_widths_agree_and_arrays_match_scalars():
    vals = np.array([-128, -1, 0, 1, 5, 127])
    want = pardict.partition_of(vals, 7)
    for dt in (np.int8, np.int16, np.int32, np.int64):
        assert pardict.partition_of(vals.astype(dt), 7).tolist() == want.tolist()
    assert [pardict.partition_of(int(v), 7) for v in vals] == want.tolist()
    words = _words(20)
    assert pardict.partition_of(words, 5).tolist() == [
        pardict.partition_of(str(w), 5) for w in words
    ]
    # a float key and its canonical twin go to one part
    assert pardict.partition_of(-0.0, 9) == pardict.partition_of(0.0, 9)
    assert pardict.partition_of(float("nan"), 9) == pardict.partition_of(-float("nan"), 9)


_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import pardict
    words = [f"w{i}é" for i in range(200)] + ["", "日本", "🙂"]
    out = {
        "str": pardict.partition_of(np.array(words), 13).tolist(),
        "int": pardict.partition_of(np.arange(-100, 100) * 104729, 13).tolist(),
        "float": pardict.partition_of(np.linspace(-3, 3, 101), 13).tolist(),
        "str_hash": [hash(w) % 13 for w in words],
    }
    print(json.dumps(out))
""")


def test_partition_is_the_same_in_every_process(tmp_path):
    # numba's and CPython's hash() of a str are salted per process; the partition must not be.
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        p = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env
        )
        assert p.returncode == 0, p.stderr[-3000:]
        outs.append(eval(p.stdout.strip().splitlines()[-1]))  # json of lists and ints
    assert outs[0]["str_hash"] != outs[1]["str_hash"]  # the salt did change
    for key in ("str", "int", "float"):
        assert outs[0][key] == outs[1][key], key
    words = [f"w{i}é" for i in range(200)] + ["", "日本", "🙂"]
    assert outs[0]["str"] == pardict.partition_of(np.array(words), 13).tolist()
