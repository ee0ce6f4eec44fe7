"""Lowering of pardict.Dict in jitted code: intrinsics over the C ABI, and the mapping API.

Every operation is one call into the C ABI (capi/pardict_capi.h), which is atomic on its own.
Keys and values cross it as the bytes of their numba data representation in stack buffers of the
dictionary's size classes; keys are canonicalised first (padding zeroed, -0.0 -> 0.0, one NaN) so
the C++ side can hash and compare bytes. References follow numba's NRT contract: calls borrow their
inputs, values handed out are new references, and a replaced or removed value is released here,
after the call returned, i.e. outside every lock of the table.
"""

import functools
import operator

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.errors import TypingError
from numba.core.extending import (intrinsic, lower_builtin, overload, overload_attribute,
                                  overload_method, register_jitable)
from numba.core.imputils import RefType, impl_ret_borrowed, iternext_impl
from numba.typed.typedobjectutils import _cast
from numba.typed.typedobjectutils import _sentry_safe_cast as _numba_sentry_safe_cast

from .types import DictIterType, DictType, DictViewType

ll_i8p = ir.IntType(8).as_pointer()
ll_i32 = ir.IntType(32)
ll_i64 = ir.IntType(64)
ll_void = ir.VoidType()

# C ABI status codes (pardict_capi.h)
ERR_NOMEM = -1
ERR_INVALID = -2
ERR_REENTRANT = -3
ERR_MUTATED = -4
ERR_CALLBACK = -6


def _sentry_safe_cast(fromty, toty):
    """typed.Dict's implicit-cast rules (lossy numeric casts warn, numeric domain changes are a
    TypingError), plus: a conversion numba does not know at all (int -> str, a tuple of another
    length, an 'A'-layout array into a 'C' slot) is a TypingError here, where typed.Dict fails
    later in lowering with an internal error."""
    fromty, toty = types.unliteral(fromty), types.unliteral(toty)
    if isinstance(fromty, types.UnicodeCharSeq) and toty == types.unicode_type:
        return  # NumPy string elements: str(x) is exact
    if not (isinstance(fromty, DictType) and isinstance(toty, DictType)):
        from numba.core.registry import cpu_target

        if cpu_target.typing_context.can_convert(fromty, toty) is None:
            raise TypingError(f"cannot convert {fromty} to {toty}")
    _numba_sentry_safe_cast(fromty, toty)


def _sentry_safe_cast_default(default, valty):
    if default is None or isinstance(default, (types.Omitted, types.NoneType)):
        return
    _sentry_safe_cast(default, valty)


def _conv(x, ty):
    pass


@overload(_conv)
def _ol_conv(x, ty):
    """_cast, plus NumPy string elements (UnicodeCharSeq) to unicode_type keys or values."""
    if isinstance(x, types.UnicodeCharSeq):
        return lambda x, ty: str(x)
    return lambda x, ty: _cast(x, ty)


def _fn(builder, name, ret, args):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), name)


def _handle(context, builder, dty, d):
    return cgutils.create_struct_proxy(dty)(context, builder, value=d).data


def _canon(builder, ty, val):
    """Floats as the C++ side must see them: +0.0 for -0.0, one NaN."""
    if isinstance(ty, types.Float):
        plus = builder.fadd(val, ir.Constant(val.type, 0.0))
        isnan = builder.fcmp_unordered("uno", val, val)
        return builder.select(isnan, ir.Constant(val.type, float("nan")), plus)
    if isinstance(ty, types.BaseTuple):
        out = val
        for i, t in enumerate(ty):
            out = builder.insert_value(out, _canon(builder, t, builder.extract_value(val, i)), i)
        return out
    return val


