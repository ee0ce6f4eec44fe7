"""Interpreter API of pardict.Dict, checked against a plain dict as the model."""

import ast
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit, types

from pardict import Dict


def _scalar_eq(a, b):
    return type(a) is type(b) and a == b


def _array_eq(a, b):
    return isinstance(a, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)


class Case:
    def __init__(self, name, key_type, value_type, keys, value, eq, literal):
        self.name = name
        self.key_type = key_type
        self.value_type = value_type
        self.keys = keys
        self.value = value  # i -> a fresh value
        self.eq = eq
        self.literal = literal  # str(d) is a Python literal equal to the model

    def __repr__(self):
        return self.name


CASES = [
    Case(
        "int64->float64",
        types.int64,
        types.float64,
        [0, 1, -1, 7, 2**40, -(2**63), 2**63 - 1, 12345],
        lambda i: float(i) * 1.5 - 0.25,
        _scalar_eq,
        True,
    ),
    Case(
        "unicode->unicode",
        types.unicode_type,
        types.unicode_type,
        ["", "a", "bb", "é", "€uro", "😀", "a" * 100, "key with spaces"],
        lambda i: "v" * i + "é€😀"[i % 3],
        _scalar_eq,
        True,
    ),
    Case(
        "(int64,unicode)->float64",
        types.Tuple([types.int64, types.unicode_type]),
        types.float64,
        [(0, ""), (0, "a"), (1, ""), (-5, "é"), (2**62, "😀"), (3, "x" * 40), (7, "€"), (8, "b")],
        lambda i: i / 3.0,
        _scalar_eq,
        True,
    ),
    Case(
        "float64->float32[:]",
        types.float64,
        types.float32[:],
        [0.0, 0.5, -1.5, 1e300, -1e-300, 3.0, 4.25, 100.0],
        lambda i: np.arange(i, dtype=np.float32) * np.float32(0.5),
        _array_eq,
        False,
    ),
]


@pytest.fixture(params=CASES, ids=repr)
def case(request):
    return request.param


def assert_same(case, d, model):
    assert len(d) == len(model)
    items = list(d.items())
    assert len(items) == len(model)
    keys = [k for k, _ in items]
    assert len(set(keys)) == len(keys), "a key appeared twice in items()"
    assert set(keys) == set(model)
    for k, v in items:
        assert case.eq(v, model[k]), (k, v, model[k])
    assert sorted(d, key=repr) == sorted(model, key=repr)
    assert sorted(d.keys(), key=repr) == sorted(model, key=repr)
    vals = list(d.values())
    assert len(vals) == len(model)


def filled(case, n=None):
    keys = case.keys if n is None else case.keys[:n]
    d = Dict.empty(case.key_type, case.value_type)
    model = {}
    for i, k in enumerate(keys):
        v = case.value(i)
        d[k] = v
        model[k] = case.value(i)
    return d, model


# ---- the mapping API, one method at a time ------------------------------------------------------


def test_setitem_getitem_contains_len(case):
    d = Dict.empty(case.key_type, case.value_type)
    assert len(d) == 0
    model = {}
    for i, k in enumerate(case.keys):
        assert k not in d
        d[k] = case.value(i)
        model[k] = case.value(i)
        assert k in d
        assert len(d) == len(model)
        assert case.eq(d[k], model[k])
    # replacing keeps the length
    for i, k in enumerate(case.keys[:3]):
        d[k] = case.value(i + 10)
        model[k] = case.value(i + 10)
    assert_same(case, d, model)


def test_getitem_missing_raises_keyerror_with_key(case):
    d, model = filled(case, 4)
    missing = case.keys[6]
    with pytest.raises(KeyError) as ei:
        d[missing]
    assert ei.value.args == (missing,)
    with pytest.raises(KeyError) as ei:
        del d[missing]
    assert ei.value.args == (missing,)
    with pytest.raises(KeyError) as ei:
        d.pop(missing)
    assert ei.value.args == (missing,)
    assert_same(case, d, model)


def test_delitem(case):
    d, model = filled(case)
    for k in case.keys[::2]:
        del d[k]
        del model[k]
        assert k not in d
    assert_same(case, d, model)


def test_get(case):
    d, model = filled(case, 5)
    for k in case.keys:
        got = d.get(k)
        if k in model:
            assert case.eq(got, model[k])
        else:
            assert got is None
    dflt = case.value(3)
    got = d.get(case.keys[7], dflt)
    assert case.eq(got, dflt)
    got = d.get(case.keys[0], dflt)
    assert case.eq(got, model[case.keys[0]])


