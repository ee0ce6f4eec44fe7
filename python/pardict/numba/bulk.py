"""Bulk operations in jitted code: set/add/min/max/count_many, get/contains_many, to_arrays, merge,
Dict.from_arrays.

These are also what the interpreter's Dict methods run (one binding, one behaviour): a jitted
helper with nogil=True, so the GIL is released for the whole call.

Numeric and bool keys and values take the C++ prefetching paths over contiguous blob arrays,
split over `threads` C++ worker threads (never numba's parallel kernels, so a bulk call is safe
from interpreter threads and inside a prange body on every threading layer). Keys are converted
to the dict's key type first: an integer that does not fit is an OverflowError naming it, floats
are canonicalised (-0.0 -> 0.0, one NaN).

str keys: a C-contiguous NumPy unicode array takes C++ paths that read its elements in place on
the workers: lookups go in prefetched batches through borrowed views; add/min/max/count aggregate
per word, and the words the dict lacks come back once per worker and are inserted here, on the
calling thread (the C side cannot make numba strings). Everything else with str keys (set_many,
strided arrays, lists of str) is a loop of single atomic operations on the calling thread.
"""

import warnings

import numpy as np
from numba.core import types
from numba.core.errors import NumbaTypeSafetyWarning, TypingError
from numba.core.extending import (
    intrinsic,
    overload,
    overload_classmethod,
    overload_method,
    register_jitable,
)
from numba.np.numpy_support import as_dtype

from . import abi
from .abi import OP_NAMES, Op, Result, check
from .atomic import combinable, combine_status
from .convert import castable, charseq_view, conv, is_omitted, owned, sentry_safe_cast
from .dictobject import new_dict
from .types import DictType

# ---- keys and values as C ABI blobs -----------------------------------------------------------------


def np_scalar(ty):
    """Whether ty is a type the C++ bulk paths take as blobs (numeric or bool scalars)."""
    return isinstance(ty, (types.Integer, types.Float, types.Boolean))


def blob_dtypes(ty):
    """The NumPy dtype whose items are ty's blobs in the C ABI (1- and 2-byte types are padded
    to 4 bytes), and the unsigned dtype of ty's own size (to move the bits)."""
    size = as_dtype(ty).itemsize
    bits = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[size]
    return (np.uint32 if size < 4 else bits), bits


def _fit_bounds(src, dst):
    """(lo, hi) in src's dtype outside which a src integer does not fit dst, or None when every
    src value fits (bool and float sources, or a wider dst)."""
    if not (isinstance(src, types.Integer) and isinstance(dst, types.Integer)):
        return None
    s, t = np.iinfo(as_dtype(src)), np.iinfo(as_dtype(dst))
    if t.min <= s.min and s.max <= t.max:
        return None
    sdt = as_dtype(src).type
    return sdt(max(s.min, t.min)), sdt(min(s.max, t.max))


def to_blobs(arr, ty, what):
    pass


def value_blobs(arr, ty):
    pass


def _blob_impl(arr, ty, canonical):
    """impl(arr) -> a contiguous array of arr's items converted to ty, as C ABI blobs (floats
    canonical when `canonical`: keys); OverflowError for an integer that does not fit ty. An
    array that already holds exactly those bytes (same dtype, C-contiguous, 4 or 8 bytes, no
    float keys to canonicalise) is viewed, not copied."""
    elt = ty.instance_type if isinstance(ty, (types.NumberClass, types.TypeRef)) else ty.dtype
    dt = as_dtype(elt)
    blob, bits = blob_dtypes(elt)
    is_float = isinstance(elt, types.Float) and canonical
    bounds = _fit_bounds(arr.dtype, elt)
    lo, hi = bounds if bounds is not None else (0, 0)
    check = bounds is not None
    suffix = f" does not fit the dict's type {elt}"
    what = "key" if canonical else "value"
    if arr.dtype == elt and arr.layout == "C" and not is_float and blob is bits:
        return lambda arr: arr.view(bits)

    def convert(arr):
        a = np.empty(arr.size, dt)
        for i in range(arr.size):
            x = arr[i]
            if check and (x < lo or x > hi):
                raise OverflowError(what + " " + str(x) + suffix)
            y = dt.type(x)
            if is_float:
                y = y + dt.type(0)  # -0.0 + 0.0 == +0.0
                if y != y:
                    y = dt.type(np.nan)
            a[i] = y
        return a.view(bits)

    if blob is bits:
        return convert
    run = register_jitable(convert)
    return lambda arr: run(arr).astype(blob)  # 1- and 2-byte types: padded to 4


