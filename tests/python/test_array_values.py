"""1-D array values stored as their MemInfo alone (pardict.numba.convert, "Arrays as one word").

Each kind of array is stored, read back and compared with what typed.Dict gives for the same
program: values, memory shared with the source, object identity for arrays from the interpreter.
The no_leaks fixture (conftest.py) checks that every view MemInfo made along the way is freed.
"""

import numba
import numpy as np
import pytest
from numba import njit, prange, typed, types

from pardict import Dict
from pardict.numba import datamodel
from pardict.numba.types import DictType, stored_as_meminfo

pytestmark = pytest.mark.usefixtures("no_leaks")

F64 = types.float64
REC = np.dtype([("a", np.int32), ("b", np.float64)])  # itemsize 12: rebuilt with a division


def _mi_count():
    from conftest import _snapshot

    return _snapshot()["nrt_mi_alloc-mi_free"]


def test_one_dimensional_arrays_are_one_word():
    for vty in (types.float32[:], types.float64[::1], types.Array(types.int8, 1, "F")):
        assert stored_as_meminfo(vty)
        _, v, _, vc = DictType(F64, vty).layouts
        assert (v.size, v.refs, vc) == (8, 1, 8)
    # more dimensions keep the whole struct (the MemInfo holds no shape)
    _, v, _, _ = DictType(F64, types.float64[:, :]).layouts
    assert not stored_as_meminfo(types.float64[:, :]) and v.size == 72 and v.refs == 1


def test_meminfo_layout_check_passes_and_catches_a_wrong_word(monkeypatch):
    datamodel.check_meminfo_layout()
    monkeypatch.setattr(datamodel, "MEMINFO_SIZE", 1)
    with pytest.raises(ImportError, match="size"):
        datamodel.check_meminfo_layout()


@njit
def _store_kinds(d, base):
    d[0] = base  # an argument: its own MemInfo, from the interpreter (parent set)
    d[1] = base[::2]  # strided view
    d[2] = base[1:3]  # contiguous slice of a larger buffer
    d[3] = np.arange(4.0)  # made here: the whole buffer of its MemInfo
    d[4] = np.empty(0)  # empty
    d[5] = base.copy()
    return d


@pytest.mark.parametrize("cls", [typed.Dict, Dict])
def test_values_and_shared_memory_match_typed_dict(cls):
    base = np.arange(6.0)
    d = _store_kinds(cls.empty(types.int64, types.float64[:]), base)
    base[2] = 100.0  # visible through every stored view of base, not through copies
    want = {
        0: [0.0, 1.0, 100.0, 3.0, 4.0, 5.0],
        1: [0.0, 100.0, 4.0],
        2: [1.0, 100.0],
        3: [0.0, 1.0, 2.0, 3.0],
        4: [],
        5: [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
    }
    assert {k: list(v) for k, v in d.items()} == want
    assert d[0] is base  # numba boxes an array with a parent as that parent
    d[1][0] = -1.0  # writing through the stored view writes base
    assert base[0] == -1.0
    assert d[1].strides == (16,) and d[2].flags.c_contiguous


@njit
def _read_sum(d, n):
    s = 0.0
    for i in range(n):
        a = d[i]
        s += a.sum() + a.size
    return s


def test_record_arrays_round_trip():
    d = Dict.empty(types.int64, numba.from_dtype(REC)[:])

    @njit
    def fill(d):
        for i in range(3):
            a = np.zeros(i + 1, dtype=REC)
            a[0].a = i
            d[i] = a

    fill(d)
    assert [(len(d[i]), int(d[i][0]["a"])) for i in range(3)] == [(1, 0), (2, 1), (3, 2)]


def test_a_view_stored_again_is_not_wrapped_again():
    base = np.arange(10.0)
    d = Dict.empty(types.int64, types.float64[:])

    @njit
    def restore(d, m):
        for i in range(m):
            d[i + 1] = d[i]  # the view MemInfo read back is stored as it is

    d[0] = base[::3]  # one view MemInfo (and the interpreter's MemInfo of base)
    before = _mi_count()
    restore(d, 50)
    assert _mi_count() == before  # no MemInfo was made
    assert all(list(d[i]) == [0.0, 3.0, 6.0, 9.0] for i in range(51))


def test_copy_merge_and_iteration_keep_views():
    base = np.arange(8.0)
    d = Dict.empty(types.int64, types.float64[:])
    for i in range(4):
        d[i] = base[i : i + 2]
    e = d.copy()
    m = Dict.empty(types.int64, types.float64[:])
    m.update(d)
    base[:] = -base
    for x in (d, e, m):
        assert {k: list(v) for k, v in x.items()} == {
            i: [-float(i), -float(i + 1)] for i in range(4)
        }
    assert _read_sum(e, 4) == sum(-(2 * i + 1) + 2 for i in range(4))


@njit(parallel=True)
def _prange_views(d, base, n):
    for i in prange(n):
        d[i] = base[i % 7 : i % 7 + 3]  # a view per store: a view MemInfo each (base is borrowed)


@njit(parallel=True)
def _prange_fresh(d, n):
    for i in prange(n):
        a = np.empty(2)
        a[0] = i
        a[1] = 0.5 * i
        d[i] = a


@njit(parallel=True)
def _prange_slices(d, n):
    for i in prange(n):
        a = np.arange(4.0) + i
        d[i] = a[1:3]  # a slice of an array the body owns: a view MemInfo per store


def test_prange_stores_of_views_and_of_fresh_arrays_are_exact():
    m = 20_000
    s = Dict.empty(types.int64, types.float64[:])
    _prange_slices(s, m)
    assert len(s) == m and all(list(s[i]) == [i + 1.0, i + 2.0] for i in range(m))

    n = 20_000
    base = np.arange(10.0)
    d = Dict.empty(types.int64, types.float64[:])
    _prange_views(d, base, n)
    assert len(d) == n
    assert all(list(d[i]) == list(base[i % 7 : i % 7 + 3]) for i in range(0, n, 997))
    e = Dict.empty(types.int64, types.float64[:])
    _prange_fresh(e, n)
    assert len(e) == n and all(list(e[i]) == [i, 0.5 * i] for i in range(n))
    # replacing every value frees the replaced ones (no_leaks checks the balance at the end)
    _prange_fresh(d, n)
    assert all(list(d[i]) == [i, 0.5 * i] for i in range(n))


def test_an_interpreter_array_stored_under_many_keys_makes_one_view():
    v = np.array([0.1, 0.2], dtype=np.float32)
    d = Dict.empty(F64, types.float32[:])

    @njit
    def fill(d, v, n):
        for i in range(n):
            d[float(i)] = v

    fill(d, v, 2)  # compiled; the thread's last view is v's
    before = _mi_count()
    fill(d, v, 1000)
    assert _mi_count() - before == 0  # v's view MemInfo, made by the first call, is shared
    assert len(d) == 1000 and all(d[float(i)] is v for i in (0, 500, 999))
    w = np.array([1.0, 2.0], dtype=np.float32)
    fill(d, w, 10)  # another array: one more view, which replaces v's as the thread's last
    assert d[0.0] is w and d[10.0] is v
    d.clear()  # drops the remembered view too (no_leaks checks the balance)