def test_pop(case):
    d, model = filled(case, 5)
    k = case.keys[2]
    assert case.eq(d.pop(k), model.pop(k))
    assert k not in d
    dflt = case.value(6)
    assert case.eq(d.pop(k, dflt), dflt)
    assert case.eq(d.pop(case.keys[0], dflt), model.pop(case.keys[0]))
    assert_same(case, d, model)


def test_popitem(case):
    d, model = filled(case)
    seen = set()
    while model:
        k, v = d.popitem()
        assert k in model and k not in seen
        assert case.eq(v, model.pop(k))
        seen.add(k)
        assert len(d) == len(model)
    assert seen == set(case.keys)
    with pytest.raises(KeyError):
        d.popitem()


def test_setdefault_returns_stored_value(case):
    d, model = filled(case, 3)
    for i, k in enumerate(case.keys):
        v = case.value(i + 20)
        expect = model.setdefault(k, case.value(i + 20))
        got = d.setdefault(k, v)
        assert case.eq(got, expect)
    assert_same(case, d, model)


def test_insert_if_absent(case):
    d, model = filled(case, 3)
    for i, k in enumerate(case.keys):
        absent = k not in model
        assert d.insert(k, case.value(i + 30)) is absent
        if absent:
            model[k] = case.value(i + 30)
    assert_same(case, d, model)


def test_update_from_dict_pairs_and_Dict(case):
    d, model = filled(case, 2)
    src = {k: case.value(i + 40) for i, k in enumerate(case.keys[1:4])}
    d.update(src)
    model.update(src)
    assert_same(case, d, model)
    pairs = [(k, case.value(i + 50)) for i, k in enumerate(case.keys[3:6])]
    d.update(pairs)
    model.update(pairs)
    assert_same(case, d, model)
    other, omodel = filled(case)
    for k in case.keys[:4]:
        del other[k]
        del omodel[k]
    d.update(other)
    model.update(omodel)
    assert_same(case, d, model)
    assert_same(case, other, omodel)  # the source is unchanged


def test_update_kwargs_with_string_keys():
    d = Dict.empty(types.unicode_type, types.int64)
    d.update({"a": 1}, b=2, c=3)
    assert d.to_dict() == {"a": 1, "b": 2, "c": 3}


def test_clear(case):
    d, model = filled(case)
    d.clear()
    assert len(d) == 0 and list(d) == [] and case.keys[0] not in d
    d[case.keys[1]] = case.value(1)
    assert_same(case, d, {case.keys[1]: case.value(1)})


def test_copy_is_independent(case):
    d, model = filled(case, 5)
    c = d.copy()
    assert isinstance(c, Dict)
    assert_same(case, c, model)
    c[case.keys[7]] = case.value(7)
    del c[case.keys[0]]
    assert case.keys[7] not in d and case.keys[0] in d
    assert_same(case, d, model)


def test_copy_of_arrays_is_shallow():
    d = Dict.empty(types.int64, types.float64[:])
    d[1] = np.zeros(3)
    c = d.copy()
    c[1][0] = 5.0
    assert d[1][0] == 5.0  # like typed.Dict.copy: the arrays are shared


def test_reserve_keeps_contents(case):
    d, model = filled(case)
    d.reserve(10_000)
    assert_same(case, d, model)
    d.reserve(0)
    assert_same(case, d, model)


def test_constructors():
    d = Dict([(1, 2.5), (3, 4.5)])
    assert d.key_type == types.int64 and d.value_type == types.float64
    assert d.to_dict() == {1: 2.5, 3: 4.5}
    d = Dict({"x": "y", "é": "😀"})
    assert d.key_type == types.unicode_type
    assert d.to_dict() == {"x": "y", "é": "😀"}
    d = Dict(a=1, b=2)
    assert d.to_dict() == {"a": 1, "b": 2}
    with pytest.raises(TypeError):
        Dict([(1, 2.0)], [(3, 4.0)])


def test_equality(case):
    if case.name.endswith("[:]"):
        pytest.skip("== on array values is ambiguous, as for a plain dict of arrays")
    d, model = filled(case, 6)
    assert d == model and model == d and not (d != model)
    other, _ = filled(case, 6)
    assert d == other and not (d != other)
    other[case.keys[0]] = case.value(99)
    assert d != other and not (d == other)
    assert d != {k: v for k, v in list(model.items())[1:]}
    changed = dict(model)
    changed[case.keys[1]] = case.value(77)
    assert d != changed
    del other[case.keys[0]]
    assert d != other
    assert d != 5 and not (d == [1, 2])


def test_dict_of_d_and_items(case):
    d, model = filled(case)
    for plain in (dict(d), dict(d.items()), d.to_dict()):
        assert set(plain) == set(model)
        for k in model:
            assert case.eq(plain[k], model[k])