@overload(to_blobs)
def _ol_to_blobs(arr, ty, what):
    """Keys as C ABI blobs: floats canonical (-0.0 as 0.0, one NaN), as every key is stored."""
    run = register_jitable(_blob_impl(arr, ty, canonical=True))
    return lambda arr, ty, what: run(arr)


@overload(value_blobs)
def _ol_value_blobs(arr, ty):
    """Values as C ABI blobs, bit for bit (as d[k] = v stores them)."""
    run = register_jitable(_blob_impl(arr, ty, canonical=False))
    return lambda arr, ty: run(arr)


def nthreads(threads):
    pass


def _launch_numba_threads():
    """Start numba's threading layer, which registers its get_num_threads symbol (also run when a
    function using _numba_num_threads is loaded from the cache)."""
    from numba.np.ufunc.parallel import _launch_threads

    _launch_threads()


@intrinsic
def _numba_num_threads(typingctx):
    """numba.get_num_threads() by symbol name. numba's own jitted get_num_threads calls a ctypes
    pointer, which makes every caller impossible to cache (cache=True)."""
    from numba.core import cgutils

    _launch_numba_threads()

    def codegen(context, builder, sig, args):
        context.active_code_library._reload_init.add(_launch_numba_threads)
        fn = cgutils.get_or_insert_function(
            builder.module, abi.ir.FunctionType(cgutils.intp_t, []), "get_num_threads"
        )
        return builder.call(fn, [])

    return types.intp(), codegen


@overload(nthreads)
def _ol_nthreads(threads):
    """The worker count of a bulk call as the C ABI takes it: numba's thread count by default."""
    if is_omitted(threads):
        return lambda threads: np.int32(max(1, _numba_num_threads()))
    if not isinstance(threads, types.Integer):
        raise TypingError(f"threads must be an int or None, got {threads}")

    def impl(threads):
        if threads < 1:
            raise ValueError("threads must be at least 1 (or None: numba's thread count)")
        return np.int32(min(threads, 1 << 30))

    return impl


# ---- which keys take which path --------------------------------------------------------------------


def str_keys_kind(d, keys):
    """For a dict with str keys: "chars" for a 1-d NumPy unicode array of keys, "seq" for a list
    of str; None otherwise."""
    if d.key_type != types.unicode_type:
        return None
    if (
        isinstance(keys, types.Array)
        and keys.ndim == 1
        and isinstance(keys.dtype, types.UnicodeCharSeq)
    ):
        return "chars"
    if isinstance(keys, (types.List, types.ListType)) and keys.dtype == types.unicode_type:
        return "seq"
    return None


def _ucs4_ok(d, keys):
    """Whether str keys can take the C++ paths that read a NumPy unicode array in place."""
    return str_keys_kind(d, keys) == "chars" and keys.layout == "C" and keys.dtype.count > 0


