"""Stateful property tests: pardict.Dict against a plain dict model.

Every rule runs either through the interpreter API or through a module-level jitted function (the
`via` argument), so interpreter and jitted code interleave on one table. Keys come from a small
set, so collisions, re-insertions after deletion and replacement happen often.
"""

import gc

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from numba import njit, typed
from numba.core import types

import pardict

# ---- jitted operations (module level: compiled once per type signature) ---------------------------


@njit
def nj_new_int():
    return pardict.Dict.empty(types.int64, types.int64)


@njit
def nj_new_str():
    return pardict.Dict.empty(types.unicode_type, types.unicode_type)


@njit
def nj_setitem(d, k, v):
    d[k] = v


@njit
def nj_getitem(d, k):
    return d[k]


@njit
def nj_delitem(d, k):
    del d[k]


@njit
def nj_pop(d, k):
    return d.pop(k)


@njit
def nj_pop_default(d, k, dflt):
    return d.pop(k, dflt)


@njit
def nj_popitem(d):
    return d.popitem()


@njit
def nj_setdefault(d, k, v):
    return d.setdefault(k, v)


@njit
def nj_insert(d, k, v):
    return d.insert(k, v)


@njit
def nj_get(d, k, dflt):
    return d.get(k, dflt)


@njit
def nj_contains(d, k):
    return k in d


@njit
def nj_len(d):
    return len(d)


@njit
def nj_clear(d):
    d.clear()


@njit
def nj_copy(d):
    return d.copy()


@njit
def nj_update(d, other):
    d.update(other)


@njit
def nj_keys(d):
    out = []
    for k in d:
        out.append(k)
    return out


@njit
def nj_items(d):
    return [(k, v) for k, v in d.items()]


@njit
def nj_values(d):
    return [v for v in d.values()]


@njit
def nj_eq(a, b):
    return a == b


VIA = st.sampled_from(["py", "jit"])


def make_machine(key_type, value_type, keys, values, nj_new):
    class DictMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            gc.collect()
            self.live0 = (pardict.live_dicts(), pardict.live_refs())
            self.raised = False  # a jitted operation raised (numba leaks its references then)
            self.model = {}
            self.d = None

        def fresh(self, via):
            return pardict.Dict.empty(key_type, value_type) if via == "py" else nj_new()

        @precondition(lambda self: self.d is None)
        @rule(via=VIA)
        def create(self, via):
            self.d = self.fresh(via)
            assert len(self.d) == 0

        def check_equal(self, d, model):
            assert len(d) == len(model)
            assert d.to_dict() == model

        @precondition(lambda self: self.d is not None)
        @rule(k=keys, v=values, via=VIA)
        def setitem(self, k, v, via):
            if via == "py":
                self.d[k] = v
            else:
                nj_setitem(self.d, k, v)
            self.model[k] = v

        @precondition(lambda self: self.d is not None)
        @rule(k=keys, via=VIA)
        def getitem(self, k, via):
            if k in self.model:
                got = self.d[k] if via == "py" else nj_getitem(self.d, k)
                assert got == self.model[k]
            else:
                self.raised = True
                with pytest.raises(KeyError):
                    self.d[k] if via == "py" else nj_getitem(self.d, k)

        @precondition(lambda self: self.d is not None)
        @rule(k=keys, via=VIA)
        def delitem(self, k, via):
            if k in self.model:
                if via == "py":
                    del self.d[k]
                else:
                    nj_delitem(self.d, k)
                del self.model[k]
            else:
                self.raised = True
                with pytest.raises(KeyError):
                    if via == "py":
                        del self.d[k]
                    else:
                        nj_delitem(self.d, k)

        @precondition(lambda self: self.d is not None)
        @rule(k=keys, dflt=values, via=VIA, with_default=st.booleans())
        def pop(self, k, dflt, via, with_default):
            if with_default:
                if via == "py":
                    if k not in self.model:
                        self.raised = True  # the interpreter pop raises inside jitted code
                    got = self.d.pop(k, dflt)
                else:
                    got = nj_pop_default(self.d, k, dflt)
                assert got == self.model.pop(k, dflt)
            elif k in self.model:
                got = self.d.pop(k) if via == "py" else nj_pop(self.d, k)
                assert got == self.model.pop(k)
            else:
                self.raised = True
                with pytest.raises(KeyError):
                    self.d.pop(k) if via == "py" else nj_pop(self.d, k)

        @precondition(lambda self: self.d is not None)
        @rule(via=VIA)
        def popitem(self, via):
            if not self.model:
                self.raised = True
                with pytest.raises(KeyError):
                    self.d.popitem() if via == "py" else nj_popitem(self.d)
                return
            k, v = self.d.popitem() if via == "py" else nj_popitem(self.d)
            assert k in self.model, f"popitem returned key {k!r} that is not in the dict"
            assert self.model.pop(k) == v

        @precondition(lambda self: self.d is not None)
        @rule(k=keys, v=values, via=VIA)
        def setdefault(self, k, v, via):
            got = self.d.setdefault(k, v) if via == "py" else nj_setdefault(self.d, k, v)
            assert got == self.model.setdefault(k, v)

        @precondition(lambda self: self.d is not None)
        @rule(k=keys, v=values, via=VIA)
        def insert(self, k, v, via):
            got = self.d.insert(k, v) if via == "py" else nj_insert(self.d, k, v)
            assert got == (k not in self.model)
            self.model.setdefault(k, v)

        @precondition(lambda self: self.d is not None)
        @rule(k=keys, dflt=values, via=VIA)
        def get(self, k, dflt, via):
            got = self.d.get(k, dflt) if via == "py" else nj_get(self.d, k, dflt)
            assert got == self.model.get(k, dflt)
            if via == "py":
                assert self.d.get(k) == self.model.get(k)

        @precondition(lambda self: self.d is not None)
        @rule(k=keys, via=VIA)
        def contains(self, k, via):
            got = (k in self.d) if via == "py" else nj_contains(self.d, k)
            assert got == (k in self.model)

        @precondition(lambda self: self.d is not None)
        @rule(via=VIA)
        def length(self, via):
            assert (len(self.d) if via == "py" else nj_len(self.d)) == len(self.model)

        @precondition(lambda self: self.d is not None)
        @rule(via=VIA)
        def clear(self, via):
            if via == "py":
                self.d.clear()
            else:
                nj_clear(self.d)
            self.model.clear()

        @precondition(lambda self: self.d is not None)
        @rule(k=keys, v=values, via=VIA)
        def copy(self, k, v, via):
            c = self.d.copy() if via == "py" else nj_copy(self.d)
            assert isinstance(c, pardict.Dict)
            self.check_equal(c, self.model)
            assert nj_eq(c, self.d) and c == self.d and c == self.model
            # the copy is independent in both directions
            c[k] = v
            mc = dict(self.model)
            mc[k] = v
            self.check_equal(c, mc)
            self.check_equal(self.d, self.model)
            assert nj_eq(c, self.d) == (mc == self.model)
            self.d.setdefault(k, v)
            self.model.setdefault(k, v)
            self.check_equal(c, mc)

        @precondition(lambda self: self.d is not None)
        @rule(
            pairs=st.dictionaries(keys, values, max_size=6),
            source=st.sampled_from(["py-dict", "py-pardict", "jit-pardict", "jit-typed"]),
        )
        def update(self, pairs, source):
            if source == "py-dict":
                self.d.update(pairs)
            else:
                other = (
                    typed.Dict.empty(key_type, value_type)
                    if source == "jit-typed"
                    else self.fresh("py")
                )
                for k, v in pairs.items():
                    other[k] = v
                if source == "py-pardict":
                    self.d.update(other)
                else:
                    nj_update(self.d, other)
            self.model.update(pairs)

        @precondition(lambda self: self.d is not None)
        @rule(via=VIA)
        def iterate(self, via):
            if via == "py":
                ks, items, vals = list(self.d), list(self.d.items()), list(self.d.values())
                assert list(self.d.keys()) == ks or sorted(map(repr, self.d.keys())) == sorted(
                    map(repr, ks)
                )
            else:
                ks, items, vals = nj_keys(self.d), nj_items(self.d), nj_values(self.d)
                ks, items, vals = list(ks), list(items), list(vals)
            assert len(ks) == len(set(ks)) == len(self.model), "keys repeated or missing"
            assert set(ks) == set(self.model)
            assert len(items) == len(self.model) and dict(items) == self.model
            assert sorted(vals, key=repr) == sorted(self.model.values(), key=repr)

        @invariant()
        def matches_model(self):
            if self.d is not None:
                self.check_equal(self.d, self.model)

        def teardown(self):
            self.d = None
            gc.collect()
            if not self.raised:  # see test_failed_operation_does_not_leak_the_table
                assert (pardict.live_dicts(), pardict.live_refs()) == self.live0, (
                    "tables or references leaked"
                )

    return DictMachine