def test_views_len_and_contains(case):
    d, model = filled(case, 5)
    assert len(d.keys()) == len(d.values()) == len(d.items()) == 5
    assert case.keys[0] in d.keys() and case.keys[6] not in d.keys()


def test_repr_and_str(case):
    d, model = filled(case, 4)
    r, s = repr(d), str(d)
    prefix = f"pardict.Dict[{case.key_type},{case.value_type}]("
    assert r.startswith(prefix) and r.endswith(")")
    assert s.startswith("{") and s.endswith("}")
    for k in model:
        assert repr(k) in s
    if case.literal:
        assert ast.literal_eval(s) == model
        assert ast.literal_eval(r[len(prefix) : -1]) == model
    else:
        assert s.count("array(") == 4
    e = Dict.empty(case.key_type, case.value_type)
    assert str(e) == "{}" and repr(e) == prefix + "{})"


# ---- untyped Dict() ---------------------------------------------------------------------------


@njit
def _njit_len(d):
    return len(d)


def test_untyped_dict():
    d = Dict()
    assert len(d) == 0
    assert 1 not in d and "a" not in d
    assert list(d) == [] and list(d.items()) == [] and list(d.values()) == []
    assert d.get(1) is None and d.get(1, 5) == 5
    assert d.pop(1, "x") == "x"
    with pytest.raises(KeyError):
        d[1]
    with pytest.raises(KeyError):
        d.popitem()
    assert d == {} and d == Dict()
    assert str(d) == "{}"
    assert d.to_dict() == {}
    c = d.copy()
    assert len(c) == 0
    with pytest.raises(TypeError, match="invalid operation on untyped dictionary"):
        _njit_len(d)
    d[3] = 2.5
    assert d.key_type == types.int64 and d.value_type == types.float64
    assert d.to_dict() == {3: 2.5}
    assert _njit_len(d) == 1
    # once typed, the types are fixed
    with pytest.raises(TypeError):
        d["x"] = 1.0


def test_untyped_dict_typed_by_string_and_array():
    d = Dict()
    d["k"] = np.arange(3, dtype=np.int32)
    assert d.key_type == types.unicode_type
    assert isinstance(d.value_type, types.Array) and d.value_type.dtype == types.int32
    assert np.array_equal(d["k"], np.arange(3, dtype=np.int32))


# ---- float keys: signed zero and NaN --------------------------------------------------------------


def test_signed_zero_is_one_key():
    d = Dict.empty(types.float64, types.int64)
    model = {}
    d[0.0] = 1
    model[0.0] = 1
    d[-0.0] = 2
    model[-0.0] = 2
    assert len(d) == len(model) == 1
    assert d[0.0] == d[-0.0] == 2
    assert -0.0 in d
    (k,) = list(d)
    assert k == 0.0 and math.copysign(1.0, k) == 1.0
    del d[-0.0]
    assert len(d) == 0
    f = Dict.empty(types.float32, types.int64)
    f[np.float32(-0.0)] = 3
    assert f[np.float32(0.0)] == 3 and len(f) == 1


def test_nan_keys_are_one_key():
    """Documented pardict behaviour: every NaN is the same key (Python dicts key NaNs by object
    identity; typed.Dict never finds a NaN again)."""
    d = Dict.empty(types.float64, types.int64)
    nan_a = float("nan")
    nan_b = -float("nan")
    (nan_payload,) = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000123))
    assert math.isnan(nan_payload)
    d[nan_a] = 1
    assert nan_b in d and nan_payload in d and np.nan in d
    d[nan_b] = 2
    d[nan_payload] = 3
    assert len(d) == 1
    assert d[float("nan")] == 3
    (k,) = list(d)
    assert math.isnan(k)
    d[1.0] = 4
    assert len(d) == 2
    assert d.pop(float("nan")) == 3
    assert len(d) == 1 and float("nan") not in d


# ---- mutation during iteration --------------------------------------------------------------------


def _int_dict(n):
    d = Dict.empty(types.int64, types.int64)
    for i in range(n):
        d[i] = i
    return d


@pytest.mark.parametrize("view", ["iter", "keys", "values", "items"])
def test_insert_during_iteration_raises(view):
    d = _int_dict(10)
    it = {"iter": lambda: iter(d), "keys": d.keys, "values": d.values, "items": d.items}[view]
    with pytest.raises(RuntimeError, match="dictionary changed size during iteration"):
        for _ in it():
            d[1000 + len(d)] = 0
    assert len(d) == 11  # exactly one insertion happened before the error


def test_delete_during_iteration_raises():
    d = _int_dict(10)
    with pytest.raises(RuntimeError, match="dictionary changed size during iteration"):
        for k in d:
            del d[k]
    assert len(d) == 9
    # a fresh loop after the error works and sees the nine remaining keys
    remaining = list(d)
    assert len(remaining) == 9 and set(remaining) < set(range(10))


