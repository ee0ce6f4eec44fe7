"""The pardict.Dict API inside @njit, checked against plain dicts computed in the interpreter."""

import warnings

import numpy as np
import pytest
from numba import float64, int64, njit, prange, typed, types
from numba.core.errors import NumbaTypeSafetyWarning, TypingError

from pardict import Dict, DictType

I64 = types.int64
F64 = types.float64


def model_of(n):
    return {i * 3 - 5: i * 0.5 + 0.25 for i in range(n)}


def pardict_of(model):
    d = Dict.empty(I64, F64)
    for k, v in model.items():
        d[k] = v
    return d


# ---- module-level jitted functions (compiled once, reused) -------------------------------------


@njit
def make(n):
    d = Dict.empty(types.int64, types.float64)
    for i in range(n):
        d[i * 3 - 5] = i * 0.5 + 0.25
    return d


@njit
def make_presized(n):
    d = Dict.empty(types.int64, types.float64, n)
    for i in range(n):
        d[i * 3 - 5] = i * 0.5 + 0.25
    return d


@njit
def make_from_pairs():
    return Dict([(1, 2.0), (3, 4.5), (1, 7.0)])


@njit
def set_item(d, k, v):
    d[k] = v


@njit
def get_item(d, k):
    return d[k]


@njit
def del_item(d, k):
    del d[k]


@njit
def identity(d):
    return d


@njit
def contains(d, k):
    return k in d


@njit
def contains_str(d):
    return "not a key" in d


@njit
def length(d):
    return len(d)


@njit
def get_both(d, k):
    return d.get(k), d.get(k, -1.0)


@njit
def pop_default(d, k):
    return d.pop(k, -1.0)


@njit
def pop_plain(d, k):
    return d.pop(k)


@njit
def popitem(d):
    return d.popitem()


@njit
def setdefault(d, k, v):
    return d.setdefault(k, v)


@njit
def insert(d, k, v):
    return d.insert(k, v)


@njit
def update(d, other):
    d.update(other)


@njit
def clear(d):
    d.clear()
    return len(d)


@njit
def copy_and_change(d):
    c = d.copy()
    c[-1000] = 9.0
    return c


@njit
def eq_ne(a, b):
    return a == b, a != b


@njit
def view_lens(d):
    return len(d.keys()), len(d.values()), len(d.items())


@njit
def iterate_all(d):
    ks = 0
    n = 0
    for k in d:
        ks += k
        n += 1
    ks2 = 0
    for k in d.keys():
        ks2 += k
    vs = 0.0
    for v in d.values():
        vs += v
    kvs = 0.0
    m = 0
    for k, v in d.items():
        kvs += k * v
        m += 1
    return n, m, ks, ks2, vs, kvs


@njit
def insert_during_iteration(d):
    for k in d:
        d[k + 100000] = 0.0


@njit
def delete_during_iteration(d):
    for k in d.keys():
        del d[k]


@njit
def insert_during_items(d):
    for k, v in d.items():
        d.setdefault(k + 100000, v)


@njit
def replace_values_during_iteration(d):
    for k in d:
        d[k] = d[k] * 2.0
    for k, v in d.items():
        d[k] = v + 1.0


@njit
def print_dict(d):
    print(d)


@njit
def set_int_key(d):
    d[3] = 1.5
    return d[3]


@njit
def set_float_key(d):
    d[1.5] = 1.0


@njit
def set_value(d, v):
    d[1] = v
    return d[1]


@njit
def bump_array(d, k):
    a = d[k]
    a[0] += 1.0
    return a.sum()


@njit
def store_then_mutate():
    d = Dict.empty(types.int64, types.float64[:])
    a = np.zeros(3)
    d[1] = a
    a[1] = 5.0
    b = d[1]
    b[2] = 7.0
    return d, a


@njit(float64(DictType(int64, float64), int64))
def explicit_signature(d, k):
    return d[k]


# ---- creation, boxing, identity --------------------------------------------------------------


def test_create_in_njit_and_return():
    d = make(50)
    assert isinstance(d, Dict)
    assert d.key_type == I64 and d.value_type == F64
    assert d.to_dict() == model_of(50)
    assert make_presized(50).to_dict() == model_of(50)
    assert make(0).to_dict() == {}