def _check_bulk(name, d, keys, values=None, need_values=True):
    if not isinstance(d, DictType):
        raise TypingError(f"pardict.Dict.{name} needs a pardict.Dict, got {d}")
    str_keys = str_keys_kind(d, keys) is not None
    if not (np_scalar(d.key_type) or str_keys):
        raise TypingError(
            f"pardict.Dict.{name} needs numeric, bool or str keys (numeric or bool "
            f"keys in a 1-d array, str keys in a NumPy unicode array or a list of "
            f"str); this dict is {d}, the keys are {keys}"
        )
    if need_values and not np_scalar(d.value_type):
        raise TypingError(
            f"pardict.Dict.{name} needs numeric or bool values; this dict stores {d.value_type}"
        )
    for what, a in (("keys", None if str_keys else keys), ("values", values)):
        if a is not None and not (isinstance(a, types.Array) and a.ndim == 1):
            raise TypingError(f"pardict.Dict.{name}: {what} must be a 1-d array, got {a}")
    for what, a, ty in (
        ("keys", None if str_keys else keys, d.key_type),
        ("values", values, d.value_type),
    ):
        if a is None:
            continue
        try:
            with warnings.catch_warnings():
                # A narrowing integer cast is checked per element at run time (OverflowError).
                warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
                sentry_safe_cast(a.dtype, ty)
        except TypingError as e:
            raise TypingError(
                f"pardict.Dict.{name}: {what} of dtype {a.dtype} cannot be used as {ty} ({e})"
            ) from None


# ---- set/add/min/max/count_many ------------------------------------------------------------------


def combine_arrays(d, keys, values, op, threads):
    pass


@overload(combine_arrays, prefer_literal=True)
def _ol_combine_arrays(d, keys, values, op, threads):
    """pardict_combine_many of two aligned arrays of numeric keys and values (op an int constant
    of Op), converted to the dict's types: how many keys were new."""
    if not isinstance(op, types.IntegerLiteral):
        return None
    keyty, valty = d.key_type, d.value_type
    opv = op.literal_value

    def impl(d, keys, values, op, threads):
        if keys.size != values.size:
            raise ValueError("keys and values differ in length")
        kb = to_blobs(keys, keyty, "key")
        vb = value_blobs(values, valty)
        st, n = abi.c_combine_many(d, kb, vb, opv, nthreads(threads))
        check(st)
        return n

    return impl


def _numeric_combine_impl(d, op):
    opv = int(op)
    return lambda d, keys, values, threads=None: combine_arrays(d, keys, values, opv, threads)


def _str_combine_impl(d, keys, op, count):
    """add/min/max_many (d, keys, values, threads=None) with str keys, or with count=True
    count_many (d, keys, threads=None): returns how many keys were new."""
    opv = int(op)
    valty = d.value_type
    blob, bits = blob_dtypes(valty)
    vdt = as_dtype(valty)
    stride = 0 if count else np.dtype(blob).itemsize
    new_key = int(Result.NEW_KEY)

    def serial(d, keys, values, threads):
        new = 0
        for i in range(len(keys)):
            st, _ = combine_status(d, keys[i], values[0 if count else i], opv)
            check(st)
            new += st == new_key
        return new

    def ucs4(d, keys, values, threads):
        n = keys.size
        if n == 0:
            return 0
        vb = value_blobs(values, valty)
        rows = np.empty(n, dtype=np.int64)
        got = np.empty(n, dtype=blob)
        st, m = abi.c_combine_many_ucs4(d, keys, vb, stride, opv, nthreads(threads), rows, got)
        check(st)
        vals = got[:m].astype(bits).view(vdt)
        new = 0
        for j in range(m):
            st, _ = combine_status(d, keys[rows[j]], vals[j], opv)
            check(st)
            new += st == new_key
        return new

    run = register_jitable(ucs4 if _ucs4_ok(d, keys) else serial)
    if count:
        return lambda d, keys, threads=None: run(d, keys, np.ones(1, dtype=valty), threads)

    def impl(d, keys, values, threads=None):
        if len(keys) != values.size:
            raise ValueError("keys and values differ in length")
        return run(d, keys, values, threads)

    return impl


