"""Bad input raises a Python exception (never crashes) and leaves the dictionary unchanged."""

import numpy as np
import pytest
from numba import njit, types
from numba.core.errors import TypingError

from pardict import Dict

I64 = types.int64
F64 = types.float64
U = types.unicode_type


def _int_float():
    d = Dict.empty(I64, F64)
    d[1] = 1.5
    d[2] = 2.5
    return d


WRONG_INT_FLOAT = [
    ("setitem key", lambda d: d.__setitem__("a", 1.0), "unicode_type"),
    ("setitem value", lambda d: d.__setitem__(1, "x"), "unicode_type"),
    ("setitem None value", lambda d: d.__setitem__(1, None), "none"),
    ("setitem tuple key", lambda d: d.__setitem__((1, 2), 1.0), "UniTuple"),
    ("setitem array value", lambda d: d.__setitem__(1, np.zeros(2)), "array"),
    ("getitem", lambda d: d["a"], "unicode_type"),
    ("delitem", lambda d: d.__delitem__("a"), "unicode_type"),
    ("pop", lambda d: d.pop("a"), "unicode_type"),
    ("setdefault", lambda d: d.setdefault("a", 1.0), "unicode_type"),
    ("insert", lambda d: d.insert(3, "x"), "unicode_type"),
    ("update", lambda d: d.update({"a": 1.0}), "unicode_type"),
]


@pytest.mark.parametrize("what,op,got", WRONG_INT_FLOAT, ids=[w[0] for w in WRONG_INT_FLOAT])
def test_wrong_types_from_interpreter_int_float(what, op, got):
    d = _int_float()
    with pytest.raises(TypeError) as ei:
        op(d)
    msg = str(ei.value)
    assert msg.startswith("pardict.Dict[int64, float64]"), msg
    assert "keys must be int64 and values float64" in msg
    assert got in msg
    assert d.to_dict() == {1: 1.5, 2: 2.5}


def test_wrong_types_string_dict():
    s = Dict.empty(U, U)
    s["k"] = "v"
    with pytest.raises(TypeError, match=r"^pardict\.Dict\[unicode_type, unicode_type\]"):
        s[1] = "x"
    with pytest.raises(TypeError, match=r"^pardict\.Dict\[unicode_type, unicode_type\]"):
        s["x"] = 2.0
    assert s.to_dict() == {"k": "v"}


@pytest.mark.parametrize("key", [(1, 2), (1, "a", 2), ("a", 1)], ids=repr)
def test_wrong_tuple_keys(key):
    t = Dict.empty(types.Tuple([I64, U]), F64)
    t[(0, "z")] = 0.5
    with pytest.raises(TypeError) as ei:
        t[key] = 1.0
    assert str(ei.value).startswith("pardict.Dict[Tuple(int64, unicode_type), float64]"), repr(
        ei.value
    )
    assert t.to_dict() == {(0, "z"): 0.5}


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 2), dtype=np.float32), np.zeros(3, dtype=np.float64)],
    ids=["wrong ndim", "wrong dtype"],
)
def test_wrong_array_values(bad):
    a = Dict.empty(I64, types.float32[:])
    a[0] = np.ones(2, dtype=np.float32)
    with pytest.raises(TypeError) as ei:
        a[1] = bad
    assert str(ei.value).startswith("pardict.Dict[int64, array(float32, 1d, A)]"), str(ei.value)
    assert list(a.keys()) == [0] and np.array_equal(a[0], [1.0, 1.0])


@pytest.mark.parametrize("key", ["a", 1j, 1.5], ids=repr)
def test_key_of_another_type_domain_is_a_type_error(key):
    """As typed.Dict: a key that cannot be cast safely is an error, not a quiet False; the error
    is both a TypeError and numba's TypingError (typed.Dict raises the latter)."""
    d = _int_float()
    for op in (lambda: key in d, lambda: d.get(key), lambda: d[key], lambda: d.pop(key)):
        with pytest.raises(TypeError) as ei:
            op()
        assert isinstance(ei.value, TypingError)
    assert (1 in d) is True and d.to_dict() == {1: 1.5, 2: 2.5}


def test_untyped_dict_with_unsupported_first_value():
    d = Dict()
    with pytest.raises((TypeError, TypingError)):
        d[1] = None
    with pytest.raises((TypeError, TypingError)):
        d[1] = object()
    assert len(d) == 0
    d[1] = 2
    assert d.to_dict() == {1: 2}


def test_mixed_pairs_in_constructor():
    with pytest.raises(TypeError, match=r"^pardict\.Dict\[int64, float64\]"):
        Dict([(1, 2.0), ("a", 3.0)])
    with pytest.raises(TypeError):
        Dict(5)


def test_constructor_errors_have_typed_dicts_classes():
    """The same mistake raises the class typed.Dict raises (TypingError, which pardict's error
    also is a TypeError, for a non-iterable; ValueError for an element that is not a pair)."""
    with pytest.raises(TypingError, match="not iterable"):
        Dict(5)
    with pytest.raises(ValueError, match="element #0 has length 3; 2 is required"):
        Dict([(1, 2, 3)])
    with pytest.raises(ValueError, match="element #1 has length 1"):
        Dict([(1, 2.0), (3,)])
    with pytest.raises(TypingError, match="element #0 to a sequence"):
        Dict([1])

    @njit
    def from_int():
        return Dict(5)

    @njit
    def from_triples():
        return Dict([(1, 2, 3)])

    for f in (from_int, from_triples):
        with pytest.raises(TypingError, match="iterable of \\(key, value\\) pairs"):
            f()


