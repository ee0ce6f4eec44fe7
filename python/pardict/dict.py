"""pardict.Dict: the interpreter-side proxy of a pardict table.

It mirrors numba.typed.Dict: the object holds the NRT MemInfo that owns the C++ table, jitted
functions receive the same table (unboxing shares it; boxing wraps it again), and each
interpreter-side operation runs one small jitted helper. Whole-table reads (iteration, keys(),
values(), items(), dict(d) via items) cost one jitted call for all elements.
"""

import ctypes
import warnings
from abc import ABCMeta
from collections.abc import ItemsView, KeysView, Mapping, MutableMapping, ValuesView

import numba
import numpy as np
from numba import njit, prange
from numba.core import types
from numba.core.errors import NumbaTypeSafetyWarning, TypingError
from numba import typeof

from . import _ext
from .numba import boxing
from .numba.dictobject import _popitem as _popitem_raw
from .numba.dictobject import _COMBINE_STATUS, _combinable, new_dict
from .numba.dictobject import _set as _set_raw
from .numba.dictobject import update as _pardict_update
from .numba.types import DictType, _as_type

__all__ = ["Dict"]


class _DictMeta(ABCMeta):
    """Metaclass, so that numba can recognise the class itself as a global (Dict.empty in njit)."""


# ---- jitted helpers (one per operation; nogil so that interpreter threads run in parallel) ------


@njit(nogil=True)
def _make(dty, n_keys):
    return new_dict(dty, n_keys)


@njit(nogil=True)
def _len(d):
    return len(d)


# Helpers that miss return None instead of raising: a jitted function that raises leaks the
# references it held (numba does not unwind them; typed.Dict leaks the same way), so the
# interpreter-side KeyError is raised here, in Python. None cannot be a stored value.
@njit(nogil=True)
def _getitem(d, k):
    return d.get(k, None)


@njit(nogil=True)
def _pop_opt(d, k):
    return d.pop(k, None)


@njit(nogil=True)
def _popitem_opt(d):
    st, k, v = _popitem_raw(d)
    if st == 1:
        return (k, v)
    return None


@njit(nogil=True)
def _setitem(d, k, v):
    d[k] = v


@njit(nogil=True)
def _add(d, k, v):
    return d.add(k, v)


@njit(nogil=True)
def _min(d, k, v):
    return d.min(k, v)


@njit(nogil=True)
def _max(d, k, v):
    return d.max(k, v)


@njit(nogil=True)
def _contains(d, k):
    return k in d


@njit(nogil=True)
def _get(d, k, default):
    return d.get(k, default)


@njit(nogil=True)
def _setdefault(d, k, v):
    return d.setdefault(k, v)


@njit(nogil=True)
def _insert(d, k, v):
    return d.insert(k, v)


@njit(nogil=True)
def _clear(d):
    d.clear()


@njit(nogil=True)
def _reserve(d, n):
    d.reserve(n)


@njit(nogil=True)
def _copy(d):
    return d.copy()


@njit(nogil=True)
def _update(d, other):
    d.update(other)


@njit(nogil=True)
def _keys(d):
    return [k for k in d.keys()]


@njit(nogil=True)
def _values(d):
    return [v for v in d.values()]


@njit(nogil=True)
def _items(d):
    return [(k, v) for k, v in d.items()]


@njit(nogil=True)
def _to_arrays(d):
    return d.to_arrays()


@njit(nogil=True)
def _merge_assign(d, o):
    return d.merge(o, "assign")


@njit(nogil=True)
def _merge_add(d, o):
    return d.merge(o, "add")


@njit(nogil=True)
def _merge_min(d, o):
    return d.merge(o, "min")


@njit(nogil=True)
def _merge_max(d, o):
    return d.merge(o, "max")


_MERGE = {"assign": (-1, _merge_assign), "add": (0, _merge_add), "min": (1, _merge_min),
          "max": (2, _merge_max)}


# String keys hold references (numba strings), so they cannot take the byte-blob C++ bulk path.
# Lookups (get_many, contains_many) and add/min/max/count go through C++ paths that read the
# NumPy unicode array in place (_lookup, _combine_str); storing new keys needs numba strings, so
# set_many and the words those paths hand back are prange loops here, one atomic operation per
# element, with the GIL released.
@njit(parallel=True, nogil=True)
def _str_set_many(d, keys, values):
    new = 0
    failed = 0  # a raise inside the loop would make numba run it serially
    for i in prange(keys.size):
        st = _set_raw(d, str(keys[i]), values[i])
        if st < 0:
            failed += 1
        elif st == 0:
            new += 1
    if failed:
        raise MemoryError("pardict: a bulk operation could not store every key")
    return new