SETTINGS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

INT_KEYS = st.integers(-3, 12)
INT_VALUES = st.one_of(st.integers(-1000, 1000), st.sampled_from([-(2**63), 2**63 - 1]))
STR_KEYS = st.sampled_from(["", "a", "b", "ab", "ba", "é", "日本", "🙂", "k" * 40])
STR_VALUES = st.text(alphabet="xyé日🙂", max_size=6)

IntMachine = make_machine(types.int64, types.int64, INT_KEYS, INT_VALUES, nj_new_int)
StrMachine = make_machine(types.unicode_type, types.unicode_type, STR_KEYS, STR_VALUES, nj_new_str)

TestIntDict = IntMachine.TestCase
TestIntDict.settings = SETTINGS
TestStrDict = StrMachine.TestCase
TestStrDict.settings = SETTINGS


# ---- references released on failing operations -------------------------------------------------


def _miss_getitem(d):
    d[99]


def _miss_delitem(d):
    del d[99]


def _miss_pop(d):
    d.pop(99)


def _miss_pop_default(d):
    assert d.pop(99, 7) == 7


def _empty_popitem(d):
    d.clear()
    d.popitem()


@pytest.mark.parametrize(
    "op", [_miss_getitem, _miss_delitem, _miss_pop, _miss_pop_default, _empty_popitem]
)
def test_failed_operation_does_not_leak_the_table(op):
    """An operation that fails (KeyError) must not keep the table alive after the Dict is gone."""
    gc.collect()
    live0 = (pardict.live_dicts(), pardict.live_refs())
    d = pardict.Dict.empty(types.int64, types.int64)
    d[1] = 2
    try:
        op(d)
    except KeyError:
        pass
    del d
    gc.collect()
    assert (pardict.live_dicts(), pardict.live_refs()) == live0, (
        f"{op.__name__}: the table outlived its last Dict (live_dicts, live_refs) "
        f"{(pardict.live_dicts(), pardict.live_refs())} != {live0}"
    )