def _str_set_impl(d):
    keyty, valty = d.key_type, d.value_type
    inserted = int(Result.INSERTED)

    def impl(d, keys, values, threads=None):
        if len(keys) != values.size:
            raise ValueError("keys and values differ in length")
        new = 0
        for i in range(len(keys)):
            st = abi.c_set(d, conv(str(keys[i]), keyty), conv(owned(d, values[i]), valty))
            check(st)
            new += st == inserted
        return new

    return impl


def _make_bulk_method(name, op):
    def ol(d, keys, values, threads=None):
        _check_bulk(name, d, keys, values)
        if op != Op.ASSIGN and abi.scalar_kind(d.value_type) is None:
            raise TypingError(
                f"pardict.Dict.{name} needs integer or float values; this dict "
                f"stores {d.value_type}"
            )
        if str_keys_kind(d, keys) is None:
            return _numeric_combine_impl(d, op)
        if op == Op.ASSIGN:
            return _str_set_impl(d)
        return _str_combine_impl(d, keys, op, False)

    ol.__doc__ = f"d.{name}(keys, values, threads=None): returns how many keys were new."
    overload_method(DictType, name)(ol)


for _name, _op in (
    ("set_many", Op.ASSIGN),
    ("add_many", Op.ADD),
    ("min_many", Op.MIN),
    ("max_many", Op.MAX),
):
    _make_bulk_method(_name, _op)


@overload_method(DictType, "count_many")
def _ol_count_many(d, keys, threads=None):
    _check_bulk("count_many", d, keys)
    if not isinstance(d.value_type, types.Integer):
        raise TypingError(
            f"pardict.Dict.count_many needs integer values; this dict stores {d.value_type}"
        )
    valty = d.value_type
    if str_keys_kind(d, keys) is not None:
        return _str_combine_impl(d, keys, Op.ADD, True)

    def impl(d, keys, threads=None):
        return d.add_many(keys, np.ones(keys.size, dtype=valty), threads)

    return impl


# ---- get_many / contains_many ------------------------------------------------------------------------


def _bulk_lookup(d, keys, values, found, threads):
    pass


@overload(_bulk_lookup)
def _ol_bulk_lookup(d, keys, values, found, threads):
    """C++ bulk lookup of an array of keys on `threads` workers: value blobs of the keys found
    into `values` (None: membership only), 0/1 into `found`. A C-contiguous NumPy unicode array
    is read in place, in prefetched batches; numeric keys are converted to blobs first."""
    if _ucs4_ok(d, keys):

        def impl_ucs4(d, keys, values, found, threads):
            if keys.size > 0:
                st, _ = abi.c_get_many_ucs4(d, keys, values, found, nthreads(threads))
                check(st)

        return impl_ucs4
    keyty = d.key_type

    def impl(d, keys, values, found, threads):
        kb = to_blobs(keys, keyty, "key")
        st, _ = abi.c_get_many(d, kb, values, found, nthreads(threads))
        check(st)

    return impl


def _lookup_one(d, key):
    pass


@overload(_lookup_one)
def _ol_lookup_one(d, key):
    """(status, value) of one key of a bulk lookup that cannot take the C++ batch path: a NumPy
    string element through a borrowed view (no numba string per key), a str as it is."""
    if isinstance(key, types.UnicodeCharSeq):
        return lambda d, key: abi.c_get(d, charseq_view(key, len(key)))
    return lambda d, key: abi.c_get(d, key)


@register_jitable
def _found_or_default(vals, found, default):
    out = np.empty(vals.size, dtype=vals.dtype)
    for i in range(vals.size):
        out[i] = vals[i] if found[i] else default
    return out