def _str_combiner(op):
    # Through dictobject's combine_status: a borrowed view of each NumPy string element finds
    # existing keys without building a numba string first.
    combine = _COMBINE_STATUS[op]

    @njit(parallel=True, nogil=True)
    def run(d, keys, values):
        new = 0
        failed = 0  # a raise inside the loop would make numba run it serially
        for i in prange(keys.size):
            st, _ = combine(d, keys[i], values[i])
            if st < 0:
                failed += 1
            elif st == 1:
                new += 1
        if failed:
            raise MemoryError("pardict: a bulk operation could not store every key")
        return new

    return run


_STR_COMBINE = {-1: _str_set_many, 0: _str_combiner("add"), 1: _str_combiner("min"),
                2: _str_combiner("max")}


@njit
def _update_helper(d, key, fn, default):
    return _pardict_update(d, key, fn, default)


@njit(nogil=True)
def _equal(a, b):
    return a == b


@njit
def _set_many_from_lists(d, ks, vs):
    for i in range(len(ks)):
        d[ks[i]] = vs[i]


@njit(nogil=True)
def _to_typed(d, td):
    for k, v in d.items():
        td[k] = v
    return td


# Interpreter calls whose arguments are plain Python scalars skip numba's dispatcher (typing the
# arguments costs more than the call): after the first call, the compiled entry point for
# (helper, dict type, argument Python types) is kept here.
_SCALAR_TYPES = {int: types.int64, float: types.float64, str: types.unicode_type,
                 bool: types.boolean}
_entry_points = {}
_keep_types = set()  # the types whose ids key _entry_points stay alive


def _remember_entry_point(fn, d, args):
    sig = (d._dict_type,) + tuple(_SCALAR_TYPES.get(type(a)) for a in args)
    if None not in sig:
        cres = fn.overloads.get(sig)
        if cres is not None:
            # id(): numba interns type instances, and hashing a numba type is slow.
            key = (fn, id(d._dict_type)) + tuple(type(a) for a in args)
            _entry_points[key] = cres.entry_point
            _keep_types.add(d._dict_type)


_NO_ENTRY = object()


def _entry_call(d, fn, *args):
    """fn(d, *args) through its remembered entry point, or _NO_ENTRY when there is none yet (or
    an argument does not fit it, e.g. an int beyond int64: the dispatcher must type it)."""
    ep = _entry_points.get((fn, id(d._dict_type), *map(type, args)))
    if ep is None:
        return _NO_ENTRY
    try:
        return ep(d, *args)
    except OverflowError:
        return _NO_ENTRY


def _typed_call(d, fn, *args):
    """Run a jitted helper; a typing failure of the arguments becomes a TypeError that names the
    dictionary's key and value types (numba's own message follows)."""
    try:
        out = fn(d, *args)
    except TypingError as e:
        ty = d._dict_type
        got = ", ".join(_type_name(a) for a in args)
        raise TypeError(f"pardict.Dict[{ty.key_type}, {ty.value_type}]: cannot use ({got}) "
                        f"here; keys must be {ty.key_type} and values {ty.value_type}"
                        f"\n{e}") from None
    _remember_entry_point(fn, d, args)
    return out


def _type_name(x):
    try:
        return str(typeof(x))
    except Exception:
        return type(x).__name__


def _from_meminfo(mi, dict_type):
    """Called by boxing: wrap a MemInfo (reference included) in a new Dict."""
    return Dict(dcttype=dict_type, meminfo=mi)


def _infer(obj, what):
    try:
        ty = typeof(obj)
    except Exception:
        ty = None
    if ty is None or isinstance(ty, types.PyObject):
        raise TypeError(f"cannot infer a numba type for the {what} {obj!r}")
    if isinstance(ty, types.Array):
        ty = ty.copy(layout="A", readonly=False)
    return types.unliteral(ty)