def _buffer(builder, nbytes):
    buf = cgutils.alloca_once(builder, ir.ArrayType(ll_i64, max(nbytes // 8, 1)))
    return buf


def _key_ptr(context, builder, dty, key):
    _, _, kc, _ = dty.layouts
    kty = dty.key_type
    data = context.data_model_manager[kty].as_data(builder, _canon(builder, kty, key))
    buf = _buffer(builder, kc)
    cgutils.memset(builder, buf, ir.Constant(ll_i64, max(kc, 8)), 0)
    typed = builder.bitcast(buf, data.type.as_pointer())
    builder.store(data, typed)
    cgutils.memset_padding(builder, typed)
    return builder.bitcast(buf, ll_i8p)


def _value_ptr(context, builder, vty, val, vc):
    data = context.data_model_manager[vty].as_data(builder, val)
    buf = _buffer(builder, vc)
    builder.store(data, builder.bitcast(buf, data.type.as_pointer()))
    return builder.bitcast(buf, ll_i8p)


def _kv_ptrs(context, builder, d, args):
    """(table, key buffer, value buffer) for a C ABI call taking (d, key, value) arguments."""
    vc = d.layouts[3]
    return (_handle(context, builder, d, args[0]), _key_ptr(context, builder, d, args[1]),
            _value_ptr(context, builder, d.value_type, args[2], vc))


def _out_buffer(builder, nbytes):
    buf = _buffer(builder, nbytes)
    # Zeroed, so an untouched buffer reads as a value with null references (safe to release).
    cgutils.memset(builder, buf, ir.Constant(ll_i64, max(nbytes, 8)), 0)
    return buf


def _load(context, builder, ty, ptr):
    dm = context.data_model_manager[ty]
    data = builder.load(builder.bitcast(ptr, dm.get_data_type().as_pointer()))
    return dm.from_data(builder, data)


def _check_dict(d):
    if not isinstance(d, DictType):
        raise TypingError(f"expected a pardict.Dict, got {d}")


# ---- creation and lifetime -------------------------------------------------------------------------


@intrinsic
def _create(typingctx, dtyref, n_keys):
    """Create the C++ table for a DictType; returns its address, or a negative status."""
    dty = dtyref.instance_type
    _check_dict(dty)
    if not isinstance(n_keys, types.Integer):
        raise TypingError("n_keys must be an integer")

    def codegen(context, builder, sig, args):
        k, v, _, _ = dty.layouts
        n = context.cast(builder, args[1], sig.args[1], types.int64)
        status = cgutils.alloca_once_value(builder, ll_i32(0))
        fn = _fn(builder, "pardict_new", ll_i8p,
                 [ll_i32, ll_i32, ll_i32, ll_i32, ll_i32, ll_i64, ll_i32.as_pointer()])
        h = builder.call(fn, [ll_i32(k.size), ll_i32(v.size), ll_i32(k.refs), ll_i32(k.strs),
                              ll_i32(v.refs), n, status])
        st = builder.sext(builder.load(status), ll_i64)
        return builder.select(cgutils.is_null(builder, h), st, builder.ptrtoint(h, ll_i64))

    return types.int64(dtyref, n_keys), codegen


@intrinsic
def _wrap(typingctx, dtyref, handle):
    """Own a C++ table (address from _create/_copy) by a new NRT MemInfo."""
    dty = dtyref.instance_type
    _check_dict(dty)

    def codegen(context, builder, sig, args):
        dtor = _fn(builder, "pardict_meminfo_dtor", ll_void, [ll_i8p, ll_i64, ll_i8p])
        mi = context.nrt.meminfo_alloc_dtor(builder, context.get_constant(types.uintp, 8), dtor)
        h = builder.inttoptr(args[1], ll_i8p)
        builder.store(h, builder.bitcast(context.nrt.meminfo_data(builder, mi),
                                         ll_i8p.as_pointer()))
        st = cgutils.create_struct_proxy(dty)(context, builder)
        st.meminfo = mi
        st.data = h
        return st._getvalue()

    return dty(dtyref, handle), codegen


@intrinsic
def _from_meminfo(typingctx, mi, dtyref):
    """Rebuild the native struct of a Dict from its MemInfo (unboxing)."""
    dty = dtyref.instance_type

    def codegen(context, builder, sig, args):
        st = cgutils.create_struct_proxy(dty)(context, builder)
        payload = context.nrt.meminfo_data(builder, args[0])
        st.data = builder.load(builder.bitcast(payload, ll_i8p.as_pointer()))
        st.meminfo = args[0]
        return impl_ret_borrowed(context, builder, dty, st._getvalue())

    return dty(mi, dtyref), codegen


def _raise_status(status):
    pass


@overload(_raise_status)
def _ol_raise_status(status):
    def impl(status):
        if status == ERR_NOMEM:
            raise MemoryError("pardict: cannot allocate the requested table")
        if status == ERR_INVALID:
            raise ValueError("pardict: invalid argument")
        if status == ERR_REENTRANT:
            raise RuntimeError("pardict: the dictionary was used from inside its own operation")
        if status == ERR_MUTATED:
            raise RuntimeError("dictionary changed size during iteration")
        if status == ERR_CALLBACK:
            raise RuntimeError("pardict.update: the update function failed")
        raise RuntimeError("pardict: internal error")

    return impl


def new_dict(dty, n_keys=0):
    pass


@overload(new_dict)
def _ol_new_dict(dty, n_keys=0):
    def impl(dty, n_keys=0):
        if n_keys < 0:
            raise ValueError("n_keys must be non-negative")
        h = _create(dty, n_keys)
        if h <= 0:
            _raise_status(h)
        return _wrap(dty, h)

    return impl


# ---- element operations ------------------------------------------------------------------------------


@intrinsic
def _len(typingctx, d):
    _check_dict(d)

    def codegen(context, builder, sig, args):
        fn = _fn(builder, "pardict_len", ll_i64, [ll_i8p])
        return builder.call(fn, [_handle(context, builder, d, args[0])])

    return types.int64(d), codegen


@intrinsic
def _set(typingctx, d, key, value):
    """d[key] = value. Returns 0 inserted, 1 replaced, < 0 error; releases a replaced value."""
    _check_dict(d)

    def codegen(context, builder, sig, args):
        vc = d.layouts[3]
        h, kp, vp = _kv_ptrs(context, builder, d, args)
        old = _out_buffer(builder, vc)
        fn = _fn(builder, "pardict_set", ll_i32, [ll_i8p, ll_i8p, ll_i8p, ll_i8p])
        st = builder.call(fn, [h, kp, vp, builder.bitcast(old, ll_i8p)])
        if context.enable_nrt and d.layouts[1].refs:
            with builder.if_then(builder.icmp_signed("==", st, ll_i32(1))):
                context.nrt.decref(builder, d.value_type,
                                   _load(context, builder, d.value_type, old))
        return st

    return types.int32(d, d.key_type, d.value_type), codegen


@intrinsic
def _insert(typingctx, d, key, value):
    """Insert when absent. Returns 1 inserted, 0 present, < 0 error."""
    _check_dict(d)

    def codegen(context, builder, sig, args):
        h, kp, vp = _kv_ptrs(context, builder, d, args)
        fn = _fn(builder, "pardict_insert", ll_i32, [ll_i8p, ll_i8p, ll_i8p])
        return builder.call(fn, [h, kp, vp])

    return types.int32(d, d.key_type, d.value_type), codegen


def _lookup_codegen(cname, with_key_out=False):
    def make(d):
        def codegen(context, builder, sig, args):
            vc = d.layouts[3]
            h = _handle(context, builder, d, args[0])
            kp = _key_ptr(context, builder, d, args[1])
            out = _out_buffer(builder, vc)
            fn = _fn(builder, cname, ll_i32, [ll_i8p, ll_i8p, ll_i8p])
            st = builder.call(fn, [h, kp, builder.bitcast(out, ll_i8p)])
            val = _load(context, builder, d.value_type, out)
            return context.make_tuple(builder, sig.return_type, [st, val])

        return codegen

    return make


@intrinsic
def _get(typingctx, d, key):
    """(status, value): status 1 found (value is a new reference), 0 absent, < 0 error."""
    _check_dict(d)
    return (types.Tuple([types.int32, d.value_type])(d, d.key_type),
            _lookup_codegen("pardict_get")(d))


@intrinsic
def _pop(typingctx, d, key):
    """(status, value): status 1 removed (value is handed over), 0 absent, < 0 error."""
    _check_dict(d)
    return (types.Tuple([types.int32, d.value_type])(d, d.key_type),
            _lookup_codegen("pardict_pop")(d))


@intrinsic
def _contains(typingctx, d, key):
    _check_dict(d)

    def codegen(context, builder, sig, args):
        h = _handle(context, builder, d, args[0])
        kp = _key_ptr(context, builder, d, args[1])
        fn = _fn(builder, "pardict_contains", ll_i32, [ll_i8p, ll_i8p])
        return builder.call(fn, [h, kp])

    return types.int32(d, d.key_type), codegen


@intrinsic
def _setdefault(typingctx, d, key, dflt):
    """(status, value): 1 inserted dflt, 0 was present; value is the stored one (new ref)."""
    _check_dict(d)

    def codegen(context, builder, sig, args):
        vc = d.layouts[3]
        h, kp, dp = _kv_ptrs(context, builder, d, args)
        out = _out_buffer(builder, vc)
        fn = _fn(builder, "pardict_setdefault", ll_i32, [ll_i8p, ll_i8p, ll_i8p, ll_i8p])
        st = builder.call(fn, [h, kp, dp, builder.bitcast(out, ll_i8p)])
        val = _load(context, builder, d.value_type, out)
        return context.make_tuple(builder, sig.return_type, [st, val])

    return types.Tuple([types.int32, d.value_type])(d, d.key_type, d.value_type), codegen


@intrinsic
def _popitem(typingctx, d):
    """(status, key, value), both handed over when status is 1."""
    _check_dict(d)

    def codegen(context, builder, sig, args):
        _, _, kc, vc = d.layouts
        h = _handle(context, builder, d, args[0])
        kout = _out_buffer(builder, kc)
        vout = _out_buffer(builder, vc)
        fn = _fn(builder, "pardict_popitem", ll_i32, [ll_i8p, ll_i8p, ll_i8p])
        st = builder.call(fn, [h, builder.bitcast(kout, ll_i8p), builder.bitcast(vout, ll_i8p)])
        key = _load(context, builder, d.key_type, kout)
        val = _load(context, builder, d.value_type, vout)
        return context.make_tuple(builder, sig.return_type, [st, key, val])

    return types.Tuple([types.int32, d.key_type, d.value_type])(d), codegen


@intrinsic
def _clear(typingctx, d):
    _check_dict(d)

    def codegen(context, builder, sig, args):
        fn = _fn(builder, "pardict_clear", ll_i32, [ll_i8p])
        return builder.call(fn, [_handle(context, builder, d, args[0])])

    return types.int32(d), codegen


@intrinsic
def _reserve(typingctx, d, n):
    _check_dict(d)

    def codegen(context, builder, sig, args):
        fn = _fn(builder, "pardict_reserve", ll_i32, [ll_i8p, ll_i64])
        nn = context.cast(builder, args[1], sig.args[1], types.int64)
        return builder.call(fn, [_handle(context, builder, d, args[0]), nn])

    return types.int32(d, n), codegen


@intrinsic
def _copy_handle(typingctx, d):
    """Address of a new C++ table with d's elements, or a negative status."""
    _check_dict(d)

    def codegen(context, builder, sig, args):
        status = cgutils.alloca_once_value(builder, ll_i32(0))
        fn = _fn(builder, "pardict_copy", ll_i8p, [ll_i8p, ll_i32.as_pointer()])
        h = builder.call(fn, [_handle(context, builder, d, args[0]), status])
        st = builder.sext(builder.load(status), ll_i64)
        return builder.select(cgutils.is_null(builder, h), st, builder.ptrtoint(h, ll_i64))

    return types.int64(d), codegen


@intrinsic
def _handle_address(typingctx, d):
    _check_dict(d)

    def codegen(context, builder, sig, args):
        return builder.ptrtoint(_handle(context, builder, d, args[0]), ll_i64)

    return types.int64(d), codegen


# ---- iteration ------------------------------------------------------------------------------------------


def _open_iterator(context, builder, dty, dval, iter_type):
    st = cgutils.create_struct_proxy(dty)(context, builder, value=dval)
    status = cgutils.alloca_once_value(builder, ll_i32(0))
    fn = _fn(builder, "pardict_iter_new", ll_i8p, [ll_i8p, ll_i8p, ll_i32.as_pointer()])
    mi_raw = builder.bitcast(st.meminfo, ll_i8p)
    it = builder.call(fn, [st.data, mi_raw, status])
    with builder.if_then(cgutils.is_null(builder, it), likely=False):
        context.call_conv.return_user_exc(
            builder, MemoryError, ("pardict: cannot allocate the iteration snapshot",))
    dtor = _fn(builder, "pardict_iter_meminfo_dtor", ll_void, [ll_i8p, ll_i64, ll_i8p])
    mi = context.nrt.meminfo_alloc_dtor(builder, context.get_constant(types.uintp, 8), dtor)
    builder.store(it, builder.bitcast(context.nrt.meminfo_data(builder, mi), ll_i8p.as_pointer()))
    out = cgutils.create_struct_proxy(iter_type)(context, builder)
    out.meminfo = mi
    out.state = it
    return out._getvalue()


@lower_builtin("getiter", DictType)
def _dict_getiter(context, builder, sig, args):
    [dty] = sig.args
    return _open_iterator(context, builder, dty, args[0], sig.return_type)


@lower_builtin("getiter", DictViewType)
def _view_getiter(context, builder, sig, args):
    [vty] = sig.args
    view = cgutils.create_struct_proxy(vty)(context, builder, value=args[0])
    return _open_iterator(context, builder, vty.dict_type, view.parent, sig.return_type)


@lower_builtin("iternext", DictIterType)
@iternext_impl(RefType.BORROWED)
def _iternext(context, builder, sig, args, result):
    [ity] = sig.args
    dty = ity.dict_type
    it = cgutils.create_struct_proxy(ity)(context, builder, value=args[0])
    kp = cgutils.alloca_once(builder, ll_i8p)
    vp = cgutils.alloca_once(builder, ll_i8p)
    fn = _fn(builder, "pardict_iter_next", ll_i32, [ll_i8p, ll_i8p.as_pointer(),
                                                    ll_i8p.as_pointer()])
    st = builder.call(fn, [it.state, kp, vp])
    with builder.if_then(builder.icmp_signed("<", st, ll_i32(0)), likely=False):
        context.call_conv.return_user_exc(
            builder, RuntimeError, ("dictionary changed size during iteration",))
    valid = builder.icmp_signed("==", st, ll_i32(1))
    result.set_valid(valid)
    with builder.if_then(valid):
        if ity.kind == "keys":
            result.yield_(_load(context, builder, dty.key_type, builder.load(kp)))
        elif ity.kind == "values":
            result.yield_(_load(context, builder, dty.value_type, builder.load(vp)))
        else:
            k = _load(context, builder, dty.key_type, builder.load(kp))
            v = _load(context, builder, dty.value_type, builder.load(vp))
            result.yield_(context.make_tuple(builder, ity.yield_type, [k, v]))


def _view_maker(kind):
    @intrinsic
    def make_view(typingctx, d):
        def codegen(context, builder, sig, args):
            out = cgutils.create_struct_proxy(sig.return_type)(context, builder)
            out.parent = args[0]
            context.nrt.incref(builder, d, args[0])
            return out._getvalue()

        return DictViewType(d, kind)(d), codegen

    return make_view


_keys_view = _view_maker("keys")
_values_view = _view_maker("values")
_items_view = _view_maker("items")


@overload(len)
def _ol_view_len(v):
    if isinstance(v, DictViewType):
        return lambda v: _len(v._parent)


@overload_attribute(DictViewType, "_parent")
def _ol_view_parent(v):
    return lambda v: _view_parent(v)


@intrinsic
def _view_parent(typingctx, v):
    def codegen(context, builder, sig, args):
        p = cgutils.create_struct_proxy(v)(context, builder, value=args[0]).parent
        return impl_ret_borrowed(context, builder, v.dict_type, p)

    return v.dict_type(v), codegen


# ---- the mapping API ---------------------------------------------------------------------------------


@overload(len)
def _ol_len(d):
    if isinstance(d, DictType):
        return lambda d: _len(d)


@overload(operator.setitem)
def _ol_setitem(d, key, value):
    if not isinstance(d, DictType):
        return
    keyty, valty = d.key_type, d.value_type
    _sentry_safe_cast(key, keyty)
    _sentry_safe_cast(value, valty)

    if _shares_copies(d, value):
        # The seed program's loop, `d[float(i)] = v` in prange: v arrives as a borrowed view.
        # All the branching lives in one intrinsic, so this impl has the shape of the scalar one
        # below: LLVM inlines it into the loop and no incref/decref of d's MemInfo is left per
        # store. (With the branches here, a store was a call that increfed and decrefed d: one
        # cache line that every thread's stores moved between the cores.)

        def impl_array(d, key, value):
            st = _store_array(d, _conv(key, keyty), value)
            if st < 0:
                _raise_status(st)

        return impl_array

    def impl(d, key, value):
        st = _set(d, _conv(key, keyty), _conv(_owned(d, value), valty))
        if st < 0:
            _raise_status(st)

    return impl


@overload(operator.getitem)
def _ol_getitem(d, key):
    if not isinstance(d, DictType):
        return
    keyty = d.key_type
    _sentry_safe_cast(key, keyty)

    def impl(d, key):
        st, v = _get(d, _conv(key, keyty))
        if st == 1:
            return v
        if st == 0:
            raise KeyError(key)
        _raise_status(st)
        return v

    return impl


@overload(operator.delitem)
def _ol_delitem(d, key):
    if not isinstance(d, DictType):
        return
    keyty = d.key_type
    _sentry_safe_cast(key, keyty)

    def impl(d, key):
        st, v = _pop(d, _conv(key, keyty))
        if st == 0:
            raise KeyError(key)
        if st < 0:
            _raise_status(st)

    return impl


@overload(operator.contains)
def _ol_contains(d, key):
    if not isinstance(d, DictType):
        return
    keyty = d.key_type
    if not _castable(key, keyty):
        return lambda d, key: False

    def impl(d, key):
        st = _contains(d, _conv(key, keyty))
        if st < 0:
            _raise_status(st)
        return st == 1

    return impl


@intrinsic
def _borrowed_array(typingctx, a):
    """True for an array without a MemInfo: a view the callee cannot keep alive (arrays that
    parfor passes into prange bodies, global constants)."""

    def codegen(context, builder, sig, args):
        mi = cgutils.create_struct_proxy(a)(context, builder, value=args[0]).meminfo
        return cgutils.is_null(builder, mi)

    return types.boolean(a), codegen


@intrinsic
def _unowned_find(typingctx, d, a):
    """(hit, copy): this thread's earlier copy of the unowned C-contiguous array `a` stored into
    d, if it still has a's shape and bytes (a new reference); (False, null array) otherwise."""
    copy_ty = types.Array(a.dtype, a.ndim, "C")

    def codegen(context, builder, sig, args):
        size = context.get_abi_sizeof(context.get_value_type(a))
        h = _handle(context, builder, d, args[0])
        src = _value_ptr(context, builder, a, args[1], size)
        out = _out_buffer(builder, size)
        fn = _fn(builder, "pardict_unowned_find", ll_i32, [ll_i8p, ll_i8p, ll_i32, ll_i8p])
        st = builder.call(fn, [h, src, ll_i32(a.ndim), builder.bitcast(out, ll_i8p)])
        hit = builder.icmp_signed("==", st, ll_i32(1))
        return context.make_tuple(builder, sig.return_type,
                                  [hit, _load(context, builder, copy_ty, out)])

    return types.Tuple([types.boolean, copy_ty])(d, a), codegen


@intrinsic
def _unowned_remember(typingctx, d, a, copy):
    """Keep `copy` (just made from the unowned array `a`) as this thread's copy of `a` for d."""

    def codegen(context, builder, sig, args):
        size = context.get_abi_sizeof(context.get_value_type(a))
        h = _handle(context, builder, d, args[0])
        src = _value_ptr(context, builder, a, args[1], size)
        cp = _value_ptr(context, builder, copy, args[2], size)
        fn = _fn(builder, "pardict_unowned_remember", ll_i32, [ll_i8p, ll_i8p, ll_i32, ll_i8p])
        builder.call(fn, [h, src, ll_i32(a.ndim), cp])
        return context.get_dummy_value()

    return types.none(d, a, copy), codegen


_NEED_COPY = 2  # pardict_set_array: no matching copy, nothing stored


def _shares_copies(d, v):
    """Whether storing a borrowed `v` into d may share the storing thread's earlier copy of it
    (pardict_unowned_find): d's value is an array of v's ndim and v is C-contiguous."""
    return (isinstance(v, types.Array) and v.layout == "C" and isinstance(d.value_type, types.Array)
            and d.value_type.ndim == v.ndim)


@intrinsic
def _store_array(typingctx, d, key, a):
    """d[key] = a for an array `a` d may share (see _shares_copies), as _set returns
    (pardict_set_array: a replaced value is released in C). A borrowed `a` (no MemInfo) is stored
    as the thread's matching copy of it; on a miss, set_new_copy stores _owned's new copy."""
    _check_dict(d)
    copy_sig = types.int32(d, d.key_type, a)
    valty = d.value_type

    def set_new_copy(d, k, v):
        return _set(d, k, _conv(_owned(d, v), valty))

    def codegen(context, builder, sig, args):
        vc = d.layouts[3]
        h = _handle(context, builder, d, args[0])
        kp = _key_ptr(context, builder, d, args[1])
        vp = _value_ptr(context, builder, a, args[2], vc)
        fn = _fn(builder, "pardict_set_array", ll_i32, [ll_i8p, ll_i8p, ll_i8p, ll_i32])
        st = builder.call(fn, [h, kp, vp, ll_i32(a.ndim)])
        result = cgutils.alloca_once_value(builder, st)
        with builder.if_then(builder.icmp_signed("==", st, ll_i32(_NEED_COPY)), likely=False):
            # Called without propagating its exception (a failed copy): that would add an exit
            # that skips the caller's decref of d, and refcount pruning would then keep the
            # incref/decref pair on d's MemInfo; a failure becomes ERR_NOMEM instead.
            cres = context.compile_subroutine(builder, set_new_copy, copy_sig)
            status, res = context.call_internal_no_propagate(builder, cres.fndesc, copy_sig,
                                                             args)
            builder.store(builder.select(status.is_error, ll_i32(ERR_NOMEM), res), result)
        return builder.load(result)

    return types.int32(d, d.key_type, a), codegen


def _owned(d, v):
    pass


@overload(_owned)
def _ol_owned(d, v):
    """A value the dictionary can hold a reference to: arrays without an owner (a prange body's
    views of outer arrays) are copied. When the dictionary's value is such an
    array and the source is C-contiguous, storing the same unchanged source again from one thread
    shares that thread's previous copy (see pardict_unowned_find), as a serial typed.Dict loop
    would share the array itself: the seed program stores one `v` under every key."""
    if isinstance(v, types.Array) and v.layout == "F":
        # numba's copy() is C-ordered; copying the C-ordered transpose keeps the type's layout.

        def impl(d, v):
            if _borrowed_array(v):
                return v.T.copy().T
            return v

        return impl
    if _shares_copies(d, v):

        def impl(d, v):
            if _borrowed_array(v):
                hit, c = _unowned_find(d, v)
                if hit:
                    return c
                c = v.copy()
                _unowned_remember(d, v, c)
                return c
            return v

        return impl
    if isinstance(v, types.Array):

        def impl(d, v):
            if _borrowed_array(v):
                return v.copy()
            return v

        return impl
    return lambda d, v: v


def _castable(fromty, toty):
    from numba.core.registry import cpu_target

    return cpu_target.typing_context.can_convert(types.unliteral(fromty), toty) is not None


@overload_method(DictType, "get")
def _ol_get(d, key, default=None):
    keyty = d.key_type
    _sentry_safe_cast(key, keyty)
    _sentry_safe_cast_default(default, d.value_type)

    def impl(d, key, default=None):
        st, v = _get(d, _conv(key, keyty))
        if st == 1:
            return v
        if st < 0:
            _raise_status(st)
        return default

    return impl


@overload_method(DictType, "pop")
def _ol_pop(d, key, default=None):
    keyty = d.key_type
    _sentry_safe_cast(key, keyty)
    if isinstance(default, types.Omitted) or default is None:

        def impl_raise(d, key, default=None):
            st, v = _pop(d, _conv(key, keyty))
            if st == 0:
                raise KeyError(key)
            if st < 0:
                _raise_status(st)
            return v

        return impl_raise
    _sentry_safe_cast_default(default, d.value_type)

    def impl(d, key, default=None):
        st, v = _pop(d, _conv(key, keyty))
        if st == 1:
            return v
        if st < 0:
            _raise_status(st)
        return default

    return impl


@overload_method(DictType, "popitem")
def _ol_popitem(d):
    def impl(d):
        st, k, v = _popitem(d)
        if st == 1:
            return k, v
        if st == 0:
            raise KeyError("dictionary is empty")
        _raise_status(st)
        return k, v

    return impl


@overload_method(DictType, "setdefault")
def _ol_setdefault(d, key, default=None):
    keyty, valty = d.key_type, d.value_type
    _sentry_safe_cast(key, keyty)
    if isinstance(default, (types.Omitted, types.NoneType)) or default is None:
        raise TypingError("pardict.Dict.setdefault needs a default of the value type "
                          "(None cannot be stored)")
    _sentry_safe_cast(default, valty)

    def impl(d, key, default=None):
        st, v = _setdefault(d, _conv(key, keyty), _conv(_owned(d, default), valty))
        if st < 0:
            _raise_status(st)
        return v

    return impl


@overload_method(DictType, "insert")
def _ol_insert(d, key, value):
    """Insert only if absent; returns whether it was inserted (atomic)."""
    keyty, valty = d.key_type, d.value_type
    _sentry_safe_cast(key, keyty)
    _sentry_safe_cast(value, valty)

    def impl(d, key, value):
        st = _insert(d, _conv(key, keyty), _conv(_owned(d, value), valty))
        if st < 0:
            _raise_status(st)
        return st == 1

    return impl


# ---- atomic read-modify-write: add / min / max ----------------------------------------------------

_OPS = {"add": 0, "min": 1, "max": 2}  # PARDICT_OP_* (pardict_capi.h)


def _scalar_kind(ty):
    """PARDICT_KIND_* of a numeric scalar type, or None."""
    if isinstance(ty, types.Integer) and ty.bitwidth in (8, 16, 32, 64):
        return {8: 1, 16: 2, 32: 3, 64: 4}[ty.bitwidth] + (0 if ty.signed else 4)
    if isinstance(ty, types.Float):
        return {32: 9, 64: 10}.get(ty.bitwidth)
    return None


def _combinable(ty):
    if isinstance(ty, types.BaseTuple):
        return len(ty) > 0 and all(_combinable(t) for t in ty)
    return _scalar_kind(ty) is not None


def _combine_fields(context, ty, base=0):
    """(offset, kind) of every scalar in ty's data representation, following the LLVM layout of
    numba's data model (UniTuple: an array; Tuple: a non-packed struct)."""
    if not isinstance(ty, types.BaseTuple):
        return [(base, _scalar_kind(ty))]
    td = context.target_data
    out, off = [], 0
    for t in ty:
        llt = context.data_model_manager[t].get_data_type()
        align = llt.get_abi_alignment(td)
        off = (off + align - 1) // align * align
        out += _combine_fields(context, t, base + off)
        off += llt.get_abi_size(td)
    return out


def _fields_constant(builder, fields):
    """The (offset, kind) pairs of pardict_combine as an int32[2n] constant; its address."""
    flat = [ll_i32(x) for f in fields for x in f]
    gv = cgutils.global_constant(builder, builder.module.get_unique_name("pardict_fields"),
                                 ir.Constant(ir.ArrayType(ll_i32, len(flat)), flat))
    return builder.bitcast(gv, ll_i32.as_pointer())


def _combine_intrinsic(op, cname="pardict_combine"):
    @intrinsic
    def combine(typingctx, d, key, value):
        _check_dict(d)

        def codegen(context, builder, sig, args):
            vc = d.layouts[3]
            fields = _combine_fields(context, d.value_type)
            gv = _fields_constant(builder, fields)
            h, kp, vp = _kv_ptrs(context, builder, d, args)
            out = _out_buffer(builder, vc)
            fn = _fn(builder, cname, ll_i32,
                     [ll_i8p, ll_i8p, ll_i8p, ll_i32, ll_i32.as_pointer(), ll_i32, ll_i8p])
            st = builder.call(fn, [h, kp, vp, ll_i32(_OPS[op]),
                                   gv, ll_i32(len(fields)),
                                   builder.bitcast(out, ll_i8p)])
            val = _load(context, builder, d.value_type, out)
            return context.make_tuple(builder, sig.return_type, [st, val])

        return types.Tuple([types.int32, d.value_type])(d, d.key_type, d.value_type), codegen

    return combine


_COMBINE_RAW = {}
_COMBINE_STATUS = {}  # op -> jitted (d, key, value) -> (status, stored value), str elements fast


def _array_combiner(op):
    """A jitted fn(stored, x) combining x into the stored array in place, elementwise (as the
    scalar ops do: add wraps/propagates NaN; min/max replace only when x compares less/greater)."""
    from numba import njit

    if op == "add":

        @njit
        def into(stored, x):
            if stored.shape != x.shape:
                raise ValueError("pardict.Dict.add: the stored array and x differ in shape")
            stored += x
    else:
        keep_smaller = op == "min"
        msg = f"pardict.Dict.{op}: the stored array and x differ in shape"

        @njit
        def into(stored, x):
            if stored.shape != x.shape:
                raise ValueError(msg)
            for i in np.ndindex(stored.shape):
                if (x[i] < stored[i]) if keep_smaller else (stored[i] < x[i]):
                    stored[i] = x[i]

    return into


def _fresh_copy(x, like):
    pass


@overload(_fresh_copy)
def _ol_fresh_copy(x, like):
    """A new array with x's elements, of the dict's value dtype and layout."""
    ty = like.instance_type if isinstance(like, types.TypeRef) else like
    dt = ty.dtype
    if ty.layout == "F":

        def impl(x, like):
            out = np.empty(x.shape[::-1], dtype=dt).T
            out[...] = x
            return out

        return impl

    def impl(x, like):
        out = np.empty(x.shape, dtype=dt)
        out[...] = x
        return out

    return impl


def _array_combine_overload(op, d, key, value):
    keyty, valty = d.key_type, d.value_type
    if not (isinstance(value, types.Array) and value.ndim == valty.ndim):
        raise TypingError(f"pardict.Dict.{op} on a dict of {valty} needs an array of "
                          f"{valty.ndim} dimension(s), got {value}")
    if not isinstance(valty.dtype, (types.Integer, types.Float)):
        raise TypingError(f"pardict.Dict.{op} needs numeric arrays; this dict stores {valty}")
    _sentry_safe_cast(value.dtype, valty.dtype)
    _sentry_safe_cast(key, keyty)
    into = _array_combiner(op)

    def impl(d, key, value):
        k = _conv(key, keyty)
        st = _visit_with(d, k, into, value)
        if st == 0:
            # absent: store a copy (later adds must not write into the caller's array) ...
            if _insert(d, k, _conv(_fresh_copy(value, valty), valty)) == 1:
                st = 1
            else:  # ... unless another thread stored one meanwhile: combine into that
                st = _visit_with(d, k, into, value)
        if st < 0:
            _raise_status(st)
        return d[k]

    return impl


@intrinsic
def _charseq_view(typingctx, cs, n):
    """A numba string borrowing the code points of a NumPy string element (no MemInfo, no copy):
    only for calls that compare a key without storing it."""
    if not (isinstance(cs, types.UnicodeCharSeq) and isinstance(n, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        buf = cgutils.alloca_once_value(builder, args[0])  # lives as long as the caller's frame
        u = cgutils.create_struct_proxy(types.unicode_type)(context, builder)
        u.data = builder.bitcast(buf, u.data.type)
        u.length = builder.sext(args[1], u.length.type) if args[1].type.width < 64 else args[1]
        u.kind = ir.Constant(u.kind.type, 4)  # NumPy strings are UCS4
        u.is_ascii = ir.Constant(u.is_ascii.type, 0)
        u.hash = ir.Constant(u.hash.type, -1)
        return u._getvalue()

    return types.unicode_type(cs, n), codegen


def _make_combine_method(op):
    raw = _combine_intrinsic(op)
    present = _combine_intrinsic(op, "pardict_combine_present")
    _COMBINE_RAW[op] = raw

    def ol(d, key, value):
        keyty, valty = d.key_type, d.value_type
        if isinstance(valty, types.Array):
            return _array_combine_overload(op, d, key, value)
        if not _combinable(valty):
            raise TypingError(f"pardict.Dict.{op} needs numeric values (integers, floats, or "
                              f"tuples of them); this dict stores {valty}")
        _sentry_safe_cast(key, keyty)
        _sentry_safe_cast(value, valty)

        def impl(d, key, value):
            st, v = combine_status(d, key, value)
            if st < 0:
                _raise_status(st)
            return v

        return impl

    def combine_status(d, key, value):
        pass

    @overload(combine_status)
    def ol_status(d, key, value):
        """(status, stored value): 1 inserted, 0 combined, < 0 error."""
        keyty, valty = d.key_type, d.value_type
        if isinstance(key, types.UnicodeCharSeq) and keyty == types.unicode_type:
            # A NumPy string element: most calls (counting) find the key, so look it up through
            # a borrowed view first and build a numba string only to insert a new key.

            def impl(d, key, value):
                st, v = present(d, _charseq_view(key, len(key)), _conv(value, valty))
                if st == 1:
                    return 0, v
                if st < 0:
                    return st, v
                return raw(d, str(key), _conv(value, valty))

            return impl
        return lambda d, key, value: raw(d, _conv(key, keyty), _conv(value, valty))

    _COMBINE_STATUS[op] = combine_status

    ol.__doc__ = (f"d.{op}(key, x): one atomic step that stores x when key is absent, else "
                  f"{'adds x to' if op == 'add' else 'keeps the ' + op + ' of x and'} the stored "
                  f"value (tuples field by field); returns the stored result.")
    overload_method(DictType, op)(ol)


for _op in _OPS:
    _make_combine_method(_op)


# ---- pardict.update(d, key, fn, default): a jitted function applied under the element's lock ------

# What a failed callback leaves for its caller: {status code, excinfo}, plus one argument slot.
_CB_CTX = ir.LiteralStructType([ll_i32, ll_i8p, ll_i8p])
_CB_TY = ir.FunctionType(ll_i32, [ll_i8p, ll_i8p])


def _make_callback(context, builder, disp, fsig, valty, extra_ty=None, store_result=True):
    """A C function int32(ctx, value*) calling the jitted `disp` on the value at value* (and on
    the extra argument whose address is in ctx slot 2); it stores the result back when
    store_result. A numba exception is parked in ctx (code, excinfo) and reported as 1."""
    cres = disp.dispatcher.get_compile_result(fsig)
    context.add_linking_libs([cres.library])
    mod = builder.module
    cb = ir.Function(mod, _CB_TY, name=mod.get_unique_name("pardict_cb"))
    cb.linkage = "internal"
    wb = ir.IRBuilder(cb.append_basic_block("entry"))
    cptr, vptr = cb.args
    c = wb.bitcast(cptr, _CB_CTX.as_pointer())
    fargs = [_load(context, wb, valty, vptr)]
    if extra_ty is not None:
        fargs.append(_load(context, wb, extra_ty, wb.load(cgutils.gep_inbounds(wb, c, 0, 2))))
    callee = context.declare_function(mod, cres.fndesc)
    status, res = context.call_conv.call_function(
        wb, callee, cres.signature.return_type, cres.signature.args, fargs)
    with wb.if_then(status.is_error, likely=False):
        wb.store(status.code, cgutils.gep_inbounds(wb, c, 0, 0))
        wb.store(wb.bitcast(status.excinfoptr, ll_i8p), cgutils.gep_inbounds(wb, c, 0, 1))
        wb.ret(ll_i32(1))
    if store_result:
        res = context.cast(wb, res, cres.signature.return_type, valty)
        data = context.data_model_manager[valty].as_data(wb, res)
        wb.store(data, wb.bitcast(vptr, data.type.as_pointer()))
    wb.ret(ll_i32(0))
    return cb


def _propagate_callback_error(context, builder, st, ctx):
    """After a C call that ran a callback: re-raise the callback's numba exception, if any."""
    from numba.core.callconv import excinfo_ptr_t

    code = builder.load(cgutils.gep_inbounds(builder, ctx, 0, 0))
    failed = builder.and_(builder.icmp_signed("==", st, ll_i32(ERR_CALLBACK)),
                          builder.icmp_signed("!=", code, ll_i32(0)))
    with builder.if_then(failed, likely=False):
        exc = builder.bitcast(builder.load(cgutils.gep_inbounds(builder, ctx, 0, 1)),
                              excinfo_ptr_t)

        class _Propagated:  # what return_status_propagate reads of a call status
            pass

        prop = _Propagated()
        prop.code, prop.excinfoptr = code, exc
        context.call_conv.return_status_propagate(builder, prop)


def _new_ctx(builder):
    ctx = cgutils.alloca_once(builder, _CB_CTX)
    builder.store(ir.Constant(_CB_CTX, None), ctx)
    return ctx


@intrinsic
def _update_raw(typingctx, d, key, dflt, fn):
    """(status, value): status 1 inserted, 0 updated, < 0 error. If fn raised, its exception is
    propagated from here (the entry is unchanged)."""
    _check_dict(d)
    valty = d.value_type
    fsig = typingctx.resolve_function_type(fn, (valty,), {})
    if fsig is None:
        raise TypingError(f"pardict.update: fn cannot be called with a {valty}")
    try:
        _sentry_safe_cast(fsig.return_type, valty)  # typed.Dict's rules, as for d[k] = v
    except TypingError as e:
        raise TypingError(f"pardict.update: fn returns {fsig.return_type}, which cannot be stored "
                          f"as {valty}: {e}") from None

    def codegen(context, builder, sig, args):
        vc = d.layouts[3]
        cb = _make_callback(context, builder, fn, fsig, valty)
        h, kp, dp = _kv_ptrs(context, builder, d, args)
        out = _out_buffer(builder, vc)
        ctx = _new_ctx(builder)
        cfn = _fn(builder, "pardict_update", ll_i32,
                  [ll_i8p, ll_i8p, ll_i8p, _CB_TY.as_pointer(), ll_i8p, ll_i8p])
        st = builder.call(cfn, [h, kp, dp, cb, builder.bitcast(ctx, ll_i8p),
                                builder.bitcast(out, ll_i8p)])
        _propagate_callback_error(context, builder, st, ctx)
        return context.make_tuple(builder, sig.return_type,
                                  [st, _load(context, builder, valty, out)])

    return types.Tuple([types.int32, valty])(d, d.key_type, valty, fn), codegen


@intrinsic
def _visit_with(typingctx, d, key, fn, x):
    """Under key's element lock, fn(stored value, x) (its result ignored). 1 found, 0 absent,
    < 0 error; fn's exception is propagated."""
    _check_dict(d)
    valty = d.value_type
    fsig = typingctx.resolve_function_type(fn, (valty, x), {})
    if fsig is None:
        raise TypingError(f"cannot call {fn} with ({valty}, {x})")

    def codegen(context, builder, sig, args):
        cb = _make_callback(context, builder, fn, fsig, valty, extra_ty=x, store_result=False)
        h = _handle(context, builder, d, args[0])
        kp = _key_ptr(context, builder, d, args[1])
        ctx = _new_ctx(builder)
        xslot = cgutils.alloca_once_value(
            builder, context.data_model_manager[x].as_data(builder, args[3]))
        builder.store(builder.bitcast(xslot, ll_i8p), cgutils.gep_inbounds(builder, ctx, 0, 2))
        cfn = _fn(builder, "pardict_visit", ll_i32, [ll_i8p, ll_i8p, _CB_TY.as_pointer(), ll_i8p])
        st = builder.call(cfn, [h, kp, cb, builder.bitcast(ctx, ll_i8p)])
        _propagate_callback_error(context, builder, st, ctx)
        return st

    return types.int32(d, d.key_type, fn, x), codegen


def update(d, key, fn, default):
    """pardict.update(d, key, fn, default): one atomic step that stores fn(d[key]) -- or
    fn(default) when key is absent -- and returns it. fn is an @njit function of the value; it runs
    under the element's lock, so it must be short and must not use d (doing so raises
    RuntimeError instead of deadlocking). If fn raises, its exception propagates and the entry is
    left unchanged. Values must be free of references (numbers, tuples of numbers). Works in the
    interpreter and in @njit code."""
    from numba.core.dispatcher import Dispatcher

    from ..dict import _update_helper

    if not isinstance(fn, Dispatcher):
        raise TypeError(f"pardict.update needs an @njit function, got {fn!r}")
    return _update_helper(d, key, fn, default)


@overload(update)
def _ol_update(d, key, fn, default):
    if not isinstance(d, DictType):
        raise TypingError(f"pardict.update needs a pardict.Dict, got {d}")
    if not isinstance(fn, types.Dispatcher):
        raise TypingError(f"pardict.update needs an @njit function, got {fn}")
    if d.layouts[1].refs:
        raise TypingError(f"pardict.update needs values without references (numbers, tuples of "
                          f"numbers); this dict stores {d.value_type}")
    keyty, valty = d.key_type, d.value_type
    _sentry_safe_cast(key, keyty)
    _sentry_safe_cast(default, valty)

    def impl(d, key, fn, default):
        st, v = _update_raw(d, _conv(key, keyty), _conv(default, valty), fn)
        if st < 0:
            _raise_status(st)
        return v

    return impl


# ---- bulk operations in jitted code (numeric keys and values: the C++ prefetching path) -------------


def _np_scalar(ty):
    return isinstance(ty, (types.Integer, types.Float, types.Boolean))


def _blob_dtype(ty):
    """The NumPy dtype whose items are ty's blobs in the C ABI (1- and 2-byte types are padded
    to 4 bytes), and the unsigned dtype of ty's own size (to move the bits)."""
    import numpy as np

    from numba.np.numpy_support import as_dtype

    size = as_dtype(ty).itemsize
    bits = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[size]
    return (np.uint32 if size < 4 else bits), bits


def _to_blobs(arr, ty):
    pass


@overload(_to_blobs)
def _ol_to_blobs(arr, ty):
    """A contiguous array of arr's items converted to ty (floats canonical), as C ABI blobs."""
    elt = ty.instance_type if isinstance(ty, (types.NumberClass, types.TypeRef)) else ty.dtype
    import numpy as np

    from numba.np.numpy_support import as_dtype

    dt = as_dtype(elt)
    blob, bits = _blob_dtype(elt)
    is_float = isinstance(elt, types.Float)

    def impl(arr, ty):
        a = np.empty(arr.size, dt)
        for i in range(arr.size):
            x = dt.type(arr[i]) if not is_float else dt.type(arr[i]) + dt.type(0)
            if is_float and x != x:
                x = dt.type(np.nan)
            a[i] = x
        return a.view(bits).astype(blob)

    return impl


def _array_data(context, builder, ty, v):
    """The data pointer of an array value, as i8*."""
    return builder.bitcast(cgutils.create_struct_proxy(ty)(context, builder, value=v).data, ll_i8p)


def _bulk_intrinsic(cname, with_values_in):
    @intrinsic
    def bulk(typingctx, d, keys, values, found, op, threads):
        _check_dict(d)

        def codegen(context, builder, sig, args):
            dp, kp, vp, fp, opv, th = args
            data = functools.partial(_array_data, context, builder)

            h = _handle(context, builder, d, dp)
            n = cgutils.create_struct_proxy(keys)(context, builder, value=kp).nitems
            count = cgutils.alloca_once_value(builder, ll_i64(0))
            if with_values_in:
                gv = _fields_constant(builder, [(0, _scalar_kind(d.value_type) or 0)])
                nf = builder.select(builder.icmp_signed(">=", opv, ll_i32(0)), ll_i32(1),
                                    ll_i32(0))
                fn = _fn(builder, cname, ll_i32, [ll_i8p, ll_i8p, ll_i8p, ll_i64, ll_i32,
                                                   ll_i32.as_pointer(), ll_i32, ll_i32,
                                                   ll_i64.as_pointer()])
                st = builder.call(fn, [h, data(keys, kp), data(values, vp), n, opv,
                                       gv, nf, th, count])
            else:
                fn = _fn(builder, cname, ll_i32, [ll_i8p, ll_i8p, ll_i64, ll_i8p, ll_i8p, ll_i32,
                                                   ll_i64.as_pointer()])
                vptr = (cgutils.get_null_value(ll_i8p) if isinstance(values, types.NoneType)
                        else data(values, vp))
                st = builder.call(fn, [h, data(keys, kp), n, vptr, data(found, fp), th, count])
            return context.make_tuple(builder, sig.return_type, [st, builder.load(count)])

        return types.Tuple([types.int32, types.int64])(d, keys, values, found, op, threads), \
            codegen

    return bulk


_combine_many_raw = _bulk_intrinsic("pardict_combine_many", True)
_get_many_raw = _bulk_intrinsic("pardict_get_many", False)


def _str_keys_kind(d, keys):
    """For a dict with str keys: "chars" for a 1-d NumPy unicode array of keys, "seq" for a list
    of str; None otherwise."""
    if d.key_type != types.unicode_type:
        return None
    if (isinstance(keys, types.Array) and keys.ndim == 1
            and isinstance(keys.dtype, types.UnicodeCharSeq)):
        return "chars"
    if isinstance(keys, (types.List, types.ListType)) and keys.dtype == types.unicode_type:
        return "seq"
    return None


def _check_bulk(d, keys, values=None, need_values=True):
    str_keys = _str_keys_kind(d, keys) is not None
    if not ((_np_scalar(d.key_type) or str_keys)
            and (_np_scalar(d.value_type) or not need_values)):
        raise TypingError(f"bulk operations in jitted code need numeric or bool values and "
                          f"numeric or bool keys (or str keys from a NumPy unicode array or a "
                          f"list of str); this dict is {d}, the keys are {keys}")
    for what, a in (("keys", None if str_keys else keys), ("values", values)):
        if a is not None and not (isinstance(a, types.Array) and a.ndim == 1):
            raise TypingError(f"{what} must be a 1-d array, got {a}")
    if not str_keys:
        _sentry_safe_cast(keys.dtype, d.key_type)
    if values is not None:
        _sentry_safe_cast(values.dtype, d.value_type)


def _nthreads(threads):
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
    _launch_numba_threads()

    def codegen(context, builder, sig, args):
        context.active_code_library._reload_init.add(_launch_numba_threads)
        fn = _fn(builder, "get_num_threads", cgutils.intp_t, [])
        return builder.call(fn, [])

    return types.intp(), codegen


@overload(_nthreads)
def _ol_nthreads(threads):
    if isinstance(threads, (types.Omitted, types.NoneType)) or threads is None:
        return lambda threads: max(1, _numba_num_threads())
    return lambda threads: max(1, threads)


# ---- str keys in jitted bulk calls --------------------------------------------------------------
# A C-contiguous NumPy unicode array takes the C++ paths the interpreter uses, which read the
# elements in place on their own worker threads (so they are safe inside a prange body on every
# threading layer): get/contains_many look the words up in prefetched batches; add/min/max/
# count_many aggregate per word, and the words the dict lacks come back once per worker and are
# combined here. Everything else with str keys (set_many, which must build numba strings; strided
# arrays; lists of str) is a loop of single atomic operations on the calling thread: a nested
# prange kernel would abort under the workqueue layer when the caller itself runs in a prange body.


@intrinsic
def _combine_many_ucs4_raw(typingctx, d, keys, values, stride, op, threads, miss_rows,
                           miss_vals):
    """pardict_combine_many_ucs4 over a C-contiguous NumPy unicode array: (status, misses)."""
    _check_dict(d)

    def codegen(context, builder, sig, args):
        dp, kp, vp, sv, opv, th, mr, mv = args
        data = functools.partial(_array_data, context, builder)

        h = _handle(context, builder, d, dp)
        n = cgutils.create_struct_proxy(keys)(context, builder, value=kp).nitems
        count = cgutils.alloca_once_value(builder, ll_i64(0))
        gv = _fields_constant(builder, [(0, _scalar_kind(d.value_type))])
        fn = _fn(builder, "pardict_combine_many_ucs4", ll_i32,
                 [ll_i8p, ll_i8p, ll_i64, ll_i64, ll_i8p, ll_i64, ll_i32, ll_i32.as_pointer(),
                  ll_i32, ll_i32, ll_i64.as_pointer(), ll_i8p, ll_i64.as_pointer()])
        st = builder.call(fn, [h, data(keys, kp), ll_i64(keys.dtype.count), n, data(values, vp),
                               sv, opv, gv, ll_i32(1), th,
                               builder.bitcast(data(miss_rows, mr), ll_i64.as_pointer()),
                               data(miss_vals, mv), count])
        return context.make_tuple(builder, sig.return_type, [st, builder.load(count)])

    return types.Tuple([types.int32, types.int64])(d, keys, values, types.int64, types.int32,
                                                   types.int32, miss_rows, miss_vals), codegen


@intrinsic
def _get_many_ucs4_raw(typingctx, d, keys, values, found, threads):
    """pardict_get_many_ucs4 over a C-contiguous NumPy unicode array: (status, found count).
    values None: only `found` is written (contains_many, any value type)."""
    _check_dict(d)

    def codegen(context, builder, sig, args):
        dp, kp, vp, fp, th = args
        data = functools.partial(_array_data, context, builder)

        h = _handle(context, builder, d, dp)
        n = cgutils.create_struct_proxy(keys)(context, builder, value=kp).nitems
        count = cgutils.alloca_once_value(builder, ll_i64(0))
        vptr = (cgutils.get_null_value(ll_i8p) if isinstance(values, types.NoneType)
                else data(values, vp))
        fn = _fn(builder, "pardict_get_many_ucs4", ll_i32,
                 [ll_i8p, ll_i8p, ll_i64, ll_i64, ll_i8p, ll_i8p, ll_i32, ll_i64.as_pointer()])
        st = builder.call(fn, [h, data(keys, kp), ll_i64(keys.dtype.count), n, vptr,
                               data(found, fp), th, count])
        return context.make_tuple(builder, sig.return_type, [st, builder.load(count)])

    return types.Tuple([types.int32, types.int64])(d, keys, values, found, threads), codegen


def _ucs4_ok(d, keys):
    """Whether str keys can take the C++ paths that read a NumPy unicode array in place."""
    return (_str_keys_kind(d, keys) == "chars" and keys.layout == "C"
            and keys.dtype.count > 0)


def _bulk_lookup_ok(d, keys):
    """Whether _bulk_lookup takes these keys: numeric keys, or str keys in a C-contiguous NumPy
    unicode array."""
    return _ucs4_ok(d, keys) or _str_keys_kind(d, keys) is None


_OP_NAMES = {0: "add", 1: "min", 2: "max"}


def _str_combine_impl(d, keys, op, count):
    """The jitted implementation of add/min/max_many (d, keys, values, threads=None) with str
    keys, or with count=True of count_many (d, keys, threads=None): returns how many keys were
    new."""
    combine = _COMBINE_STATUS[_OP_NAMES[op]]
    valty = d.value_type
    blob, bits = _blob_dtype(valty)
    from numba.np.numpy_support import as_dtype

    vdt = as_dtype(valty)
    stride = 0 if count else np.dtype(blob).itemsize
    fast = _ucs4_ok(d, keys)

    def serial(d, keys, values, threads):
        new = 0
        for i in range(len(keys)):
            st, _ = combine(d, keys[i], values[0 if count else i])
            if st < 0:
                _raise_status(st)
            new += st
        return new

    def ucs4(d, keys, values, threads):
        n = keys.size
        if n == 0:
            return 0
        vb = _to_blobs(values, valty)
        rows = np.empty(n, dtype=np.int64)
        got = np.empty(n, dtype=blob)
        st, m = _combine_many_ucs4_raw(d, keys, vb, stride, np.int32(op),
                                       np.int32(_nthreads(threads)), rows, got)
        if st < 0:
            _raise_status(st)
        vals = got[:m].astype(bits).view(vdt)
        new = 0
        for j in range(m):
            st, _ = combine(d, keys[rows[j]], vals[j])
            if st < 0:
                _raise_status(st)
            new += st
        return new

    run = _register_impl(ucs4 if fast else serial)
    if count:
        return lambda d, keys, threads=None: run(d, keys, np.ones(1, dtype=valty), threads)

    def impl(d, keys, values, threads=None):
        if len(keys) != values.size:
            raise ValueError("keys and values differ in length")
        return run(d, keys, values, threads)

    return impl


def _register_impl(fn):
    """fn as a function jitted code can call: an overload of a stub, so it compiles into its
    caller's library (and caches with it) like every other overload here."""

    def stub(d, keys, values, threads):
        pass

    overload(stub)(lambda d, keys, values, threads: fn)
    return stub


def _make_bulk_method(name, op):
    def ol(d, keys, values, threads=None):
        _check_bulk(d, keys, values)
        if op >= 0 and _scalar_kind(d.value_type) is None:
            raise TypingError(f"pardict.Dict.{name} needs integer or float values; this dict "
                              f"stores {d.value_type}")
        keyty, valty = d.key_type, d.value_type
        if _str_keys_kind(d, keys) is not None:
            if op >= 0:
                return _str_combine_impl(d, keys, op, False)

            def impl_str_set(d, keys, values, threads=None):
                if len(keys) != values.size:
                    raise ValueError("keys and values differ in length")
                new = 0
                for i in range(len(keys)):
                    st = _set(d, _conv(str(keys[i]), keyty), _conv(values[i], valty))
                    if st < 0:
                        _raise_status(st)
                    if st == 0:
                        new += 1
                return new

            return impl_str_set

        def impl(d, keys, values, threads=None):
            if keys.size != values.size:
                raise ValueError("keys and values differ in length")
            kb = _to_blobs(keys, keyty)
            vb = _to_blobs(values, valty)
            st, n = _combine_many_raw(d, kb, vb, kb, np.int32(op), np.int32(_nthreads(threads)))
            if st < 0:
                _raise_status(st)
            return n

        return impl

    overload_method(DictType, name)(ol)


for _name, _code in (("set_many", -1), ("add_many", 0), ("min_many", 1), ("max_many", 2)):
    _make_bulk_method(_name, _code)


@overload_method(DictType, "count_many")
def _ol_count_many(d, keys, threads=None):
    _check_bulk(d, keys)
    if not isinstance(d.value_type, types.Integer):
        raise TypingError(f"pardict.Dict.count_many needs integer values; this dict stores "
                          f"{d.value_type}")
    valty = d.value_type
    if _str_keys_kind(d, keys) is not None:
        return _str_combine_impl(d, keys, 0, True)

    def impl(d, keys, threads=None):
        return d.add_many(keys, np.ones(keys.size, dtype=valty), threads)

    return impl


@overload_method(DictType, "get_many")
def _ol_get_many(d, keys, default=0, threads=None):
    _check_bulk(d, keys)
    valty = d.value_type
    blob, bits = _blob_dtype(valty)
    from numba.np.numpy_support import as_dtype

    vdt = as_dtype(valty)
    if _bulk_lookup_ok(d, keys):

        def impl(d, keys, default=0, threads=None):
            raw = np.zeros(keys.size, dtype=blob)
            found = np.zeros(keys.size, dtype=np.uint8)
            _bulk_lookup(d, keys, raw, found, threads)
            return _found_or_default(raw.astype(bits).view(vdt), found, default)

        return impl
    if _str_keys_kind(d, keys) == "chars":
        # Strided: looked up through a borrowed view of each NumPy element (made in this frame,
        # which it must not outlive), on the calling thread; no numba string per key.

        def impl_chars(d, keys, default=0, threads=None):
            out = np.empty(keys.size, dtype=vdt)
            for i in range(keys.size):
                k = keys[i]
                st, v = _get(d, _charseq_view(k, len(k)))
                if st < 0:
                    _raise_status(st)
                out[i] = v if st == 1 else default
            return out

        return impl_chars
    if _str_keys_kind(d, keys) == "seq":

        def impl_seq(d, keys, default=0, threads=None):
            out = np.empty(len(keys), dtype=vdt)
            for i in range(len(keys)):
                st, v = _get(d, keys[i])
                if st < 0:
                    _raise_status(st)
                out[i] = v if st == 1 else default
            return out

        return impl_seq


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
                st, _ = _get_many_ucs4_raw(d, keys, values, found, np.int32(_nthreads(threads)))
                if st < 0:
                    _raise_status(st)

        return impl_ucs4
    keyty = d.key_type

    def impl(d, keys, values, found, threads):
        kb = _to_blobs(keys, keyty)
        st, _ = _get_many_raw(d, kb, values, found, np.int32(0), np.int32(_nthreads(threads)))
        if st < 0:
            _raise_status(st)

    return impl


@register_jitable
def _found_or_default(vals, found, default):
    out = np.empty(vals.size, dtype=vals.dtype)
    for i in range(vals.size):
        out[i] = vals[i] if found[i] else default
    return out


@overload_method(DictType, "contains_many")
def _ol_contains_many(d, keys, threads=None):
    _check_bulk(d, keys, need_values=False)
    if _bulk_lookup_ok(d, keys):

        def impl(d, keys, threads=None):
            found = np.zeros(keys.size, dtype=np.uint8)
            _bulk_lookup(d, keys, None, found, threads)
            return found.astype(np.bool_)

        return impl
    if _str_keys_kind(d, keys) == "chars":

        def impl_chars(d, keys, threads=None):
            out = np.zeros(keys.size, dtype=np.bool_)
            for i in range(keys.size):
                k = keys[i]
                st = _contains(d, _charseq_view(k, len(k)))
                if st < 0:
                    _raise_status(st)
                out[i] = st == 1
            return out

        return impl_chars
    if _str_keys_kind(d, keys) == "seq":

        def impl_seq(d, keys, threads=None):
            out = np.zeros(len(keys), dtype=np.bool_)
            for i in range(len(keys)):
                st = _contains(d, keys[i])
                if st < 0:
                    _raise_status(st)
                out[i] = st == 1
            return out

        return impl_seq


@overload_method(DictType, "to_arrays")
def _ol_to_arrays(d):
    """(keys, values) as two arrays in the same (unspecified) order; numeric or bool keys and
    values (numba cannot make a NumPy unicode array whose width is known only at run time)."""
    if not (_np_scalar(d.key_type) and _np_scalar(d.value_type)):
        raise TypingError(f"pardict.Dict.to_arrays in jitted code needs numeric or bool keys and "
                          f"values; this dict is {d} (str keys: call it from the interpreter)")
    from numba.np.numpy_support import as_dtype

    kdt, vdt = as_dtype(d.key_type), as_dtype(d.value_type)

    def impl(d):
        n = len(d)
        ks = np.empty(n, dtype=kdt)
        vs = np.empty(n, dtype=vdt)
        i = 0
        for k, v in d.items():
            if i == ks.size:  # the dict grew meanwhile (other threads)
                ks = np.concatenate((ks, np.empty(ks.size + 16, dtype=kdt)))
                vs = np.concatenate((vs, np.empty(vs.size + 16, dtype=vdt)))
            ks[i] = k
            vs[i] = v
            i += 1
        return ks[:i], vs[:i]

    return impl


@overload_method(DictType, "merge", prefer_literal=True)
def _ol_merge(d, other, op="assign"):
    """d.merge(other, op): every item of other into d, by assignment or by d.add/min/max; returns
    how many keys were new to d. Each item is one atomic step; the merge as a whole is not."""
    if not isinstance(other, DictType):
        raise TypingError(f"pardict.Dict.merge needs another pardict.Dict, got {other}")
    if isinstance(op, (types.Omitted, types.NoneType)) or op == "assign":
        opname = "assign"
    elif isinstance(op, types.StringLiteral):
        opname = op.literal_value
    else:
        raise TypingError("pardict.Dict.merge: op must be a string constant: 'assign', 'add', "
                          "'min' or 'max'")
    if opname not in ("assign", "add", "min", "max"):
        raise TypingError(f"pardict.Dict.merge: unknown op {opname!r} (use 'assign', 'add', "
                          f"'min' or 'max')")
    keyty, valty = d.key_type, d.value_type
    _sentry_safe_cast(other.key_type, keyty)
    _sentry_safe_cast(other.value_type, valty)
    if opname == "assign":

        def impl(d, other, op="assign"):
            n = 0
            for k, v in other.items():
                st = _set(d, _conv(k, keyty), _conv(v, valty))
                if st < 0:
                    _raise_status(st)
                n += st == 0
            return n

        return impl
    if not _combinable(valty):
        raise TypingError(f"pardict.Dict.merge(op={opname!r}) needs numeric values (integers, "
                          f"floats, or tuples of them); this dict stores {valty}")
    raw = _COMBINE_RAW[opname]

    def impl(d, other, op="assign"):
        n = 0
        for k, v in other.items():
            st, _ = raw(d, _conv(k, keyty), _conv(v, valty))
            if st < 0:
                _raise_status(st)
            n += st == 1
        return n

    return impl


@overload_method(DictType, "clear")
def _ol_clear(d):
    def impl(d):
        st = _clear(d)
        if st < 0:
            _raise_status(st)

    return impl


@overload_method(DictType, "reserve")
def _ol_reserve(d, n):
    def impl(d, n):
        if n < 0:
            raise ValueError("reserve: n must be non-negative")
        st = _reserve(d, n)
        if st < 0:
            _raise_status(st)

    return impl


@overload_method(DictType, "copy")
def _ol_copy(d):
    dty = d

    def impl(d):
        h = _copy_handle(d)
        if h <= 0:
            _raise_status(h)
        return _wrap(dty, h)

    return impl


@overload_method(DictType, "update")
def _ol_update(d, other):
    if not isinstance(other, (DictType, types.DictType)):
        raise TypingError(f"update() takes a pardict.Dict or numba typed.Dict, got {other}")
    keyty, valty = d.key_type, d.value_type
    _sentry_safe_cast(other.key_type, keyty)
    _sentry_safe_cast(other.value_type, valty)

    def impl(d, other):
        for k, v in other.items():
            d[k] = v

    return impl


@overload_method(DictType, "keys")
def _ol_keys(d):
    return lambda d: _keys_view(d)


@overload_method(DictType, "values")
def _ol_values(d):
    return lambda d: _values_view(d)


@overload_method(DictType, "items")
def _ol_items(d):
    return lambda d: _items_view(d)


@overload(operator.eq)
def _ol_eq(a, b):
    if not isinstance(a, DictType):
        return
    if not isinstance(b, (DictType, types.DictType)):
        return lambda a, b: False

    def impl(a, b):
        if len(a) != len(b):
            return False
        for k, v in a.items():
            if k not in b:
                return False
            if b[k] != v:
                return False
        return True

    return impl


@overload(operator.ne)
def _ol_ne(a, b):
    if not isinstance(a, DictType):
        return

    def impl(a, b):
        return not (a == b)

    return impl
