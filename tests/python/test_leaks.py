"""Reference and memory balance: every test but those marked leaks_on_njit_raise runs under the `no_leaks` fixture (conftest.py),
which checks pardict.live_dicts(), pardict.live_refs() and numba's NRT allocation counters before
and after. Inside the tests, live_refs() is also checked against the number of references a table
must hold at that point. The exceptions are exceptions raised inside jitted code: numba does not
release a function's live variables when a callee raises, so the dict argument's reference is lost
(typed.Dict loses its table the same way); those tests check the loss is no larger than that."""

import gc

import numba
import numpy as np
import pytest
from numba import njit, prange, types

import pardict
from pardict import Dict


@pytest.fixture(autouse=True)
def _balanced(request):
    if "leaks_on_njit_raise" not in request.keywords:
        request.getfixturevalue("no_leaks")
    yield


I64, F64, U = types.int64, types.float64, types.unicode_type
ARR = types.float64[:]


def refs():
    gc.collect()
    return pardict.live_refs()


# ---- jitted helpers ---------------------------------------------------------------------------------


@njit
def fill_arrays(n, size):
    d = Dict.empty(types.int64, types.float64[:])
    for i in range(n):
        d[i] = np.full(size, i * 1.0)
    return d


@njit
def fill_strings(n):
    d = Dict.empty(types.unicode_type, types.unicode_type)
    for i in range(n):
        d[str(i) + "é"] = "v" + str(i * 7) + "😀"
    return d


@njit
def churn_arrays(n, rounds):
    total = 0.0
    for _ in range(rounds):
        d = Dict.empty(types.int64, types.float64[:])
        for i in range(n):
            d[i] = np.ones(4)
        for i in range(n):
            total += d[i].sum()
    return total


@njit
def replace_arrays(d, keys, rounds):
    for r in range(rounds):
        for k in range(keys):
            d[k] = np.full(3, r * 1.0)
            d.setdefault(k, np.zeros(1))  # present: returns the stored array
            d.insert(k, np.zeros(1))  # present: nothing inserted
            x = d.get(k, np.zeros(2))
            x[0] += 0.0


@njit
def replace_strings(d, keys, rounds):
    for r in range(rounds):
        for k in range(keys):
            d[str(k) + "k"] = str(r) + "€"


@njit
def pop_half_and_popitem(d, n):
    s = 0.0
    for i in range(0, n, 2):
        s += d.pop(i).sum()
    for i in range(1, n, 2):
        s += d.pop(i + 10**6, np.zeros(1)).sum()  # absent: the default comes back
    while len(d) > n // 4:
        k, v = d.popitem()
        s += v.sum()
    return s


@njit
def copy_and_drop(d, rounds):
    n = 0
    for _ in range(rounds):
        c = d.copy()
        n += len(c)
    return n


@njit
def break_early(d):
    s = 0.0
    for _k, v in d.items():
        s += v.sum()
        break
    for k in d:
        if k > 3:
            break
    for v in d.values():
        s += v[0]
        if s > 0:
            break
    return s


@njit
def iterate_and_return_count(d):
    n = 0
    for _k, _v in d.items():
        n += 1
    return n


@njit
def passthrough(d):
    return d


@njit
def touch(d, k):
    d[k] = np.zeros(1)
    return len(d)


@njit(parallel=True)
def contend_fresh(d, n, keys):
    for i in prange(n):
        d[i % keys] = np.empty(8)
        a = d.get((i + 1) % keys, np.zeros(1))
        a[0] = 1.0


@njit(parallel=True)
def contend_borrowed(d, n, keys, src):
    for i in prange(n):
        d[i % keys] = src  # src has no owner inside the prange body: stored as a copy
        d.pop((i + 3) % keys, src)


@njit(parallel=True)
def contend_strings(d, n, keys):
    for i in prange(n):
        d[i % keys] = str(i)


@njit
def mutate_during_iteration(d):
    for _k in d:
        d[len(d) + 10**6] = np.zeros(1)


@njit
def missing_key(d, k):
    return d[k]


# ---- tests ---------------------------------------------------------------------------------------------


def test_fill_and_drop_many_dicts_with_arrays():
    base = refs()
    for _ in range(20):
        d = fill_arrays(50, 16)
        assert refs() - base == 50
        assert d[7][3] == 7.0
        del d
    assert refs() == base
    assert churn_arrays(30, 20) == 30 * 20 * 4.0