class Dict(MutableMapping, metaclass=_DictMeta):
    """A typed dictionary, safe under concurrent use from threads and prange.

    Dict.empty(key_type, value_type, n_keys=0) makes an empty one; Dict(pairs_or_mapping) types
    itself from the first pair; Dict() is untyped until its first assignment.
    """

    def __init__(self, *args, dcttype=None, meminfo=None, n_keys=0, **kwargs):
        self._opaque = None
        self._dict_type = None
        if meminfo is not None:
            self._dict_type = dcttype
            self._opaque = meminfo
            return
        if dcttype is not None:
            self._open(dcttype, n_keys)
        if len(args) > 1:
            raise TypeError(f"Dict expected at most 1 positional argument, got {len(args)}")
        if args or kwargs:
            self.update(*args, **kwargs)

    def _open(self, dcttype, n_keys=0):
        if not isinstance(dcttype, DictType):
            raise TypeError(f"expected a pardict.DictType, got {dcttype!r}")
        if not isinstance(n_keys, int) or isinstance(n_keys, bool):
            raise TypeError(f"n_keys must be an int, got {type(n_keys).__name__}")
        if n_keys < 0:
            raise ValueError("n_keys must be non-negative")
        dcttype.layouts  # raises TypingError for too-large types before compiling anything
        d = _make(dcttype, n_keys)
        self._dict_type = dcttype
        self._opaque = d._opaque

    @classmethod
    def empty(cls, key_type, value_type, n_keys=0):
        """An empty Dict for the given numba key and value types, presized for n_keys."""
        return cls(dcttype=DictType(_as_type(key_type), _as_type(value_type)), n_keys=n_keys)

    # ---- typing ---------------------------------------------------------------------------------

    @property
    def _numba_type_(self):
        if self._dict_type is None:
            raise TypeError("invalid operation on untyped dictionary")
        return self._dict_type

    @property
    def _typed(self):
        return self._dict_type is not None

    @property
    def key_type(self):
        return self._numba_type_.key_type

    @property
    def value_type(self):
        return self._numba_type_.value_type

    def _ensure_typed(self, key, value):
        if self._dict_type is None:
            self._open(DictType(_infer(key, "key"), _infer(value, "value")))

    def _handle(self):
        return ctypes.c_void_p.from_address(self._opaque.data).value

    # ---- mapping API ---------------------------------------------------------------------------------

    def __getitem__(self, key):
        v = _entry_call(self, _getitem, key)
        if v is _NO_ENTRY:
            if not self._typed:
                raise KeyError(key)
            v = _typed_call(self, _getitem, key)
        if v is None:
            raise KeyError(key)
        return v

    def __setitem__(self, key, value):
        if _entry_call(self, _setitem, key, value) is _NO_ENTRY:
            self._ensure_typed(key, value)
            _typed_call(self, _setitem, key, value)

    def __delitem__(self, key):
        if not self._typed or _typed_call(self, _pop_opt, key) is None:
            raise KeyError(key)

    def __contains__(self, key):
        found = _entry_call(self, _contains, key)
        if found is not _NO_ENTRY:
            return found
        if not self._typed:
            return False
        return _typed_call(self, _contains, key)

    def __len__(self):
        return _len(self) if self._typed else 0

    def __iter__(self):
        if not self._typed:
            return iter(())
        return self._watched(_keys)

    def _watched(self, snapshot):
        # The snapshot is taken after the watch opens, so a key change by this thread while the
        # loop runs is seen, as CPython's "dictionary changed size during iteration".
        watch = _ext.watch_new(self._handle())
        try:
            elems = snapshot(self)
        except BaseException:
            _ext.watch_free(watch)
            raise
        return _ext.WatchedIter(elems, watch, self)

    def keys(self):
        return _KeysView(self)

    def values(self):
        return _ValuesView(self)

    def items(self):
        return _ItemsView(self)

    def get(self, key, default=None):
        if not self._typed:
            return default
        return _typed_call(self, _get, key, default)

    def pop(self, key, *default):
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")
        if not self._typed:
            if default:
                return default[0]
            raise KeyError(key)
        v = _typed_call(self, _pop_opt, key)
        if v is None:
            if default:
                return default[0]
            raise KeyError(key)
        return v

    def popitem(self):
        kv = _popitem_opt(self) if self._typed else None
        if kv is None:
            raise KeyError("popitem(): dictionary is empty")
        return kv

    def setdefault(self, key, default=None):
        """Atomic: inserts default when key is absent; returns the stored value."""
        if default is None:
            if self._typed:
                v = _typed_call(self, _getitem, key)
                if v is not None:
                    return v
            raise TypeError("pardict.Dict cannot store None; pass a default of the value type")
        self._ensure_typed(key, default)
        return _typed_call(self, _setdefault, key, default)

    def insert(self, key, value):
        """Insert only if absent (atomic). Returns whether it inserted."""
        self._ensure_typed(key, value)
        return _typed_call(self, _insert, key, value)

    # ---- atomic read-modify-write (numeric values: scalars and tuples of them) ------------------

    def _combine(self, fn, key, value):
        if (self._typed and not _combinable(self.value_type)
                and not isinstance(self.value_type, types.Array)):
            raise TypeError(f"pardict.Dict.{fn.__name__[1:]} needs numeric values (integers, "
                            f"floats, or tuples of them); this dict stores {self.value_type}")
        out = _entry_call(self, fn, key, value)
        if out is not _NO_ENTRY:
            return out
        self._ensure_typed(key, value)
        return _typed_call(self, fn, key, value)

    def add(self, key, value):
        """One atomic step: store value when key is absent, else add it to the stored value
        (tuples field by field; integers wrap around). Returns the stored result."""
        return self._combine(_add, key, value)

    def min(self, key, value):
        """One atomic step: store value when key is absent, else keep the smaller (field by field;
        a NaN never replaces). Returns the stored result."""
        return self._combine(_min, key, value)

    def max(self, key, value):
        """As min(), keeping the larger."""
        return self._combine(_max, key, value)

    # ---- bulk operations on NumPy arrays (numeric scalar keys and values) ----------------------
    # Each runs as one C ABI call with the GIL released, split over `threads` threads (default:
    # numba's thread count). Every element operation is atomic; the batch as a whole is not.

    def _bulk_layout(self, need_values=True):
        if not self._typed:
            raise TypeError("bulk operations need a typed pardict.Dict (use Dict.empty or "
                            "Dict.from_arrays)")
        kt, vt = self.key_type, self.value_type
        if _np_dtype(kt) is None and kt != types.unicode_type:
            raise TypeError(f"bulk operations need numeric, bool or str keys; this dict has {kt} "
                            f"keys")
        if need_values and _np_dtype(vt) is None:
            raise TypeError(f"bulk operations need numeric or bool values; this dict stores {vt}")
        return kt, vt

    def _keys_blob(self, keys):
        kt = self.key_type
        if kt == types.unicode_type:
            return _str_keys(keys)
        return _blob(keys, kt, _ext.key_class(_np_dtype(kt).itemsize), "keys")

    def _in_numba_threads(self, threads, fn, *args):
        old = numba.get_num_threads()
        numba.set_num_threads(max(1, min(self._threads(threads), numba.config.NUMBA_NUM_THREADS)))
        try:
            return fn(self, *args)
        finally:
            numba.set_num_threads(old)

    @staticmethod
    def _threads(threads):
        return numba.get_num_threads() if threads is None else int(threads)

    def _combine_many(self, keys, values, op, threads):
        kt, vt = self._bulk_layout()
        kb = self._keys_blob(keys)
        vdt = _np_dtype(vt)
        vals = _convert(values, vt, "values")
        if len(vals) != len(kb):
            raise ValueError(f"keys and values differ in length ({len(kb)} != {len(vals)})")
        fields = self._combine_fields(vt, op)
        if kt == types.unicode_type:
            if op >= 0 and kb.dtype.itemsize > 0:
                return self._combine_str(kb, vals, False, op, fields, threads)
            return self._in_numba_threads(threads, _STR_COMBINE[op], kb, vals)
        vb = _pad(vals, _ext.value_class(vdt.itemsize))
        st, n = _ext.combine_many(self._handle(), kb.ctypes.data, vb.ctypes.data, len(kb), op,
                                  fields.ctypes.data, 1 if op >= 0 else 0, self._threads(threads))
        _check_bulk_status(st)
        return n

    @staticmethod
    def _combine_fields(vt, op):
        """pardict_combine's (offset, kind) of a scalar value; zeros for assignment (op < 0)."""
        fields = np.zeros(2, dtype=np.int32)
        if op >= 0:
            kind = _KINDS.get(_np_dtype(vt).str[1:])
            if kind is None:
                raise TypeError(f"add/min/max need integer or float values; this dict stores {vt}")
            fields[:] = (0, kind)
        return fields

    def _combine_str(self, kb, vals, broadcast, op, fields, threads):
        # C++ aggregates the rows per word (hashing the UCS4 code points in place) and combines
        # the words the dict holds; the words it lacks come back once per worker thread, with a
        # row holding them and their aggregated value, for the jitted combine loop to insert.
        n = len(kb)
        if n == 0:
            return 0
        vdt = vals.dtype
        vc = _ext.value_class(vdt.itemsize)
        vb = _pad(vals, vc)
        miss_rows = np.empty(n, dtype=np.int64)
        miss_vals = np.empty((n, vc), dtype=np.uint8)
        st, m = _ext.combine_many_ucs4(self._handle(), kb.ctypes.data, kb.dtype.itemsize // 4, n,
                                       vb.ctypes.data, 0 if broadcast else vc, op,
                                       fields.ctypes.data, 1, self._threads(threads),
                                       miss_rows.ctypes.data, miss_vals.ctypes.data)
        _check_bulk_status(st)
        if m == 0:
            return 0
        new_vals = miss_vals[:m, : vdt.itemsize].copy().view(vdt).ravel()
        return self._in_numba_threads(threads, _STR_COMBINE[op], kb[miss_rows[:m]], new_vals)

    def set_many(self, keys, values, threads=None):
        """d[k] = v for every pair; returns how many keys were new."""
        return self._combine_many(keys, values, -1, threads)

    def add_many(self, keys, values, threads=None):
        """d.add(k, v) for every pair (group-by sum); returns how many keys were new."""
        return self._combine_many(keys, values, 0, threads)

    def min_many(self, keys, values, threads=None):
        """d.min(k, v) for every pair; returns how many keys were new."""
        return self._combine_many(keys, values, 1, threads)

    def max_many(self, keys, values, threads=None):
        """d.max(k, v) for every pair; returns how many keys were new."""
        return self._combine_many(keys, values, 2, threads)

    def count_many(self, keys, threads=None):
        """Adds the number of occurrences of each key in keys (integer values); returns how many
        keys were new."""
        kt, vt = self._bulk_layout()
        if not isinstance(vt, types.Integer):
            raise TypeError(f"count_many needs integer values; this dict stores {vt}")
        if kt == types.unicode_type:
            kb = self._keys_blob(keys)
            if kb.dtype.itemsize > 0:
                return self._combine_str(kb, np.ones(1, dtype=_np_dtype(vt)), True, 0,
                                         self._combine_fields(vt, 0), threads)
            keys = kb
        n = len(np.asarray(keys))
        return self._combine_many(keys, np.ones(n, dtype=_np_dtype(vt)), 0, threads)

    def get_many(self, keys, default=0, threads=None):
        """An array with d.get(k, default) for every key."""
        kt, vt = self._bulk_layout()
        kb = self._keys_blob(keys)
        vdt = _np_dtype(vt)
        vc = _ext.value_class(vdt.itemsize)
        out = np.full(len(kb), default, dtype=vdt)
        if vdt.itemsize == vc:
            self._lookup(kb, out, None, threads)
            return out
        raw = np.zeros((len(kb), vc), dtype=np.uint8)
        found = np.zeros(len(kb), dtype=np.uint8)
        self._lookup(kb, raw, found, threads)
        hit = found.astype(bool)
        out[hit] = raw[hit, : vdt.itemsize].copy().view(vdt).ravel()
        return out

    def contains_many(self, keys, threads=None):
        """A bool array: whether each key is present."""
        self._bulk_layout(need_values=False)
        kb = self._keys_blob(keys)
        found = np.zeros(len(kb), dtype=np.uint8)
        self._lookup(kb, None, found, threads)
        return found.view(np.bool_)

    def _lookup(self, kb, out, found, threads):
        # C++ bulk lookup with the GIL released, on `threads` workers, writing value blobs of the
        # keys found into out and 0/1 into found (either may be None). str keys are read in place
        # from the NumPy unicode array through borrowed views of their code points.
        if len(kb) == 0:
            return
        ptrs = (0 if out is None else out.ctypes.data, 0 if found is None else found.ctypes.data,
                self._threads(threads))
        if self.key_type == types.unicode_type:
            st, _ = _ext.get_many_ucs4(self._handle(), kb.ctypes.data, kb.dtype.itemsize // 4,
                                       len(kb), *ptrs)
        else:
            st, _ = _ext.get_many(self._handle(), kb.ctypes.data, len(kb), *ptrs)
        _check_bulk_status(st)

    def to_arrays(self):
        """(keys, values) as two NumPy arrays, in the same (unspecified) order (str keys: a
        NumPy unicode array)."""
        kt, vt = self._bulk_layout()
        if kt == types.unicode_type:
            items = _items(self)
            return (np.array([k for k, _ in items], dtype=str),
                    np.array([v for _, v in items], dtype=_np_dtype(vt)))
        return _to_arrays(self)

    def merge(self, other, op="assign", threads=None):
        """Every item of other into self: op='assign' stores it, 'add'/'min'/'max' combine it as
        d.add/min/max do. Returns how many keys were new. The reduction step of per-partition
        dicts: numeric scalar dicts merge in parallel in C++ (`threads`, GIL released), others
        in one jitted loop. Each item is one atomic step; the merge as a whole is not."""
        if op not in _MERGE:
            raise ValueError(f"unknown op {op!r}: use 'assign', 'add', 'min' or 'max'")
        if not isinstance(other, Dict):
            raise TypeError(f"merge needs a pardict.Dict, got {type(other).__name__}")
        if not other._typed:
            return 0
        if not self._typed:
            self._open(other._dict_type)
        code, helper = _MERGE[op]
        if (other._dict_type == self._dict_type and _np_dtype(self.key_type) is not None
                and _np_dtype(self.value_type) is not None
                and (op == "assign" or isinstance(self.value_type, (types.Integer, types.Float)))):
            k, v = other.to_arrays()
            return self._combine_many(k, v, code, threads)
        if op != "assign" and not _combinable(self.value_type):
            raise TypeError(f"merge(op={op!r}) needs numeric values (integers, floats, or tuples "
                            f"of them); this dict stores {self.value_type}")
        return _typed_call(self, helper, other)

    @classmethod
    def from_arrays(cls, keys, values, threads=None):
        """A Dict typed by the arrays' dtypes with d[keys[i]] = values[i]. For a key that occurs
        more than once, the last pair wins with threads=1; with more threads which one wins is
        unspecified."""
        keys, values = np.asarray(keys), np.asarray(values)
        d = cls.empty(_as_type(keys.dtype), _as_type(values.dtype), n_keys=len(keys))
        d.set_many(keys, values, threads=threads)
        return d

    def clear(self):
        if self._typed:
            _clear(self)

    def reserve(self, n):
        """Presize for n elements, so that inserting them does not grow the table."""
        if self._typed:
            _typed_call(self, _reserve, n)

    def update(self, other=(), /, **kwargs):
        if isinstance(other, Dict):
            if other._typed:
                if not self._typed:
                    self._open(other._numba_type_)
                _typed_call(self, _update, other)
        else:
            pairs = other.items() if isinstance(other, Mapping) else other
            for k, v in pairs:
                self[k] = v
        for k, v in kwargs.items():
            self[k] = v

    def copy(self):
        if not self._typed:
            return Dict()
        return _copy(self)

    def __eq__(self, other):
        if isinstance(other, Dict):
            if not (self._typed and other._typed):
                return len(self) == len(other)
            if self._numba_type_ == other._numba_type_:
                return _equal(self, other)
        if not isinstance(other, Mapping):
            return NotImplemented
        if len(self) != len(other):
            return False
        for k, v in self.items():
            try:
                if other[k] != v:
                    return False
            except KeyError:
                return False
        return True

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None

    def __repr__(self):
        body = "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self.items()) + "}"
        return f"pardict.Dict[{self._dict_type.key_type},{self._dict_type.value_type}]({body})" \
            if self._typed else "pardict.Dict[untyped]({})"

    def __str__(self):
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self.items()) + "}"

    # ---- conversions and pickling ------------------------------------------------------------------

    def to_dict(self):
        """A plain dict with the same items (one jitted call)."""
        return dict(_items(self)) if self._typed else {}

    def to_typed(self):
        """A numba.typed.Dict with the same items."""
        from numba.typed import Dict as TypedDict

        td = TypedDict.empty(self.key_type, self.value_type)
        return _to_typed(self, td)

    @classmethod
    def from_typed(cls, td):
        """A pardict.Dict with the items of a numba.typed.Dict."""
        ty = td._numba_type_
        d = cls.empty(ty.key_type, ty.value_type, n_keys=len(td))
        _update(d, td)
        return d

    @classmethod
    def from_dict(cls, mapping, key_type=None, value_type=None):
        """A pardict.Dict with the items of a mapping; types inferred from the first item unless
        given."""
        if key_type is not None and value_type is not None:
            d = cls.empty(key_type, value_type, n_keys=len(mapping))
        elif key_type is None and value_type is None:
            d = cls()
        else:
            raise TypeError("give both key_type and value_type, or neither")
        d.update(mapping)
        return d

    def __reduce__(self):
        if not self._typed:
            return (Dict, ())
        return (_rebuild, (self._dict_type, _items(self)))


