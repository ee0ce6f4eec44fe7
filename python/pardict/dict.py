"""pardict.Dict: the interpreter-side proxy of a pardict table.

It mirrors numba.typed.Dict: jitted functions receive the same C++ table (unboxing shares it
through an NRT MemInfo; boxing wraps it again). Interpreter-side operations go:
* straight to the C ABI (_ext, _interp.cpp) for int64/float64/bool keys and values, and for len,
  clear, reserve and copy of any dict: no compilation, so a fresh process pays nothing for them;
* otherwise through one small jitted helper per operation (_helpers.py); whole-table reads
  (iteration, keys(), values(), items()) cost one call for all elements;
* bulk operations run the jitted methods themselves (numba/bulk.py), with the GIL released.
"""

from __future__ import annotations

import ctypes
import operator
import sys
import threading
import warnings
from abc import ABCMeta
from collections.abc import ItemsView, KeysView, Mapping, MutableMapping, ValuesView
from typing import Any, SupportsIndex, TypeAlias

import numpy as np
from numba import typeof
from numba.core import types
from numba.core.errors import NumbaTypeSafetyWarning

from . import _ext, _wire
from . import _helpers as h
from .numba import boxing, split
from .numba.abi import Kind as _Kind
from .numba.abi import Op as _Op
from .numba.abi import Result
from .numba.atomic import combinable
from .numba.types import DictType, _as_type

__all__ = ["Dict", "partition_of"]

TypeSpec: TypeAlias = "types.Type | type | np.dtype | str"
"""A key or value type: a numba type, or a Python type or NumPy dtype numba translates."""
ArrayLike: TypeAlias = "np.ndarray | list | tuple"


class _DictMeta(ABCMeta):
    """Metaclass, so that numba can recognise the class itself as a global (Dict.empty in njit)."""


def _from_meminfo(mi, dict_type):
    """Called by boxing: wrap a MemInfo (reference included) in a new Dict."""
    return Dict(dcttype=dict_type, meminfo=mi)


def _pairs(other):
    """The (key, value) pairs of a mapping or an iterable of pairs, with typed.Dict's errors for
    anything else: DictTypeError (TypingError, TypeError) for a non-iterable, ValueError for an
    element that is not a pair."""
    if isinstance(other, Mapping):
        yield from other.items()
        return
    try:
        it = iter(other)
    except TypeError:
        raise h.DictTypeError(
            f"{type(other).__name__!r} object is not iterable: pardict.Dict() takes a mapping or "
            f"an iterable of (key, value) pairs"
        ) from None
    for i, pair in enumerate(it):
        if not hasattr(pair, "__len__"):
            raise h.DictTypeError(
                f"cannot convert dictionary update sequence element #{i} to a sequence"
            )
        if len(pair) != 2:
            raise ValueError(
                f"dictionary update sequence element #{i} has length {len(pair)}; 2 is required"
            )
        k, v = pair
        yield k, v


def _infer(obj, what):
    try:
        ty = typeof(obj)
    except Exception:
        ty = None
    if ty is None or isinstance(ty, types.PyObject):
        raise h.DictTypeError(f"cannot infer a numba type for the {what} {obj!r}")
    if isinstance(ty, types.Array):
        ty = ty.copy(layout="A", readonly=False)
    return types.unliteral(ty)