def test_dict_from_pairs_in_njit():
    assert make_from_pairs().to_dict() == {1: 7.0, 3: 4.5}


def test_pass_back_and_storage_identity():
    d = make(10)
    model = model_of(10)
    assert length(d) == 10
    set_item(d, 12345, 1.5)  # a mutation inside njit is visible outside
    model[12345] = 1.5
    assert d.to_dict() == model
    d[777] = 2.5  # and the other way round
    assert get_item(d, 777) == 2.5
    r = identity(d)
    assert r is not d and isinstance(r, Dict)
    r[888] = 3.5
    assert d[888] == 3.5  # the same table
    del_item(d, 777)
    assert 777 not in r
    assert explicit_signature(d, 888) == 3.5


def test_getitem_missing_raises_keyerror():
    d = make(3)
    with pytest.raises(KeyError) as ei:
        get_item(d, 999)
    assert ei.value.args == (999,)
    with pytest.raises(KeyError):
        del_item(d, 999)
    assert len(d) == 3


def test_contains_and_uncastable_key():
    d = make(5)
    for k in list(model_of(5)) + [1, 2, 1000]:
        assert contains(d, k) == (k in model_of(5))
    with pytest.raises(TypingError):  # as typed.Dict: a key of another type domain
        contains_str(d)


def test_get_with_and_without_default():
    d = make(5)
    model = model_of(5)
    for k in (-5, -2, 7, 8, 1000):
        assert get_both(d, k) == (model.get(k), model.get(k, -1.0))


def test_pop():
    d = make(5)
    model = model_of(5)
    assert pop_default(d, -5) == model.pop(-5)
    assert pop_default(d, -5) == -1.0
    assert pop_plain(d, -2) == model.pop(-2)
    with pytest.raises(KeyError) as ei:
        pop_plain(d, -2)
    assert ei.value.args == (-2,)
    assert d.to_dict() == model


def test_popitem_drains():
    d = make(6)
    model = model_of(6)
    while model:
        k, v = popitem(d)
        assert model.pop(k) == v
    assert len(d) == 0
    with pytest.raises(KeyError):
        popitem(d)


def test_setdefault_and_insert():
    d = make(3)
    model = model_of(3)
    for k, v in ((-5, 100.0), (50, 1.25), (50, 2.5), (-2, 0.0)):
        assert setdefault(d, k, v) == model.setdefault(k, v)
    for k, v in ((60, 3.0), (60, 4.0), (-5, 5.0)):
        assert insert(d, k, v) == (k not in model)
        model.setdefault(k, v)
    assert d.to_dict() == model


def test_update_from_pardict_and_typed_dict():
    d = make(4)
    model = model_of(4)
    other = pardict_of({-5: 11.0, 90: 12.0})
    update(d, other)
    model.update({-5: 11.0, 90: 12.0})
    assert d.to_dict() == model
    td = typed.Dict.empty(I64, F64)
    td[91] = 13.0
    td[-2] = 14.0
    update(d, td)
    model.update({91: 13.0, -2: 14.0})
    assert d.to_dict() == model
    assert dict(td) == {91: 13.0, -2: 14.0}


def test_clear_and_copy():
    d = make(8)
    c = copy_and_change(d)
    assert isinstance(c, Dict)
    expect = model_of(8)
    assert d.to_dict() == expect  # the original is unchanged
    expect[-1000] = 9.0
    assert c.to_dict() == expect
    assert clear(d) == 0
    assert d.to_dict() == {} and len(c) == 9


def test_eq_ne():
    a, b = make(6), make(6)
    assert eq_ne(a, b) == (True, False)
    b[1000] = 1.0
    assert eq_ne(a, b) == (False, True)
    del b[1000]
    b[-5] = 99.0
    assert eq_ne(a, b) == (False, True)
    td = typed.Dict.empty(I64, F64)
    for k, v in model_of(6).items():
        td[k] = v
    assert eq_ne(a, td) == (True, False)
    td[-5] = 0.0
    assert eq_ne(a, td) == (False, True)


def test_view_lens_and_iteration():
    for n in (0, 1, 37):
        d = make(n)
        model = model_of(n)
        assert view_lens(d) == (n, n, n)
        got = iterate_all(d)
        assert got[:4] == (n, n, sum(model), sum(model))
        assert got[4] == pytest.approx(sum(model.values()))
        assert got[5] == pytest.approx(sum(k * v for k, v in model.items()))