def _rebuild(dict_type, items):
    d = Dict(dcttype=dict_type, n_keys=len(items))
    # The items came out of a dict of this very type: converting them back is exact, so numba's
    # "unsafe cast" warnings (Python int -> int32 ...) would only be noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        for k, v in items:
            _setitem(d, k, v)
    return d


_KINDS = {"i1": 1, "i2": 2, "i4": 3, "i8": 4, "u1": 5, "u2": 6, "u4": 7, "u8": 8, "f4": 9,
          "f8": 10}  # PARDICT_KIND_* by NumPy type code


def _np_dtype(ty):
    if isinstance(ty, (types.Integer, types.Float, types.Boolean)):
        from numba.np.numpy_support import as_dtype

        return as_dtype(ty)
    return None


def _convert(arr, ty, what):
    """arr as a C-contiguous 1-d array of ty's dtype (floats canonical: +0.0 for -0.0, one NaN)."""
    dt = _np_dtype(ty)
    a = np.asarray(arr)
    if a.ndim != 1:
        raise ValueError(f"{what} must be a 1-d array, got shape {a.shape}")
    if a.dtype != dt:
        if not np.can_cast(a.dtype, dt, casting="same_kind"):
            raise TypeError(f"{what} of dtype {a.dtype} cannot be used as {ty} "
                            f"(expected {dt} or a same-kind dtype)")
        a = a.astype(dt)
    if dt.kind == "f":
        a = a + dt.type(0)  # -0.0 + 0.0 == +0.0
        nan = np.isnan(a)
        if nan.any():
            a[nan] = dt.type(np.nan)
    return np.ascontiguousarray(a)