def test_fill_and_drop_many_dicts_with_strings():
    base = refs()
    dicts = [fill_strings(40) for _ in range(10)]
    assert refs() - base == 10 * 40 * 2  # key and value strings
    assert dicts[3]["5é"] == "v35😀"
    del dicts


def test_interpreter_fill_and_drop():
    base = refs()
    for _ in range(10):
        d = Dict.empty(U, ARR)
        for i in range(30):
            d[f"k{i}é"] = np.arange(float(i))
        # 30 keys, 30 values, and the view MemInfo the thread made last (convert.py, "Arrays as
        # one word"), which the dict keeps for the next store
        assert refs() - base == 60 + 1
    del d
    assert refs() == base


def test_replace_values_repeatedly():
    d = Dict.empty(I64, ARR)
    base = refs()
    replace_arrays(d, 10, 200)
    assert refs() - base == 10
    assert all(np.array_equal(d[k], [199.0] * 3) for k in range(10))
    for r in range(50):  # from the interpreter too
        d[r % 10] = np.zeros(r + 1)
    assert refs() - base == 10 + 1  # and the last view MemInfo made (see above)
    s = Dict.empty(U, U)
    replace_strings(s, 10, 100)
    assert s.to_dict() == {f"{k}k": "99€" for k in range(10)}
    assert refs() - base == 10 + 1 + 20


def test_pop_popitem_clear():
    d = fill_arrays(40, 4)
    base = refs() - 40
    s = pop_half_and_popitem(d, 40)
    assert len(d) == 10
    assert refs() - base == 10
    assert s == sum(4.0 * i for i in range(0, 40, 2)) + sum(
        4.0 * k for k in range(40) if k % 2 and k not in d
    )
    k, v = d.popitem()  # interpreter
    assert refs() - base == 9
    d.pop(next(iter(d)))
    assert refs() - base == 8
    d.clear()
    assert refs() == base and len(d) == 0


def test_copy():
    d = fill_arrays(25, 2)
    base = refs() - 25
    assert copy_and_drop(d, 100) == 2500
    assert refs() - base == 25
    c = d.copy()
    assert refs() - base == 50
    c.clear()
    assert refs() - base == 25
    assert pardict.live_dicts() >= 2


def test_iteration_abandoned_midway():
    d = fill_arrays(30, 3)
    base = refs() - 30
    for _ in range(100):
        break_early(d)
    assert refs() - base == 30
    for _ in range(20):  # interpreter loops, broken off
        for _k in d:
            break
        for k, _v in d.items():
            if k > 5:
                break
        it = iter(d.values())
        next(it)
        del it
    assert refs() - base == 30
    assert iterate_and_return_count(d) == 30


def test_interpreter_iteration_error_path():
    d = fill_arrays(10, 3)
    base = refs() - 10
    for _ in range(5):
        with pytest.raises(RuntimeError):
            for _k in d:
                d[len(d) + 10**6] = np.zeros(1)
    assert len(d) == 15
    assert refs() - base == 15 + 1  # and the last view MemInfo made (see above)


@njit
def raise_in_loop(d):
    s = 0.0
    for k in d:
        s += d[k + 100][0]
    return s


def _meminfos_lost(make, run):
    from conftest import _snapshot

    before = _snapshot()["nrt_mi_alloc-mi_free"]
    d = make()
    for _ in range(5):
        with pytest.raises((RuntimeError, KeyError)):
            run(d)
    del d
    return _snapshot()["nrt_mi_alloc-mi_free"] - before


@pytest.mark.leaks_on_njit_raise
def test_njit_iteration_error_path():
    d = fill_arrays(10, 3)
    base = refs() - 10
    for _ in range(5):
        with pytest.raises(RuntimeError):
            mutate_during_iteration(d)
    assert len(d) == 15
    # the iterators that raised released their snapshots (5 x 15 references) on the way out
    assert refs() - base == 15


@pytest.mark.leaks_on_njit_raise
def test_exception_in_njit_loses_no_more_than_typed_dict():
    """numba does not release the live variables of a function whose callee raised: the dict
    argument's reference is lost (typed.Dict loses its table the same way). pardict adds at most
    the raising loop's small iterator object, never its snapshot."""

    def make(cls):
        def build():
            d = cls.empty(I64, ARR)
            for i in range(10):
                d[i] = np.zeros(3)
            return d

        return build

    from numba import typed

    typed_lost = _meminfos_lost(make(typed.Dict), raise_in_loop)
    assert typed_lost == 11  # the table and its 10 arrays: the limitation is numba's
    # pardict holds each array that came from the interpreter under a view MemInfo (convert.py,
    # "Arrays as one word"), lost with the table too: 10 more
    assert _meminfos_lost(make(Dict), raise_in_loop) <= typed_lost + 10 + 5
    # here each run first inserts one more array (lost with the table), then raises
    assert _meminfos_lost(make(Dict), mutate_during_iteration) <= typed_lost + 10 + 5 + 5