@pytest.mark.parametrize(
    "fn", [insert_during_iteration, delete_during_iteration, insert_during_items]
)
def test_key_change_during_iteration_raises(fn):
    d = make(10)
    with pytest.raises(RuntimeError, match="dictionary changed size during iteration"):
        fn(d)
    assert abs(len(d) - 10) == 1  # the loop stopped right after the first key change


def test_value_change_during_iteration_is_allowed():
    d = make(20)
    replace_values_during_iteration(d)
    assert d.to_dict() == {k: v * 2.0 + 1.0 for k, v in model_of(20).items()}


def test_print_in_njit(capfd):
    d = make(3)
    print_dict(d)
    out = capfd.readouterr().out
    for k, v in model_of(3).items():
        assert f"{k}: {v}" in out
    print_dict(make(0))
    assert capfd.readouterr().out.strip() == "{}"


# ---- implicit casts (typed.Dict rules) -----------------------------------------------------------


def test_int_key_into_float_key_dict():
    d = Dict.empty(F64, F64)
    assert set_int_key(d) == 1.5
    assert d.to_dict() == {3.0: 1.5}


def test_float_key_into_int_key_dict_is_typing_error():
    d = Dict.empty(I64, F64)
    with pytest.raises(TypingError) as ei:
        set_float_key(d)
    msg = str(ei.value)
    assert "float64" in msg and "int64" in msg
    assert len(d) == 0


def test_int64_value_into_int32_dict_warns():
    d = Dict.empty(I64, types.int32)
    with pytest.warns(NumbaTypeSafetyWarning):
        assert set_value(d, 7) == 7
    assert d[1] == 7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        set_value(d, 2**32 + 5)  # wraps like typed.Dict
    assert d[1] == 5


# ---- arrays: reference semantics --------------------------------------------------------------------


def test_array_value_is_the_stored_array():
    d = Dict.empty(I64, types.float64[:])
    d[1] = np.zeros(4)
    assert bump_array(d, 1) == 1.0
    assert bump_array(d, 1) == 2.0
    assert np.array_equal(d[1], [2.0, 0.0, 0.0, 0.0])


def test_array_stored_in_njit_is_shared():
    d, a = store_then_mutate()
    assert np.array_equal(d[1], [0.0, 5.0, 7.0])
    assert np.shares_memory(d[1], a)


# Arrays without an owner: parfor passes the arrays a prange body uses as views with no MemInfo. One
# prange iteration runs on one thread.
@njit(parallel=True)
def store_unowned(d, keys, src):
    for _ in prange(1):
        for k in keys:
            d[k] = src


@njit
def write_into(d, k, i, x):
    d[k][i] = x


def test_unowned_array_is_copied_and_the_copy_shared_while_unchanged():
    src = np.array([1.0, 2.0, 3.0])
    d = Dict.empty(I64, types.float64[:])
    store_unowned(d, np.array([0, 1]), src)
    assert np.array_equal(d[0], src) and not np.shares_memory(d[0], src)
    # The second store shared the first one's copy, as a typed.Dict loop shares one array.
    assert np.shares_memory(d[0], d[1])
    write_into(d, 1, 0, 9.0)  # visible through both keys, like writing into a shared array
    assert d[0][0] == 9.0
    # The copy no longer equals the source: the next store makes a fresh copy.
    store_unowned(d, np.array([2, 3]), src)
    assert np.array_equal(d[2], src) and not np.shares_memory(d[2], d[0])
    assert np.shares_memory(d[2], d[3])
    src[1] = -1.0  # so does a changed source
    store_unowned(d, np.array([4]), src)
    assert np.array_equal(d[4], src) and not np.shares_memory(d[4], d[2])
    assert d[2][1] == 2.0
    d.clear()
    store_unowned(d, np.array([5]), src)
    assert np.array_equal(d[5], src)


