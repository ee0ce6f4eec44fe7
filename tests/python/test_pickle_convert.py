"""Pickling (in-process and across processes) and conversions to and from dict / typed.Dict."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import typed, types

from pardict import Dict

I64, F64, U = types.int64, types.float64, types.unicode_type


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
    return type(a) is type(b) and a == b


def _check(d, kt, vt, model):
    assert isinstance(d, Dict)
    assert (d.key_type, d.value_type) == (kt, vt)
    got = d.to_dict()
    assert set(got) == set(model)
    for k in model:
        assert _same(got[k], model[k]), (k, got[k], model[k])


CASES = {
    "int64->float64": (I64, F64, {i * 7 - 3: i / 4 for i in range(20)}),
    "unicode->unicode": (U, U, {"": "empty", "é": "€", "😀": "x" * 50, "k": ""}),
    "(int64,unicode)->float64": (
        types.Tuple([I64, U]),
        F64,
        {(1, "a"): 0.5, (1, "b"): 1.5, (-2, "😀"): -0.0},
    ),
    "float64->float32[:]": (
        F64,
        types.float32[:],
        {
            0.5: np.arange(3, dtype=np.float32),
            -1.0: np.zeros(0, np.float32),
            2.0: np.arange(12, dtype=np.float32)[::4],
        },
    ),
    "int32->int64[:, :]": (
        types.int32,
        types.int64[:, :],
        {1: np.arange(6).reshape(2, 3), 2: np.asfortranarray(np.ones((3, 2), np.int64))},
    ),
    "int64->(int64,float64[:])": (
        I64,
        types.Tuple([I64, types.float64[:]]),
        {1: (5, np.arange(2.0)), 2: (-1, np.zeros(1))},
    ),
}


def _build(name):
    kt, vt, model = CASES[name]
    d = Dict.empty(kt, vt)
    for k, v in model.items():
        d[k] = v
    return d, kt, vt, model


@pytest.mark.parametrize("name", list(CASES))
def test_pickle_round_trip_all_protocols(name):
    d, kt, vt, model = _build(name)
    for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
        r = pickle.loads(pickle.dumps(d, protocol=proto))
        _check(r, kt, vt, model)
    # the copy is a separate table
    r = pickle.loads(pickle.dumps(d))
    r.clear()
    _check(d, kt, vt, model)


def test_pickle_empty_and_untyped():
    e = Dict.empty(U, F64)
    r = pickle.loads(pickle.dumps(e))
    assert (r.key_type, r.value_type) == (U, F64) and len(r) == 0
    u = pickle.loads(pickle.dumps(Dict()))
    assert isinstance(u, Dict) and len(u) == 0
    u[1] = "x"
    assert u.to_dict() == {1: "x"}


_CHILD = textwrap.dedent("""
    import pickle, sys
    import numpy as np
    import pardict
    with open(sys.argv[1], "rb") as f:
        dicts = pickle.load(f)
    out = {}
    for name, d in dicts.items():
        assert isinstance(d, pardict.Dict), type(d)
        items = sorted(d.to_dict().items(), key=repr)
        conv = lambda v: ("array", str(v.dtype), v.shape, v.tolist()) if isinstance(v, np.ndarray) \\
            else tuple(conv(x) for x in v) if isinstance(v, tuple) else v
        out[name] = (str(d.key_type), str(d.value_type), [(k, conv(v)) for k, v in items])
        d[next(iter(d))] = d[next(iter(d))]  # the child's copy is writable
    with open(sys.argv[2], "wb") as f:
        pickle.dump(out, f)
""")


def test_pickle_to_another_process(tmp_path):
    dicts = {name: _build(name)[0] for name in CASES}
    src = tmp_path / "dicts.pkl"
    dst = tmp_path / "out.pkl"
    src.write_bytes(pickle.dumps(dicts, protocol=pickle.HIGHEST_PROTOCOL))
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    p = subprocess.run(
        [sys.executable, str(script), str(src), str(dst)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = pickle.loads(dst.read_bytes())

    def conv(v):
        if isinstance(v, np.ndarray):
            return ("array", str(v.dtype), v.shape, v.tolist())
        if isinstance(v, tuple):
            return tuple(conv(x) for x in v)
        return v

    for name, (kt, vt, model) in CASES.items():
        expect = (str(kt), str(vt), [(k, conv(v)) for k, v in sorted(model.items(), key=repr)])
        assert out[name] == expect, name


# ---- conversions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["int64->float64", "unicode->unicode", "float64->float32[:]"])
def test_to_typed_and_back(name):
    d, kt, vt, model = _build(name)
    td = d.to_typed()
    assert isinstance(td, typed.Dict)
    assert (td._numba_type_.key_type, td._numba_type_.value_type) == (kt, vt)
    assert set(td.keys()) == set(model)
    for k in model:
        assert _same(td[k], model[k])
    back = Dict.from_typed(td)
    _check(back, kt, vt, model)
    # separate tables: changing one does not change the others
    first = next(iter(model))
    del back[first]
    assert first in d and first in td
    _check(d, kt, vt, model)


def test_from_typed_empty_and_large():
    td = typed.Dict.empty(I64, F64)
    e = Dict.from_typed(td)
    assert len(e) == 0 and (e.key_type, e.value_type) == (I64, F64)
    for i in range(5000):
        td[i] = i * 0.5
    d = Dict.from_typed(td)
    assert d.to_dict() == {i: i * 0.5 for i in range(5000)}


def test_from_dict_inferred_and_explicit():
    model = {i: float(i) for i in range(10)}
    d = Dict.from_dict(model)
    assert (d.key_type, d.value_type) == (I64, F64)
    assert d.to_dict() == model
    e = Dict.from_dict(model, key_type=types.int32, value_type=types.float32)
    assert (e.key_type, e.value_type) == (types.int32, types.float32)
    assert e.to_dict() == model
    s = Dict.from_dict({"é": "😀", "a": "b"})
    assert s.to_dict() == {"é": "😀", "a": "b"}
    empty = Dict.from_dict({})
    assert len(empty) == 0 and empty.to_dict() == {}


def test_to_dict_is_a_snapshot():
    d, kt, vt, model = _build("int64->float64")
    plain = d.to_dict()
    assert type(plain) is dict and plain == model
    d[10**6] = 1.0
    assert 10**6 not in plain