def _pad(a, cls):
    """The items of a as `cls`-byte blobs (zero padding), as the C ABI wants them."""
    if a.dtype.itemsize == cls:
        return a
    b = np.zeros((a.size, cls), dtype=np.uint8)
    b[:, : a.dtype.itemsize] = a.view(np.uint8).reshape(a.size, a.dtype.itemsize)
    return b


def _blob(arr, ty, cls, what):
    return _pad(_convert(arr, ty, what), cls)


def _str_keys(keys):
    """str keys as a 1-d NumPy unicode array (from such an array, or a sequence of str)."""
    a = keys if isinstance(keys, np.ndarray) else np.asarray(list(keys), dtype=str)
    if a.ndim != 1:
        raise ValueError(f"keys must be a 1-d array, got shape {a.shape}")
    if a.dtype.kind != "U":
        if a.size == 0:
            return np.zeros(0, dtype="<U1")
        raise TypeError(f"keys of dtype {a.dtype} cannot be used as str keys (expected a NumPy "
                        f"unicode array or a sequence of str)")
    if a.dtype.byteorder == ">":  # the C++ paths read native UCS4 code points
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a)


def _check_bulk_status(st):
    if st == -1:
        raise MemoryError("pardict: out of memory in a bulk operation")
    if st < 0:
        raise RuntimeError(f"pardict: bulk operation failed (status {st})")


class _KeysView(KeysView):
    def __iter__(self):
        return self._mapping.__iter__()


class _ValuesView(ValuesView):
    def __iter__(self):
        d = self._mapping
        return d._watched(_values) if d._typed else iter(())


class _ItemsView(ItemsView):
    def __iter__(self):
        d = self._mapping
        return d._watched(_items) if d._typed else iter(())


boxing.register_class(Dict, _DictMeta)
