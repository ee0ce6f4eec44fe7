"""The jitted functions the interpreter's Dict runs: one small function per operation, each nogil,
so interpreter threads run them in parallel; bulk operations are the jitted methods themselves
(numba/bulk.py), so both sides share one binding.

Helpers that miss return None instead of raising: a jitted function that raises leaks the
references it held (numba does not unwind them; typed.Dict leaks the same way), so the
interpreter-side KeyError is raised in Python. None cannot be a stored value.
"""

import operator
import re

from numba import njit, typeof
from numba.core import types
from numba.core.errors import TypingError

from . import _cache, _ext
from .numba.abi import Result
from .numba.abi import c_popitem as _c_popitem
from .numba.dictobject import new_dict
from .numba.group import group_indices as _group_indices

_FOUND = int(Result.FOUND)


_cache.install()


def _helper(fn):
    # Cached on disk (see _cache.py): a second process loads instead of compiling.
    return njit(nogil=True, cache=True)(fn)


make = _helper(lambda dty, n_keys: new_dict(dty, n_keys))
length = _helper(lambda d: len(d))
getitem = _helper(lambda d, k: d.get(k, None))
pop = _helper(lambda d, k: d.pop(k, None))
setitem = _helper(lambda d, k, v: operator.setitem(d, k, v))
contains = _helper(lambda d, k: k in d)
get = _helper(lambda d, k, default: d.get(k, default))
setdefault = _helper(lambda d, k, v: d.setdefault(k, v))
insert = _helper(lambda d, k, v: d.insert(k, v))
add = _helper(lambda d, k, v: d.add(k, v))
min_ = _helper(lambda d, k, v: d.min(k, v))
max_ = _helper(lambda d, k, v: d.max(k, v))
clear = _helper(lambda d: d.clear())
reserve = _helper(lambda d, n: d.reserve(n))
copy = _helper(lambda d: d.copy())
update = _helper(lambda d, other: d.update(other))
keys = _helper(lambda d: [k for k in d.keys()])
values = _helper(lambda d: [v for v in d.values()])
items = _helper(lambda d: [(k, v) for k, v in d.items()])
equal = _helper(lambda a, b: a == b)
to_arrays = _helper(lambda d: d.to_arrays())
split = _helper(lambda d, n: d.split(n))
# bulk: the jitted methods themselves
set_many = _helper(lambda d, keys, values, threads: d.set_many(keys, values, threads))
add_many = _helper(lambda d, keys, values, threads: d.add_many(keys, values, threads))
min_many = _helper(lambda d, keys, values, threads: d.min_many(keys, values, threads))
max_many = _helper(lambda d, keys, values, threads: d.max_many(keys, values, threads))
count_many = _helper(lambda d, keys, threads: d.count_many(keys, threads))
get_many = _helper(lambda d, keys, default, threads: d.get_many(keys, default, threads))
contains_many = _helper(lambda d, keys, threads: d.contains_many(keys, threads))
group_indices = _helper(lambda keys, threads: _group_indices(keys, threads))


@njit(nogil=True, cache=True)
def popitem(d):
    st, k, v = _c_popitem(d)
    if st == _FOUND:
        return (k, v)
    return None


@njit(nogil=True, cache=True)
def to_typed(d, td):
    for k, v in d.items():
        td[k] = v
    return td


@njit(nogil=True, cache=True)
def edges(d, k):
    """The first k and the last k items (repr of a large dict): a whole walk in jitted code."""
    n = len(d)
    out = []
    i = 0
    for kv in d.items():
        if i < k or i >= n - k:
            out.append(kv)
        i += 1
    return out


def _merger(op):
    # One helper per op: merge's op must be a constant in jitted code.
    return _helper(lambda d, other, threads: d.merge(other, op, threads))


MERGE = {op: _merger(op) for op in ("assign", "add", "min", "max")}


# ---- calling them --------------------------------------------------------------------------------
# Interpreter calls whose arguments are plain Python scalars skip numba's dispatcher (typing the
# arguments costs more than the call): after the first call, the compiled entry point for
# (helper, dict type, argument Python types) is kept here.
_SCALAR_TYPES = {
    int: types.int64,
    float: types.float64,
    str: types.unicode_type,
    bool: types.boolean,
}
_entry_points: dict[tuple, object] = {}
_keep_types: set[types.Type] = set()  # the types whose ids key _entry_points stay alive


class DictTypeError(TypingError, TypeError):
    """A key or value of the wrong type for a pardict.Dict, from the interpreter: a TypeError,
    and numba's TypingError, which typed.Dict raises for the same mistake (so `except` clauses
    written for either keep working)."""


NO_ENTRY = object()
_REASON = re.compile(r"raised a specific error:\s*\n\s*\w*Error: ([^\n]*)")


def _remember_entry_point(fn, d, args):
    sig = (d._dict_type,) + tuple(_SCALAR_TYPES.get(type(a)) for a in args)
    if None not in sig:
        cres = fn.overloads.get(sig)
        if cres is not None:
            # id(): numba interns type instances, and hashing a numba type is slow.
            key = (fn, id(d._dict_type)) + tuple(type(a) for a in args)
            _entry_points[key] = cres.entry_point
            _keep_types.add(d._dict_type)


def entry_call(d, fn, *args):
    """fn(d, *args) through its remembered entry point, or NO_ENTRY when there is none yet (or
    an argument does not fit it, e.g. an int beyond int64: the dispatcher must type it)."""
    ep = _entry_points.get((fn, id(d._dict_type), *map(type, args)))
    if ep is None:
        return NO_ENTRY
    _ext.check_table(d._table)
    try:
        return ep(d, *args)
    except OverflowError:
        return NO_ENTRY
    except MemoryError:
        _forget_alloc_failures(d)
        raise


def _forget_alloc_failures(d):
    """After a MemoryError that reached the caller: the failures it reports are not reported
    again by the next call's check_table."""
    if d._table:
        _ext.take_alloc_failures(d._table)


def typed_call(d, fn, *args):
    """Run a jitted helper; a typing failure of the arguments becomes a TypeError that names the
    dictionary's key and value types (numba's own message follows)."""
    _ext.check_table(d._table)
    try:
        out = fn(d, *args)
    except MemoryError:
        _forget_alloc_failures(d)
        raise
    except TypingError as e:
        ty = d._dict_type
        got = ", ".join(_type_name(a) for a in args)
        # numba's message nests the reason an overload gave under several lines of resolution
        # history; the first one is what the caller needs (with literal arguments, the reason
        # given for them comes first).
        reasons = [r for r in _REASON.findall(str(e)) if not r.startswith("Failed in ")]
        raise DictTypeError(
            f"pardict.Dict[{ty.key_type}, {ty.value_type}]: cannot use ({got}) "
            f"here; keys must be {ty.key_type} and values {ty.value_type}"
            f"\n{reasons[0] if reasons else e}"
        ) from None
    _remember_entry_point(fn, d, args)
    return out


def _type_name(x):
    try:
        return str(typeof(x))
    except Exception:
        return type(x).__name__