# ---- sizes -------------------------------------------------------------------------------------


@njit
def make_sized(n):
    return Dict.empty(types.int64, types.float64, n)


@njit
def reserve_njit(d, n):
    d.reserve(n)


def test_absurd_n_keys_is_memory_error():
    with pytest.raises(MemoryError):
        Dict.empty(I64, F64, n_keys=10**18)
    with pytest.raises(MemoryError):
        make_sized(10**18)
    d = _int_float()
    with pytest.raises(MemoryError):
        d.reserve(10**18)
    with pytest.raises(MemoryError):
        reserve_njit(d, 10**18)
    assert d.to_dict() == {1: 1.5, 2: 2.5}


def test_negative_n_keys_is_value_error():
    with pytest.raises(ValueError):
        Dict.empty(I64, F64, n_keys=-1)
    with pytest.raises(ValueError):
        make_sized(-5)
    d = _int_float()
    with pytest.raises(ValueError):
        d.reserve(-1)
    with pytest.raises(ValueError):
        reserve_njit(d, -1)
    assert len(make_sized(3)) == 0


@pytest.mark.parametrize("n", [1.5, "3", None, True])
def test_non_int_n_keys_is_type_error(n):
    with pytest.raises(TypeError):
        Dict.empty(I64, F64, n_keys=n)


# ---- arguments -------------------------------------------------------------------------------------


def test_setdefault_without_default():
    d = _int_float()
    with pytest.raises(TypeError):
        d.setdefault(7)
    assert 7 not in d
    assert d.setdefault(1) == 1.5  # present: returns the stored value, like dict


@njit
def setdefault_no_default(d, k):
    return d.setdefault(k)


def test_setdefault_without_default_in_njit():
    with pytest.raises(TypingError, match="default"):
        setdefault_no_default(_int_float(), 1)


def test_pop_too_many_arguments():
    d = _int_float()
    with pytest.raises(TypeError):
        d.pop(1, 2.0, 3.0)
    assert d.to_dict() == {1: 1.5, 2: 2.5}


def test_from_dict_with_one_type():
    with pytest.raises(TypeError):
        Dict.from_dict({1: 2.0}, key_type=I64)


def test_unhashable():
    with pytest.raises(TypeError):
        hash(_int_float())


@njit
def update_with(d, x):
    d.update(x)


def test_update_with_non_dict_in_njit():
    with pytest.raises(TypingError):
        update_with(_int_float(), (1, 2.0))


@pytest.mark.parametrize("bad", [None, 3, "not a type", [1], 2.5], ids=repr)
def test_empty_with_non_type_argument(bad):
    with pytest.raises(TypeError):
        Dict.empty(bad, F64)
    with pytest.raises(TypeError):
        Dict.empty(I64, bad)


def test_empty_accepts_python_and_numpy_types():
    assert Dict.empty(int, float).key_type == I64
    d = Dict.empty(np.int32, np.float32)
    assert (d.key_type, d.value_type) == (types.int32, types.float32)
    assert Dict.empty(str, bool).value_type == types.boolean


# ---- errors at the door: the call that is wrong says what it expected ---------------------------


@pytest.mark.parametrize(
    "value_type,match",
    [
        (types.pyobject, "Python objects"),
        (types.List(types.int64), "Python lists or sets"),
        (types.Set(types.int64), "Python lists or sets"),
        (
            __import__("numba").from_dtype(np.dtype([("a", np.int64), ("b", np.float64)])),
            "record scalars",
        ),
    ],
    ids=["pyobject", "list", "set", "record"],
)
def test_unsupported_value_types_are_refused_by_empty(value_type, match):
    with pytest.raises(TypingError, match=match):
        Dict.empty(I64, value_type)


def test_n_keys_and_reserve_arguments():
    d = Dict.empty(I64, F64, n_keys=np.int64(10))  # as typed.Dict accepts
    d.reserve(np.int32(100))
    with pytest.raises(MemoryError):
        Dict.empty(I64, F64, n_keys=2**63)
    with pytest.raises(MemoryError):
        d.reserve(2**63)
    with pytest.raises(TypeError, match="n_keys must be an int, got str"):
        Dict.empty(I64, F64, n_keys="10")
    with pytest.raises(TypeError, match="reserve: n must be an int, got str"):
        d.reserve("x")
    with pytest.raises(ValueError, match="non-negative"):
        d.reserve(-1)
    assert len(d) == 0


def test_bulk_and_merge_arguments_are_named():
    d = Dict.empty(I64, F64)
    with pytest.raises(TypeError, match="get_many: the default must be a float64"):
        d.get_many(np.array([1]), default="x")
    from numba.typed import Dict as TypedDict

    td = TypedDict.empty(I64, F64)
    with pytest.raises(TypeError, match=r"pardict\.Dict\.from_typed"):
        d.merge(td)
    with pytest.raises(TypeError, match=r"pardict\.Dict\.from_dict"):
        d.merge({1: 2.0})