@overload_method(DictType, "get_many")
def _ol_get_many(d, keys, default=0, threads=None):
    """d.get_many(keys, default=0, threads=None): an array of d.get(k, default)."""
    _check_bulk("get_many", d, keys)
    if (
        isinstance(default, types.Type)
        and not is_omitted(default)
        and not castable(default, d.value_type)
    ):
        raise TypingError(
            f"pardict.Dict.get_many: the default must be a {d.value_type}, got {default}"
        )
    valty = d.value_type
    blob, bits = blob_dtypes(valty)
    vdt = as_dtype(valty)
    found_st = int(Result.FOUND)
    if _ucs4_ok(d, keys) or str_keys_kind(d, keys) is None:

        def impl(d, keys, default=0, threads=None):
            raw = np.zeros(keys.size, dtype=blob)
            found = np.zeros(keys.size, dtype=np.uint8)
            _bulk_lookup(d, keys, raw, found, threads)
            return _found_or_default(raw.astype(bits).view(vdt), found, default)

        return impl

    def impl_each(d, keys, default=0, threads=None):
        out = np.empty(len(keys), dtype=vdt)
        for i in range(len(keys)):
            st, v = _lookup_one(d, keys[i])
            check(st)
            out[i] = v if st == found_st else default
        return out

    return impl_each


def _contains_one(d, key):
    pass


@overload(_contains_one)
def _ol_contains_one(d, key):
    """pardict_contains for one key of a bulk lookup that cannot take the C++ batch path."""
    if isinstance(key, types.UnicodeCharSeq):
        return lambda d, key: abi.c_contains(d, charseq_view(key, len(key)))
    return lambda d, key: abi.c_contains(d, key)


@overload_method(DictType, "contains_many")
def _ol_contains_many(d, keys, threads=None):
    """d.contains_many(keys, threads=None): a bool array, whether each key is present."""
    _check_bulk("contains_many", d, keys, need_values=False)
    found_st = int(Result.FOUND)
    if _ucs4_ok(d, keys) or str_keys_kind(d, keys) is None:

        def impl(d, keys, threads=None):
            found = np.zeros(keys.size, dtype=np.uint8)
            _bulk_lookup(d, keys, None, found, threads)
            return found.astype(np.bool_)

        return impl

    def impl_each(d, keys, threads=None):
        out = np.zeros(len(keys), dtype=np.bool_)
        for i in range(len(keys)):
            st = _contains_one(d, keys[i])
            check(st)
            out[i] = st == found_st
        return out

    return impl_each


# ---- to_arrays, merge, from_arrays ---------------------------------------------------------------


@overload_method(DictType, "to_arrays")
def _ol_to_arrays(d):
    """(keys, values) as two arrays in the same (unspecified) order; numeric or bool keys and
    values (numba cannot make a NumPy unicode array whose width is known only at run time). One
    C++ walk over the table (pardict_export_many)."""
    if not (np_scalar(d.key_type) and np_scalar(d.value_type)):
        raise TypingError(
            f"pardict.Dict.to_arrays in jitted code needs numeric or bool keys and "
            f"values; this dict is {d} (str keys: call it from the interpreter)"
        )
    kdt, vdt = as_dtype(d.key_type), as_dtype(d.value_type)
    kblob, kbits = blob_dtypes(d.key_type)
    vblob, vbits = blob_dtypes(d.value_type)
    # 1- and 2-byte types travel in 4-byte blobs and are narrowed after; the others are viewed.
    k_padded = np.dtype(kblob).itemsize != kdt.itemsize
    v_padded = np.dtype(vblob).itemsize != vdt.itemsize

    def impl(d):
        room = len(d)
        while True:
            room += room // 16 + 16  # other threads may insert meanwhile
            kb = np.empty(room, dtype=kblob)
            vb = np.empty(room, dtype=vblob)
            st, met = abi.c_export_many(d, kb, vb)
            check(st)
            if met <= room:
                break
            room = met
        ks = kb[:met].astype(kbits).view(kdt) if k_padded else kb[:met].view(kdt)
        vs = vb[:met].astype(vbits).view(vdt) if v_padded else vb[:met].view(vdt)
        return ks, vs

    return impl