@pytest.mark.parametrize(
    "dtype, n",
    # float32 items: 4 to 160 bytes, so whole words with and without a 4-byte tail, and arrays
    # past the 64 bytes the comparison does inline; int8 items: the sizes around the two
    # overlapping loads that compare 4 to 16 bytes (capi/unowned_copies.hpp, same_bytes).
    [("float32", n) for n in (1, 2, 3, 4, 8, 9, 16, 17, 40)]
    + [("int8", n) for n in (1, 3, 4, 5, 7, 8, 9, 15, 16, 17)],
)
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_unowned_copy_sharing_sees_a_change_in_any_byte(dtype, n, where):
    src = np.arange(n, dtype=dtype)
    d = Dict.empty(I64, {"float32": types.float32, "int8": types.int8}[dtype][:])
    store_unowned(d, np.array([0, 1]), src)
    assert np.shares_memory(d[0], d[1])
    src[{"first": 0, "middle": n // 2, "last": -1}[where]] += 1
    store_unowned(d, np.array([2]), src)
    assert np.array_equal(d[2], src) and not np.shares_memory(d[2], d[0])
    assert not np.array_equal(d[0], src)


def test_unowned_copy_sharing_checks_the_shape():
    d = Dict.empty(I64, types.float64[:, :])
    a = np.arange(6.0)
    store_unowned(d, np.array([0]), a.reshape((3, 2)))
    store_unowned(d, np.array([1]), a.reshape((2, 3)))  # same memory and bytes, another shape
    assert d[0].shape == (3, 2) and d[1].shape == (2, 3)
    assert not np.shares_memory(d[0], d[1])


# ---- truth value, comparisons with typed.Dict ------------------------------------------------------


@njit
def _truth(d):
    out = 0
    if d:
        out += 1
    if not d:
        out += 10
    popped = 0
    while d:
        d.popitem()
        popped += 1
    return out, bool(d), popped


def test_truth_value_in_njit():
    d = Dict.empty(types.int64, types.float64)
    assert _truth(d) == (10, False, 0)
    d[1] = 1.0
    d[2] = 2.0
    assert _truth(d) == (1, False, 2) and len(d) == 0


@njit
def _compare(a, b):
    return a == b, b == a, a != b, b != a


def test_typed_dict_and_pardict_compare_contents_in_njit():
    from numba import typed

    p = Dict.empty(types.int64, types.float64)
    t = typed.Dict.empty(types.int64, types.float64)
    for k in range(5):
        p[k] = k / 2
        t[k] = k / 2
    assert _compare(p, t) == (True, True, False, False)
    assert _compare(t, p) == (True, True, False, False)
    t[9] = 1.0
    assert _compare(p, t) == (False, False, True, True)
    del t[9]
    t[0] = 7.0
    assert _compare(t, p) == (False, False, True, True)
    assert _compare(t, t) == (True, True, False, False)  # typed.Dict's own == is unchanged
    s = Dict.empty(types.unicode_type, types.float64)
    assert _compare(p, s) == (False, False, True, True)


# ---- pardict.Dict() typed by its first store, as numba.typed.Dict() -------------------------------


@njit
def _infer_in_branch_and_loop(n):
    d = Dict()
    for i in range(n):
        if i % 2:
            d[i] = float(i)
    return d


@njit
def _store_one(d):
    d[100] = 1.5
    return len(d)


@njit
def _infer_then_pass_and_store(n):
    d = Dict()
    d[0] = 0.5
    m = _store_one(d)
    lst = typed.List()
    lst.append(d)
    return lst, m


@njit
def _infer_array_values():
    d = Dict()
    d["a"] = np.arange(3)
    return d


@njit(parallel=True)
def _infer_then_prange(n):
    d = Dict()
    d[-1] = 0
    for i in prange(n):
        d[i] = i
    return d


@njit
def _never_stored():
    d = Dict()
    return len(d)


def test_dict_typed_by_its_first_store_in_njit():
    d = _infer_in_branch_and_loop(6)
    assert isinstance(d, Dict) and d.to_dict() == {1: 1.0, 3: 3.0, 5: 5.0}
    assert d.key_type == I64 and d.value_type == F64
    lst, m = _infer_then_pass_and_store(3)
    assert m == 2 and lst[0].to_dict() == {0: 0.5, 100: 1.5}
    a = _infer_array_values()
    assert a.key_type == types.unicode_type and list(a["a"]) == [0, 1, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        p = _infer_then_prange(1000)
    assert len(p) == 1001 and sum(p.values()) == sum(range(1000))
    with pytest.raises(TypingError, match="imprecise type"):  # as typed.Dict: never typed
        _never_stored()