@pytest.mark.leaks_on_njit_raise
def test_njit_keyerror_path():
    d = fill_arrays(10, 3)
    base = refs() - 10
    for _ in range(5):
        with pytest.raises(KeyError):
            missing_key(d, -1)
    assert refs() - base == 10


@pytest.mark.parametrize("op", ["getitem", "delitem", "pop", "pop with default", "popitem"])
def test_interpreter_keyerror_paths(op):
    d = fill_arrays(3, 2)
    if op == "popitem":
        d.clear()
    for _ in range(3):
        if op == "pop with default":
            assert d.pop(-1, None) is None
            continue
        with pytest.raises(KeyError):
            {
                "getitem": lambda: d[-1],
                "delitem": lambda: d.__delitem__(-1),
                "pop": lambda: d.pop(-1),
                "popitem": d.popitem,
            }[op]()
    # the fixture checks that the table is freed once `d` goes away


def test_dict_created_in_njit_and_returned():
    base_dicts = pardict.live_dicts()
    ds = [fill_arrays(5, 1) for _ in range(50)]
    assert pardict.live_dicts() - base_dicts == 50
    del ds
    gc.collect()
    assert pardict.live_dicts() == base_dicts


def test_pass_through_njit_1000_times():
    d = Dict.empty(I64, ARR)
    base = refs()
    for i in range(1000):
        r = passthrough(d)
        assert touch(r, i % 7) == min(i + 1, 7)
    del r
    assert refs() - base == 7
    assert pardict.live_dicts() >= 1


def test_arrays_replaced_under_prange_contention():
    d = Dict.empty(I64, ARR)
    base = refs()
    for _ in range(3):
        contend_fresh(d, 20000, 4)
    assert len(d) == 4
    assert refs() - base == 4
    src = np.arange(5.0)
    for _ in range(3):
        contend_borrowed(d, 20000, 8, src)
    # Besides the entries, the dict keeps each thread's last copy of src (see test_seed_copies).
    kept = refs() - base - len(d)
    assert 0 <= kept <= numba.get_num_threads()
    for _k, v in d.items():
        if v.shape == (5,):
            assert np.array_equal(v, src) and not np.shares_memory(v, src)
    s = Dict.empty(I64, U)
    contend_strings(s, 20000, 16)
    assert len(s) == 16 and refs() - base == len(d) + kept + 16
    assert all(int(v) % 16 == k for k, v in s.items())


@njit(parallel=True)
def seed_fill(d, n):
    v = np.array([0.1, 0.2], dtype=np.float32)
    for i in prange(n):
        d[float(i)] = v
    return d


def test_seed_copies():
    """The seed program stores one unowned v under every key: each thread copies it once and the
    dict keeps that copy until cleared, so the references are the entries plus one per copy."""
    base = refs()
    d = seed_fill(Dict.empty(F64, types.float32[:]), 20_000)
    copies = {d[float(i)].ctypes.data for i in range(20_000)}
    assert 1 <= len(copies) <= numba.get_num_threads()
    assert len(d) < refs() - base <= len(d) + len(copies)
    v = np.array([0.1, 0.2], np.float32)
    assert all(np.array_equal(d[float(i)], v) for i in range(0, 20_000, 97))
    d.clear()
    assert refs() == base
    seed_fill(d, 100)
    del d
    assert refs() == base


def test_bulk_and_atomic_operations_with_str_keys():
    tokens = np.array([f"t{i % 700}" for i in range(20_000)])
    base = refs()
    d = Dict.empty(U, types.int64)
    d.count_many(tokens, threads=2)  # inserts 700 keys (each holds its string), bumps the rest
    d.add("t1", 5)
    d.add("new", 1)
    d.set_many(["t2", "x"], [1, 2])
    assert len(d) == 702 and refs() - base == 702  # one reference per key, none per bump
    m = Dict.empty(U, types.int64)
    m.merge(d, "add")
    m.merge(d, "max")
    assert refs() - base == 2 * 702
    del d, m
    assert refs() == base