def merge_op(op):
    """The Op a merge's op argument names (a string constant), or a TypingError."""
    if is_omitted(op):
        return Op.ASSIGN
    if isinstance(op, types.StringLiteral) and op.literal_value in OP_NAMES:
        return OP_NAMES[op.literal_value]
    names = ", ".join(repr(n) for n in OP_NAMES)
    if isinstance(op, types.StringLiteral):
        raise TypingError(f"pardict.Dict.merge: unknown op {op.literal_value!r} (use {names})")
    raise TypingError(f"pardict.Dict.merge: op must be a string constant ({names}), got {op}")


@overload_method(DictType, "merge", prefer_literal=True)
def _ol_merge(d, other, op="assign", threads=None):
    """d.merge(other, op='assign', threads=None): every item of other into d, by assignment or by
    d.add/min/max; returns how many keys were new to d. Dicts of one type merge in C++ on
    `threads` workers (numeric ones through the bulk path, others through pardict_merge). Each item is one atomic step; the merge as a whole is
    not."""
    if not isinstance(other, DictType):
        raise TypingError(
            f"pardict.Dict.merge needs another pardict.Dict, got {other} (convert a "
            f"numba typed.Dict with pardict.Dict.from_typed)"
        )
    opc = merge_op(op)
    keyty, valty = d.key_type, d.value_type
    sentry_safe_cast(other.key_type, keyty)
    sentry_safe_cast(other.value_type, valty)
    if opc != Op.ASSIGN and not combinable(valty):
        raise TypingError(
            f"pardict.Dict.merge(op={op.literal_value!r}) needs numeric values "
            f"(integers, floats, or tuples of them); this dict stores {valty}"
        )
    opv = int(opc)
    if (
        other == d
        and np_scalar(keyty)
        and np_scalar(valty)
        and (opc == Op.ASSIGN or abi.scalar_kind(valty) is not None)
    ):

        def impl_bulk(d, other, op="assign", threads=None):
            k, v = other.to_arrays()
            return combine_arrays(d, k, v, opv, threads)

        return impl_bulk
    if other == d:
        # One type (str keys, tuple values, ...): the C++ merge (pardict_merge) copies other's
        # elements out once and stores or combines them on `threads` workers, without making a
        # numba object per item.

        def impl_same(d, other, op="assign", threads=None):
            st, n = abi.c_merge(d, other, opv, nthreads(threads))
            check(st)
            return n

        return impl_same
    if opc == Op.ASSIGN:
        inserted = int(Result.INSERTED)

        def impl_assign(d, other, op="assign", threads=None):
            n = 0
            for k, v in other.items():
                st = abi.c_set(d, conv(k, keyty), conv(owned(d, v), valty))
                check(st)
                n += st == inserted
            return n

        return impl_assign
    new_key = int(Result.NEW_KEY)

    def impl(d, other, op="assign", threads=None):
        n = 0
        for k, v in other.items():
            st, _ = abi.c_combine(d, conv(k, keyty), conv(v, valty), opv)
            check(st)
            n += st == new_key
        return n

    return impl


@overload_classmethod(DictType, "from_arrays")
def _ol_from_arrays(cls, keys, values, threads=None):
    """Dict.from_arrays(keys, values, threads=None) in jitted code: a dict typed by the arrays'
    dtypes (a NumPy unicode array gives str keys) holding d[keys[i]] = values[i]."""
    if cls.instance_type is not DictType:
        return
    for what, a in (("keys", keys), ("values", values)):
        if not (isinstance(a, types.Array) and a.ndim == 1):
            raise TypingError(f"pardict.Dict.from_arrays: {what} must be a 1-d array, got {a}")
    kt = types.unicode_type if isinstance(keys.dtype, types.UnicodeCharSeq) else keys.dtype
    dty = DictType(kt, values.dtype)

    def impl(cls, keys, values, threads=None):
        if keys.size != values.size:
            raise ValueError("keys and values differ in length")
        d = new_dict(dty, keys.size)
        d.set_many(keys, values, threads)
        return d

    return impl