class Dict(MutableMapping, metaclass=_DictMeta):
    """A typed dictionary, safe under concurrent use from threads and prange.

    Dict.empty(key_type, value_type, n_keys=0) makes an empty one; Dict(pairs_or_mapping) types
    itself from the first pair; Dict() is untyped until its first assignment.
    """

    def __init__(self, *args, dcttype=None, meminfo=None, n_keys=0, owner=None, **kwargs):
        self._dict_type = None
        self._table = 0  # the pardict_dict* (an int), 0 while untyped
        self._owner = None  # _ext.TableOwner until jitted code first needs a MemInfo
        self._meminfo = None  # the NRT MemInfo jitted code shares (see _opaque)
        self._kscalar = self._vscalar = None  # _ext.Scalar of the key / value, for the direct path
        if meminfo is not None:  # from boxing: jitted code made or returned this table
            self._meminfo = meminfo
            self._typed_as(dcttype, ctypes.c_void_p.from_address(meminfo.data).value)
            return
        if owner is not None:  # a table made by _ext (copy)
            self._owner = owner
            self._typed_as(dcttype, owner.address)
            return
        if dcttype is not None:
            self._open(dcttype, n_keys)
        if len(args) > 1:
            raise h.DictTypeError(f"Dict expected at most 1 positional argument, got {len(args)}")
        if args or kwargs:
            self.update(*args, **kwargs)

    def _open(self, dcttype, n_keys=0):
        if not isinstance(dcttype, DictType):
            raise TypeError(f"expected a pardict.DictType, got {dcttype!r}")
        n_keys = _count(n_keys, "n_keys")
        k, v, _, _ = dcttype.layouts  # a TypingError for too-large types, before anything is made
        self._owner = _ext.new_table(k.size, v.size, k.refs, k.strs, v.refs, n_keys)
        self._typed_as(dcttype, self._owner.address)

    def _typed_as(self, dcttype, table):
        self._dict_type = dcttype
        self._table = table
        self._kscalar = _SCALARS.get(dcttype.key_type)
        self._vscalar = _SCALARS.get(dcttype.value_type)

    @property
    def _opaque(self):
        """The NRT MemInfo owning the table, which unboxing hands to jitted code. A table made
        from the interpreter is owned by a plain C++ object until this is first asked for: making
        a MemInfo needs numba's runtime, whose start costs ~0.2 s in a fresh process, and a
        program that never passes the dict to jitted code should not pay for it. Raises what
        _ext.check_table reports (inserts lost for lack of memory, a dict spoiled by fork()), so
        that passing the dict to a jitted function reports them too."""
        _ext.check_table(self._table)
        mi = self._meminfo
        if mi is None and self._owner is not None:
            with _MEMINFO_LOCK:
                if self._meminfo is None:
                    from numba.core.registry import cpu_target
                    from numba.core.runtime import _nrt_python, rtsys

                    # Started before the first MemInfo, so that NRT statistics (when enabled)
                    # count its allocation as they will count its release.
                    rtsys.initialize(cpu_target.target_context)
                    self._meminfo = _nrt_python._MemInfo(self._owner.to_meminfo())
                    self._owner = None
            mi = self._meminfo
        return mi

    @classmethod
    def empty(cls, key_type: TypeSpec, value_type: TypeSpec, n_keys: SupportsIndex = 0) -> Dict:
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
    def key_type(self) -> types.Type:
        return self._numba_type_.key_type

    @property
    def value_type(self) -> types.Type:
        return self._numba_type_.value_type

    def _ensure_typed(self, key, value):
        if self._dict_type is None:
            self._open(DictType(_infer(key, "key"), _infer(value, "value")))

    def _handle(self):
        return self._table

    # ---- mapping API ---------------------------------------------------------------------------------

    def __getitem__(self, key):
        if self._vscalar is not None and self._kscalar is not None:
            st, v = _ext.get(self._table, self._kscalar, self._vscalar, key)
            if st != _NOT_HERE:
                if st == _FOUND:
                    return v
                raise KeyError(key)
        v = h.entry_call(self, h.getitem, key)
        if v is h.NO_ENTRY:
            if not self._typed:
                raise KeyError(key)
            v = h.typed_call(self, h.getitem, key)
        if v is None:
            raise KeyError(key)
        return v

    def __setitem__(self, key, value):
        if self._vscalar is not None and self._kscalar is not None:
            if _ext.set(self._table, self._kscalar, self._vscalar, key, value) != _NOT_HERE:
                return
        if h.entry_call(self, h.setitem, key, value) is h.NO_ENTRY:
            self._ensure_typed(key, value)
            h.typed_call(self, h.setitem, key, value)

    def __delitem__(self, key):
        self.pop(key)

    def __contains__(self, key):
        if self._kscalar is not None:
            st = _ext.contains(self._table, self._kscalar, key)
            if st != _NOT_HERE:
                return st == _FOUND
        found = h.entry_call(self, h.contains, key)
        if found is not h.NO_ENTRY:
            return found
        if not self._typed:
            return False
        return h.typed_call(self, h.contains, key)

    def __len__(self):
        return _ext.length(self._table) if self._typed else 0

    def __iter__(self):
        if not self._typed:
            return iter(())
        return self._watched(True, False)

    def _snapshot(self, keys, values):
        """A list of every key, value or (key, value) pair: in C++ for scalar types, else in one
        jitted call."""
        if self._kscalar is not None and self._vscalar is not None:
            return _ext.snapshot(self._table, self._kscalar, self._vscalar, keys, values)
        return (h.items if keys and values else h.keys if keys else h.values)(self)

    def _watched(self, keys, values):
        # The snapshot is taken after the watch opens, so a key change by this thread while the
        # loop runs is seen, as CPython's "dictionary changed size during iteration".
        watch = _ext.watch_new(self._handle())
        try:
            elems = self._snapshot(keys, values)
        except BaseException:
            _ext.watch_free(watch)
            raise
        return _ext.WatchedIter(elems, watch, self)

    def keys(self) -> KeysView:
        """A view of the keys. Iterating it walks a snapshot taken when the loop starts (one
        jitted call); keys other threads insert or erase meanwhile may or may not appear, and a
        key change by this thread during the loop raises RuntimeError, as dict does."""
        return _KeysView(self)

    def values(self) -> ValuesView:
        """A view of the values, iterated over a snapshot as keys() is."""
        return _ValuesView(self)

    def items(self) -> ItemsView:
        """A view of the (key, value) pairs, iterated over a snapshot as keys() is."""
        return _ItemsView(self)

    def get(self, key: Any, default: Any = None) -> Any:
        """The value of key if present, else default (one atomic lookup). A key of another type
        domain is a TypeError."""
        if not self._typed:
            return default
        if self._kscalar is not None and self._vscalar is not None:
            st, v = _ext.get(self._table, self._kscalar, self._vscalar, key)
            if st != _NOT_HERE:
                return v if st == _FOUND else default
        return h.typed_call(self, h.get, key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        """Removes key and returns its value, atomically (of two threads popping one key, one
        gets the value); without a default, KeyError when key is absent."""
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")
        if not self._typed:
            if default:
                return default[0]
            raise KeyError(key)
        st = _NOT_HERE
        if self._kscalar is not None and self._vscalar is not None:
            st, v = _ext.pop(self._table, self._kscalar, self._vscalar, key)
        if st == _NOT_HERE:
            v = h.typed_call(self, h.pop, key)
        if v is None:
            if default:
                return default[0]
            raise KeyError(key)
        return v

    def popitem(self) -> tuple[Any, Any]:
        kv = h.popitem(self) if self._typed else None
        if kv is None:
            raise KeyError("dictionary is empty")  # typed.Dict's message
        return kv

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """Atomic: inserts default when key is absent; returns the stored value."""
        if default is None:
            if self._typed:
                v = h.typed_call(self, h.getitem, key)
                if v is not None:
                    return v
            raise TypeError("pardict.Dict cannot store None; pass a default of the value type")
        self._ensure_typed(key, default)
        return h.typed_call(self, h.setdefault, key, default)

    def insert(self, key: Any, value: Any) -> bool:
        """Insert only if absent (atomic). Returns whether it inserted."""
        self._ensure_typed(key, value)
        return h.typed_call(self, h.insert, key, value)

    # ---- atomic read-modify-write (numeric values: scalars and tuples of them) ------------------

    def _combine(self, name, fn, key, value):
        if (
            self._typed
            and not combinable(self.value_type)
            and not isinstance(self.value_type, types.Array)
        ):
            raise TypeError(
                f"pardict.Dict.{name} needs numeric values (integers, "
                f"floats, or tuples of them); this dict stores {self.value_type}"
            )
        out = h.entry_call(self, fn, key, value)
        if out is not h.NO_ENTRY:
            return out
        self._ensure_typed(key, value)
        return h.typed_call(self, fn, key, value)

    def add(self, key: Any, value: Any) -> Any:
        """One atomic step: store value when key is absent, else add it to the stored value
        (tuples field by field; integers wrap around). Returns the stored result."""
        return self._combine("add", h.add, key, value)

    def min(self, key: Any, value: Any) -> Any:
        """One atomic step: store value when key is absent, else keep the smaller (field by field;
        a NaN never replaces). Returns the stored result."""
        return self._combine("min", h.min_, key, value)

    def max(self, key: Any, value: Any) -> Any:
        """As min(), keeping the larger."""
        return self._combine("max", h.max_, key, value)

    # ---- bulk operations on NumPy arrays ----------------------------------------------------------
    # Each is the jitted method of the same name (numba/bulk.py), run with the GIL released and
    # split over `threads` C++ threads (default: numba's thread count). Every element operation is
    # atomic; the batch as a whole is not. count/add/min/max_many of a str-keyed dict also take a
    # pyarrow string (or large_string) Array or ChunkedArray without nulls, read in place
    # (_combine_arrow).

    def _bulk(self, fn, keys, *args):
        if not self._typed:
            raise TypeError(
                "bulk operations need a typed pardict.Dict (use Dict.empty or Dict.from_arrays)"
            )
        if self.key_type == types.unicode_type:
            op = _ARROW_BULK.get(fn)
            chunks = _arrow_chunks(keys) if op is not None else None
            if chunks is not None:
                return self._bulk_arrow(op, chunks, *args)
            keys = _str_keys(keys)
        else:
            keys = _array_1d(keys, "keys")
        return h.typed_call(self, fn, keys, *args)

    def _bulk_arrow(self, op, chunks, *args):
        """count/add/min/max_many with pyarrow string keys (args as the jitted method's)."""
        values = None if op == "count" else _array_1d(args[0], "values")
        threads = args[-1]
        n = sum(len(c) for c in chunks)
        if values is not None and values.size != n:
            raise ValueError("keys and values differ in length")
        new = at = 0
        for c in chunks:
            if c.null_count:
                raise ValueError(f"keys have {c.null_count} missing values (drop them first)")
            part = None if values is None else values[at : at + len(c)]
            new += self._combine_arrow(c, part, op, threads)
            at += len(c)
        return new

    def _aggregate_arrow(self, chunk, values, op: str, threads: int | None) -> tuple:
        """add/min/max (values aligned with chunk) or count (values None) of the words of a
        pyarrow (large_)string array without nulls into this dict of str keys and numeric
        values, in C++ straight from the array's UTF-8 buffers (pardict_combine_many_utf8, GIL
        released), for the words this dict holds. Returns the others: (rows, aggregates, op),
        one row of chunk per missing word (int64), its aggregate over the chunk (value blobs of
        the dict's value class, uint8) and the op that inserts it ("count" becomes "add")."""
        dt = _np_dtype(self.value_type)
        if dt is None:
            raise TypeError(f"bulk operations need numeric or bool values, not {self.value_type}")
        _, _, _, vc = self._dict_type.layouts
        if op == "count":
            values, stride, op = np.ones(1, dtype=dt), 0, "add"
        else:
            values, stride = _exact_cast(values, dt), vc
        blobs = _value_blobs(values, vc)
        _, offsets, data = chunk.buffers()
        large = chunk.type.equals(_pa().large_string())
        rows, misses = _ext.combine_many_utf8(
            self._handle(),
            data if data is not None else b"",
            offsets,
            8 if large else 4,
            chunk.offset,
            len(chunk),
            blobs,
            stride,
            int(_Op[op.upper()]),
            int(_value_kind(dt)),
            _threads(threads),
            vc,
        )
        return rows.view(np.int64), misses.view(np.uint8), op

    def _combine_arrow(self, chunk, values, op: str, threads: int | None) -> int:
        """_aggregate_arrow, then the words this dict lacked made into numba strings and inserted
        in C++ (_ext.insert_new_strings). Returns how many keys were new."""
        n = len(chunk)
        if n == 0:
            return 0
        rows, misses, op = self._aggregate_arrow(chunk, values, op, threads)
        if rows.size == 0:
            return 0
        dt = _np_dtype(self.value_type)
        _, _, _, vc = self._dict_type.layouts
        _, offsets, data = chunk.buffers()
        large = chunk.type.equals(_pa().large_string())
        # The misses (each distinct word at most once): decoded in C++ from the Arrow buffers and
        # made into numba strings in C++, without a Python object per word.
        points, starts = _ext.utf8_gather(
            data if data is not None else b"", offsets, 8 if large else 4, chunk.offset, n, rows
        )
        # Room for every new word first: a dict that grows while they go in re-inserts what it
        # holds at every step (the first chunk of a partition starts from an empty dict).
        self.reserve(len(self) + rows.size)
        # A word is inserted if still absent, else combined: another thread may have stored it
        # since it was found missing.
        return int(
            _ext.insert_new_strings(
                self._handle(),
                points.view(np.uint32),
                starts.view(np.int64),
                misses,
                vc,
                int(_Op[op.upper()]),
                int(_value_kind(dt)),
            )
        )

    def set_many(self, keys: ArrayLike, values: ArrayLike, threads: int | None = None) -> int:
        """d[k] = v for every pair; returns how many keys were new."""
        return self._bulk(h.set_many, keys, _array_1d(values, "values"), threads)

    def add_many(self, keys: ArrayLike, values: ArrayLike, threads: int | None = None) -> int:
        """d.add(k, v) for every pair (group-by sum); returns how many keys were new."""
        return self._bulk(h.add_many, keys, _array_1d(values, "values"), threads)

    def min_many(self, keys: ArrayLike, values: ArrayLike, threads: int | None = None) -> int:
        """d.min(k, v) for every pair; returns how many keys were new."""
        return self._bulk(h.min_many, keys, _array_1d(values, "values"), threads)

    def max_many(self, keys: ArrayLike, values: ArrayLike, threads: int | None = None) -> int:
        """d.max(k, v) for every pair; returns how many keys were new."""
        return self._bulk(h.max_many, keys, _array_1d(values, "values"), threads)

    def count_many(self, keys: ArrayLike, threads: int | None = None) -> int:
        """Adds the number of occurrences of each key in keys (integer values); returns how many
        keys were new."""
        return self._bulk(h.count_many, keys, threads)

    def get_many(self, keys: ArrayLike, default: Any = 0, threads: int | None = None) -> np.ndarray:
        """An array with d.get(k, default) for every key."""
        return self._bulk(h.get_many, keys, self._as_value_scalar(default), threads)

    def _as_value_scalar(self, x):
        """x as a NumPy scalar of the value dtype when it converts exactly, so that the jitted
        call is typed with the dict's own value type (numba would warn about an int64 -> int16
        cast of a Python int); anything else as it is, for the jitted call to accept or refuse."""
        dt = _np_dtype(self.value_type) if self._typed else None
        if dt is None or not isinstance(x, (bool, int, float, np.number, np.bool_)):
            return x
        try:
            y = dt.type(x)
        except (OverflowError, ValueError, TypeError):
            return x
        return y if dt.kind == "f" or y == x else x

    def contains_many(self, keys: ArrayLike, threads: int | None = None) -> np.ndarray:
        """A bool array: whether each key is present."""
        return self._bulk(h.contains_many, keys, threads)

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys, values) as two NumPy arrays, in the same (unspecified) order (str keys: a
        NumPy unicode array)."""
        if not self._typed:
            raise TypeError("to_arrays needs a typed pardict.Dict")
        if self.key_type == types.unicode_type:
            if _wire.supports(self.key_type, self.value_type):
                return _str_arrays(self)
            items = self._snapshot(True, True)
            return (
                np.array([k for k, _ in items], dtype=str),
                np.array([v for _, v in items], dtype=_np_dtype(self.value_type)),
            )
        return h.typed_call(self, h.to_arrays)

    def merge(self, other: Dict, op: str = "assign", threads: int | None = None) -> int:
        """Every item of other into self: op='assign' stores it, 'add'/'min'/'max' combine it as
        d.add/min/max do. Returns how many keys were new. The reduction step of per-partition
        dicts: dicts of one type merge in parallel in C++ (`threads`, GIL released; numeric ones
        through the bulk path, others through pardict_merge), dicts of two types in one jitted
        loop. Each item is one atomic step; the merge as a whole is not."""
        if op not in h.MERGE:
            raise ValueError(f"unknown op {op!r}: use 'assign', 'add', 'min' or 'max'")
        if not isinstance(other, Dict):
            raise TypeError(
                f"merge needs a pardict.Dict, got {type(other).__module__}."
                f"{type(other).__qualname__} (convert a numba.typed.Dict with "
                f"pardict.Dict.from_typed(td), a mapping with pardict.Dict.from_dict(m))"
            )
        if not other._typed:
            return 0
        if not self._typed:
            self._open(other._dict_type)
        return h.typed_call(self, h.MERGE[op], other, threads)

    def split(self, n: SupportsIndex) -> list[Dict]:
        """n new dicts of this dict's type that together hold every item exactly once: key k goes
        to part pardict.partition_of(k, n), a hash of k's value that is the same in every process
        and on every machine (and in @njit code, which runs the same method). The shuffle step of
        a distributed group-by: split each worker's partial dict, then merge part i of every
        partial. This dict is left as it is."""
        parts = _count(n, "split: n")
        if parts < 1:
            raise ValueError("split: n must be at least 1")
        if not self._typed:
            return [Dict() for _ in range(parts)]
        return h.typed_call(self, h.split, parts)

    @classmethod
    def from_arrays(cls, keys: ArrayLike, values: ArrayLike, threads: int | None = None) -> Dict:
        """A Dict typed by the arrays' dtypes with d[keys[i]] = values[i]. For a key that occurs
        more than once, the last pair wins with threads=1; with more threads which one wins is
        unspecified."""
        keys, values = np.asarray(keys), np.asarray(values)
        # a NumPy unicode array gives str keys, as Dict.from_arrays does in @njit
        kt = types.unicode_type if keys.dtype.kind == "U" else _as_type(keys.dtype)
        d = cls.empty(kt, _as_type(values.dtype), n_keys=len(keys))
        d.set_many(keys, values, threads=threads)
        return d

    def clear(self) -> None:
        if self._typed:
            _ext.clear(self._table)

    def reserve(self, n: SupportsIndex) -> None:
        """Presize for n elements, so that inserting them does not grow the table."""
        count = _count(n, "reserve: n")
        if self._typed:
            _ext.reserve(self._table, count)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        if isinstance(other, Dict):
            if other._typed:
                if not self._typed:
                    self._open(other._numba_type_)
                h.typed_call(self, h.update, other)
        else:
            for k, v in _pairs(other):
                self[k] = v
        for k, v in kwargs.items():
            self[k] = v

    def copy(self) -> Dict:
        """A new Dict with the same items (a shallow copy: array values are shared), made in
        C++ without Python objects. Items other threads change meanwhile may or may not be in
        it; every item present throughout is."""
        if not self._typed:
            return Dict()
        return Dict(dcttype=self._dict_type, owner=_ext.copy_table(self._table))

    def __eq__(self, other):
        """As dict's ==: equal when the other mapping has the same keys with equal values (keys
        compare as Python values, so Dict[float64, ...] {1.0: x} equals Dict[int64, ...] {1: x});
        never raises for a mapping of another key or value type."""
        if (
            isinstance(other, Dict)
            and self._typed
            and other._typed
            and self._numba_type_ == other._numba_type_
        ):
            return h.equal(self, other)
        if not isinstance(other, Mapping):
            return NotImplemented
        if len(self) != len(other):
            return False
        if not isinstance(other, dict):  # lookups of a typed mapping raise for foreign key types
            other = other.to_dict() if isinstance(other, Dict) else dict(other.items())
        missing = object()
        for k, v in self.items():
            o = other.get(k, missing)
            if o is missing or o != v:
                return False
        return True

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as dict

    def __repr__(self):
        if not self._typed:
            return "pardict.Dict[untyped]({})"
        ty = self._dict_type
        return f"pardict.Dict[{ty.key_type},{ty.value_type}]({self._body()})"

    def __str__(self):
        return self._body()

    def _body(self):
        """The items as a dict literal; beyond _REPR_MAX items, the first and last _REPR_EDGE
        with '...' between and the length after (as NumPy abbreviates large arrays)."""
        n = len(self)
        if n <= _REPR_MAX:
            return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self.items()) + "}"
        edge = h.edges(self, _REPR_EDGE)
        head = ", ".join(f"{k!r}: {v!r}" for k, v in edge[:_REPR_EDGE])
        tail = ", ".join(f"{k!r}: {v!r}" for k, v in edge[_REPR_EDGE:])
        return "{" + head + ", ..., " + tail + "}" + f", len={n}"

    # ---- conversions and pickling ------------------------------------------------------------------

    def to_dict(self) -> dict:
        """A plain dict with the same items (one jitted call)."""
        return dict(self._snapshot(True, True)) if self._typed else {}

    def to_typed(self) -> Any:
        """A numba.typed.Dict with the same items."""
        from numba.typed import Dict as TypedDict

        td = TypedDict.empty(self.key_type, self.value_type)
        return h.to_typed(self, td)

    @classmethod
    def from_typed(cls, td: Any) -> Dict:
        """A pardict.Dict with the items of a numba.typed.Dict."""
        ty = td._numba_type_
        d = cls.empty(ty.key_type, ty.value_type, n_keys=len(td))
        h.update(d, td)
        return d

    @classmethod
    def from_dict(
        cls, mapping: Mapping, key_type: TypeSpec | None = None, value_type: TypeSpec | None = None
    ) -> Dict:
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
        # The key and value types, not the DictType: numba types pickle under every protocol,
        # while a DictType carries cached layout objects that protocols 0 and 1 cannot pickle.
        if not self._typed:
            return (Dict, ())
        return (_rebuild_items, (self.key_type, self.value_type, self._snapshot(True, True)))

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple:
        """Protocol 5 and later: numeric and bool keys and values (and str keys with such
        values) travel as a checksummed header and flat out-of-band buffers (pardict/_wire.py
        describes the format); protocol 4 the same buffers in band, as bytes; everything else,
        and protocols 0-3, as __reduce__: the items."""
        proto = operator.index(protocol)
        if proto >= 4 and self._typed and _wire.supports(self.key_type, self.value_type):
            return _wire.dump(self, in_band=proto < 5)
        return self.__reduce__()


def partition_of(keys: Any, n: SupportsIndex) -> Any:
    """The part (0 .. n-1) that Dict.split(n) puts a key in: an int for one key, an int64 array
    for a 1-d array of keys. The same in every process and on every machine; integer keys of every
    width (and bools) agree with each other, float keys with each other, str keys by their code
    points."""
    parts = _count(n, "partition_of: n")
    if parts < 1:  # here, not in jitted code: an exception raised there leaks its arguments
        raise ValueError("partition_of: n must be at least 1")
    if isinstance(keys, (np.ndarray, list)):
        arr = np.asarray(keys)
        if arr.ndim != 1:
            raise ValueError(f"keys must be one key or a 1-d array, got shape {arr.shape}")
        if arr.dtype.kind not in "biufU":
            raise TypeError(f"no partition for keys of dtype {arr.dtype}")
        return split.partitions_of_array(arr, parts)
    return split.partition_of_scalar(keys, parts)


def _rebuild_items(key_type, value_type, items):
    return _rebuild(DictType(key_type, value_type), items)


def _rebuild(dict_type, items):
    # Also what payloads written by earlier versions (with the DictType) call.
    d = Dict(dcttype=dict_type, n_keys=len(items))
    kdt = (
        np.dtype(str) if dict_type.key_type == types.unicode_type else _np_dtype(dict_type.key_type)
    )
    vdt = _np_dtype(dict_type.value_type)
    if kdt is not None and vdt is not None:
        # One bulk call; NumPy also converts what has no numba scalar type (a Python int beyond
        # int64 for uint64).
        keys = np.array([k for k, _ in items], dtype=kdt)
        d.set_many(keys, np.array([v for _, v in items], dtype=vdt), threads=1)
        return d
    # The items came out of a dict of this very type: converting them back is exact, so numba's
    # "unsafe cast" warnings (Python int -> int32 ...) would only be noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        for k, v in items:
            d[k] = _writable(v)
    return d


def _writable(v):
    """v, with a copy of each read-only array in it: protocol 5 sends arrays out of band, and a
    receiver that gets them as bytes gets read-only arrays, which a dict of arrays cannot store."""
    if isinstance(v, np.ndarray) and not v.flags.writeable:
        return v.copy()
    if isinstance(v, tuple):
        return tuple(_writable(x) for x in v)
    return v


def _str_arrays(d):
    """to_arrays of a dict with str keys and numeric or bool values, made in C++: the keys' code
    points are exported once and laid out as a NumPy unicode array as wide as the longest key."""
    _, _, _, vc = d._dict_type.layouts
    chars, width, offsets, vblobs = _ext.export_str(d._handle(), vc)
    offsets = offsets.view(np.int64)
    lengths = np.diff(offsets)
    longest = max(int(lengths.max(initial=0)), 1)
    keys = np.empty(lengths.size, dtype=f"<U{longest}")
    _ext.to_ucs4(chars, width, offsets, keys, longest)
    return keys, _wire._narrow(vblobs, d.value_type)


_ARROW_BULK = {h.count_many: "count", h.add_many: "add", h.min_many: "min", h.max_many: "max"}

_REPR_MAX = 1000
_REPR_EDGE = 3


def _count(n, what):
    """n as a non-negative int count (NumPy integers too); MemoryError beyond any machine."""
    if isinstance(n, bool):
        raise TypeError(f"{what} must be an int, got bool")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"{what} must be an int, got {type(n).__name__}") from None
    if n < 0:
        raise ValueError(f"{what} must be non-negative, got {n}")
    if n >= 1 << 62:
        raise MemoryError(f"pardict: cannot allocate a table for {n} keys")
    return n


_SCALARS = {
    types.int64: _ext.Scalar.int64,
    types.float64: _ext.Scalar.float64,
    types.boolean: _ext.Scalar.boolean,
}  # the key and value types whose element operations skip numba (_ext: _interp.cpp)
_NOT_HERE = _ext.NOT_HERE
_FOUND = int(Result.FOUND)
_MEMINFO_LOCK = threading.Lock()


def _np_dtype(ty):
    if isinstance(ty, (types.Integer, types.Float, types.Boolean)):
        from numba.np.numpy_support import as_dtype

        return as_dtype(ty)
    return None


def _array_1d(arr, what):
    a = np.asarray(arr)
    if a.ndim != 1:
        raise ValueError(f"{what} must be a 1-d array, got shape {a.shape}")
    return a


def _pa():
    import pyarrow

    return pyarrow


def _arrow_chunks(keys):
    """The chunks of a pyarrow (large_)string Array or ChunkedArray, else None (pyarrow is not
    imported for anything else)."""
    pa = sys.modules.get("pyarrow")
    if pa is None or not isinstance(keys, (pa.Array, pa.ChunkedArray)):
        return None
    chunks = keys.chunks if isinstance(keys, pa.ChunkedArray) else [keys]
    if all(pa.types.is_string(c.type) or pa.types.is_large_string(c.type) for c in chunks):
        return chunks
    return None


def _exact_cast(values, dt):
    """values as a contiguous array of dt, refusing a cast that changes a value."""
    if values.dtype == dt:
        return np.ascontiguousarray(values)
    out = values.astype(dt)
    if not np.array_equal(out, values, equal_nan=values.dtype.kind == "f"):
        raise ValueError(f"values of dtype {values.dtype} do not fit the dict's {dt}")
    return np.ascontiguousarray(out)


def _value_blobs(values, vc):
    """Values as value blobs of vc bytes each (the value in the first bytes, little-endian)."""
    size = values.dtype.itemsize
    if size == vc:
        return values.view(np.uint8)
    out = np.zeros((values.size, vc), dtype=np.uint8)
    out[:, :size] = values.view(np.uint8).reshape(values.size, size)
    return out.ravel()


def _value_kind(dt):
    if dt.kind == "b":
        return _Kind.U8
    return _Kind[f"{'F' if dt.kind == 'f' else 'I' if dt.kind == 'i' else 'U'}{dt.itemsize * 8}"]


def _threads(threads):
    if threads is None:
        import numba

        return int(numba.get_num_threads())
    return int(threads)


def _str_keys(keys):
    """str keys as a 1-d NumPy unicode array (from such an array, or a sequence of str)."""
    a = keys if isinstance(keys, np.ndarray) else np.asarray(list(keys), dtype=str)
    if a.ndim != 1:
        raise ValueError(f"keys must be a 1-d array, got shape {a.shape}")
    if a.dtype.kind != "U":
        if a.size == 0:
            return np.zeros(0, dtype="<U1")
        raise TypeError(
            f"keys of dtype {a.dtype} cannot be used as str keys (expected a NumPy "
            f"unicode array or a sequence of str)"
        )
    if a.dtype.byteorder == ">":  # the C++ paths read native UCS4 code points
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a)


class _KeysView(KeysView):
    def __iter__(self):
        return self._mapping.__iter__()


class _ValuesView(ValuesView):
    def __iter__(self):
        d = self._mapping
        return d._watched(False, True) if d._typed else iter(())


class _ItemsView(ItemsView):
    def __iter__(self):
        d = self._mapping
        return d._watched(True, True) if d._typed else iter(())


boxing.register_class(Dict, _DictMeta)