def test_assigning_values_during_iteration_is_allowed():
    d = _int_dict(20)
    for k in d:
        d[k] = d[k] * 2 + 1
    for k, v in d.items():
        d[k] = v + 100
    assert d.to_dict() == {i: i * 2 + 1 + 100 for i in range(20)}


# ---- arrays: reference semantics -------------------------------------------------------------------


def test_array_values_are_shared_not_copied():
    d = Dict.empty(types.float64, types.float32[:])
    a = np.arange(4, dtype=np.float32)
    d[1.0] = a
    a[0] = 42.0
    assert d[1.0][0] == 42.0  # the dict holds the caller's array
    got = d[1.0]
    got[1] = -7.0
    assert a[1] == -7.0 and d[1.0][1] == -7.0
    assert np.shares_memory(d[1.0], d[1.0])
    nc = np.arange(10, dtype=np.float32)[::3]
    d[2.0] = nc
    assert np.array_equal(d[2.0], nc)


# ---- a random operation sequence against the model ---------------------------------------------


_keys = st.one_of(st.integers(-4, 12), st.sampled_from([-(2**63), 2**63 - 1, 2**31]))
_ops = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "set",
                "del",
                "pop",
                "popd",
                "get",
                "setdefault",
                "insert",
                "popitem",
                "contains",
                "len",
                "clear",
            ]
        ),
        _keys,
        st.floats(allow_nan=False, width=64),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(_ops)
def test_random_operations_match_dict(ops):
    d = Dict.empty(types.int64, types.float64)
    model = {}
    for op, k, v in ops:
        if op == "set":
            d[k] = v
            model[k] = v
        elif op == "del":
            if k in model:
                del d[k]
                del model[k]
            else:
                with pytest.raises(KeyError):
                    del d[k]
        elif op == "pop":
            if k in model:
                assert d.pop(k) == model.pop(k)
            else:
                with pytest.raises(KeyError):
                    d.pop(k)
        elif op == "popd":
            assert d.pop(k, v) == model.pop(k, v)
        elif op == "get":
            assert d.get(k, v) == model.get(k, v)
        elif op == "setdefault":
            assert d.setdefault(k, v) == model.setdefault(k, v)
        elif op == "insert":
            assert d.insert(k, v) == (k not in model)
            model.setdefault(k, v)
        elif op == "popitem":
            if model:
                pk, pv = d.popitem()
                assert model.pop(pk) == pv
            else:
                with pytest.raises(KeyError):
                    d.popitem()
        elif op == "contains":
            assert (k in d) == (k in model)
        elif op == "len":
            assert len(d) == len(model)
        elif op == "clear":
            d.clear()
            model.clear()
    assert d.to_dict() == model
    assert d == model


# ---- == across key and value types, repr of large dicts, docstrings -------------------------------


def test_equality_across_types_answers_as_dict_does():
    f = Dict.empty(types.float64, types.float64)
    f[1.0] = 1.0
    i = Dict.empty(types.int64, types.int64)
    i[1] = 1
    s = Dict.empty(types.unicode_type, types.int64)
    s["a"] = 1
    assert (f == i) is True and (i == f) is True and (f != i) is False
    assert {1.0: 1.0} == {1: 1}  # the rule followed
    assert (i == s) is False and (s == i) is False and (i != s) is True
    i[2] = 5
    assert (f == i) is False and (i == f) is False
    from numba.typed import Dict as TypedDict

    td = TypedDict.empty(types.int64, types.int64)
    td[1] = 1
    assert (f == td) is True and (s == td) is False and (td == f) is True


def test_repr_of_a_large_dict_is_abbreviated():
    n = 200_000
    d = Dict.from_arrays(np.arange(n), np.arange(n) * 2)
    r = repr(d)
    assert r.startswith("pardict.Dict[int64,int64]({") and r.endswith(f"}}, len={n})")
    assert r.count(": ") == 6 and ", ..., " in r and len(r) < 200
    for item in r[r.index("{") + 1 : r.index("}")].split(", "):
        if item != "...":
            k, v = map(int, item.split(": "))
            assert v == 2 * k
    assert str(d) == r[len("pardict.Dict[int64,int64](") : -1]
    small = Dict.from_arrays(np.arange(1000), np.arange(1000))
    assert "..." not in repr(small) and repr(small).count(": ") == 1000


@pytest.mark.parametrize("name", ["copy", "get", "pop", "keys", "values", "items", "setdefault"])
def test_methods_have_their_own_docstrings(name):
    doc = getattr(Dict, name).__doc__
    assert doc and "pardict" not in (getattr(dict, name).__doc__ or "") and doc.strip()
    assert doc != getattr(dict, name).__doc__
