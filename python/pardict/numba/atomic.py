"""Atomic read-modify-write in jitted code: d.add / d.min / d.max, and pardict.update.

* add/min/max on numeric values (scalars, tuples of them) are one pardict_combine call each. On
  array values they combine elementwise under the element's lock (pardict_visit), and store a
  copy of x when the key is absent.
* pardict.update(d, key, fn, default) runs a jitted fn under the element's lock: the C side calls
  back into jitted code through a C function made here (pardict_update's callback), and an
  exception fn raises is carried across the C call and raised again after it.
"""

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import cgutils, types
from numba.core.errors import TypingError
from numba.core.extending import intrinsic, overload, overload_method

from . import abi, jit
from .abi import OP_NAMES, Op, Result, Status, check
from .convert import charseq_view, conv, sentry_safe_cast
from .types import DictType

# ---- combinable values ------------------------------------------------------------------------------


def combinable(ty):
    """Whether add/min/max apply to values of type ty: numeric scalars and tuples of them."""
    if isinstance(ty, types.BaseTuple):
        return len(ty) > 0 and all(combinable(t) for t in ty)
    return abi.scalar_kind(ty) is not None


def combine_status(d, key, value, op):
    pass


@overload(combine_status, prefer_literal=True)
def _ol_combine_status(d, key, value, op):
    """One atomic d.add/min/max step (op an int constant of Op): (status, stored value), status
    NEW_KEY, OLD_KEY or < 0. A NumPy string element as key is first looked up through a borrowed
    view (most calls of a count find their key) and made a numba string only to insert it."""
    if not isinstance(op, types.IntegerLiteral):
        return None
    keyty, valty = d.key_type, d.value_type
    opv = op.literal_value
    if isinstance(key, types.UnicodeCharSeq) and keyty == types.unicode_type:
        old_key = int(Result.OLD_KEY)

        def impl_chars(d, key, value, op):
            st, v = abi.c_combine_present(d, charseq_view(key, len(key)), conv(value, valty), opv)
            if st == Result.FOUND:
                return np.int32(old_key), v
            if st < 0:
                return st, v
            return abi.c_combine(d, str(key), conv(value, valty), opv)

        return impl_chars
    return lambda d, key, value, op: abi.c_combine(d, conv(key, keyty), conv(value, valty), opv)


def _array_combiner(op):
    """A jitted fn(stored, x) combining x into the stored array in place, elementwise (as the
    scalar ops do: add wraps/propagates NaN; min/max replace only when x compares less/greater)."""
    name = next(n for n, o in OP_NAMES.items() if o == op)
    msg = f"pardict.Dict.{name}: the stored array and x differ in shape"
    if op == Op.ADD:

        @njit
        def add_into(stored, x):
            if stored.shape != x.shape:
                raise ValueError(msg)
            stored += x

        return add_into
    keep_smaller = op == Op.MIN

    @njit
    def min_max_into(stored, x):
        if stored.shape != x.shape:
            raise ValueError(msg)
        for i in np.ndindex(stored.shape):
            if (x[i] < stored[i]) if keep_smaller else (stored[i] < x[i]):
                stored[i] = x[i]

    return min_max_into


_ARRAY_COMBINERS = {op: _array_combiner(op) for op in (Op.ADD, Op.MIN, Op.MAX)}


def _fresh_copy(x, like):
    pass


@overload(_fresh_copy)
def _ol_fresh_copy(x, like):
    """A new array with x's elements, of the dict's value dtype and layout."""
    ty = like.instance_type if isinstance(like, types.TypeRef) else like
    dt = ty.dtype
    if ty.layout == "F":

        def impl_f(x, like):
            out = np.empty(x.shape[::-1], dtype=dt).T
            out[...] = x
            return out

        return impl_f

    def impl(x, like):
        out = np.empty(x.shape, dtype=dt)
        out[...] = x
        return out

    return impl


def _array_combine_overload(name, op, d, key, value):
    keyty, valty = d.key_type, d.value_type
    if not (isinstance(value, types.Array) and value.ndim == valty.ndim):
        raise TypingError(
            f"pardict.Dict.{name} on a dict of {valty} needs an array of "
            f"{valty.ndim} dimension(s), got {value}"
        )
    if not isinstance(valty.dtype, (types.Integer, types.Float)):
        raise TypingError(f"pardict.Dict.{name} needs numeric arrays; this dict stores {valty}")
    sentry_safe_cast(value.dtype, valty.dtype)
    sentry_safe_cast(key, keyty)
    into = _ARRAY_COMBINERS[op]
    found = int(Result.FOUND)

    def impl(d, key, value):
        k = conv(key, keyty)
        st = visit_with(d, k, into, value)
        if st == Result.ABSENT:
            # absent: store a copy (later adds must not write into the caller's array) ...
            if abi.c_insert(d, k, conv(_fresh_copy(value, valty), valty)) == Result.NEW_KEY:
                st = np.int32(found)
            else:  # ... unless another thread stored one meanwhile: combine into that
                st = visit_with(d, k, into, value)
        check(st)
        return d[k]

    return impl


def _make_combine_method(name, op):
    opv = int(op)

    def ol(d, key, value):
        keyty, valty = d.key_type, d.value_type
        if isinstance(valty, types.Array):
            return _array_combine_overload(name, op, d, key, value)
        if not combinable(valty):
            raise TypingError(
                f"pardict.Dict.{name} needs numeric values (integers, floats, or "
                f"tuples of them); this dict stores {valty}"
            )
        sentry_safe_cast(key, keyty)
        sentry_safe_cast(value, valty)

        if jit.inlinable("combine", d) and abi.scalar_kind(valty) is not None:
            # The shape of dictobject's impl_inline (d[k] = v): LLVM inlines this impl, and the
            # store pardict.numba.jit inlines into it, into the caller's loop.
            dty = d

            def impl_inline(d, key, value):
                # table_of first: see abi.table_of.
                st, v = abi.c_combine_at(
                    abi.table_of(d), dty, conv(key, keyty), conv(value, valty), opv
                )
                check(st)
                return v

            return impl_inline

        def impl(d, key, value):
            st, v = combine_status(d, key, value, opv)
            check(st)
            return v

        return impl

    ol.__doc__ = (
        f"d.{name}(key, x): one atomic step that stores x when key is absent, else "
        f"{'adds x to' if op == Op.ADD else 'keeps the ' + name + ' of x and'} the "
        f"stored value (tuples field by field); returns the stored result."
    )
    overload_method(DictType, name)(ol)


for _name in ("add", "min", "max"):
    _make_combine_method(_name, OP_NAMES[_name])


# ---- callbacks: jitted code run by the C side under an element's lock ------------------------------

# What a failed callback leaves for its caller: {status code, excinfo}, plus one argument slot.
_CB_CTX = ir.LiteralStructType([abi.i32, abi.i8p, abi.i8p])


def _make_callback(context, builder, disp, fsig, d, extra_ty=None, store_result=True):
    """A C function int32(ctx, value*) calling the jitted `disp` on the value at value* (and on
    the extra argument whose address is in ctx slot 2); it stores the result back when
    store_result. A numba exception is parked in ctx (code, excinfo) and reported as 1."""
    cres = disp.dispatcher.get_compile_result(fsig)
    context.add_linking_libs([cres.library])
    mod = builder.module
    cb = ir.Function(mod, abi.CALLBACK_TYPE, name=mod.get_unique_name("pardict_cb"))
    cb.linkage = "internal"
    wb = ir.IRBuilder(cb.append_basic_block("entry"))
    cptr, vptr = cb.args
    c = wb.bitcast(cptr, _CB_CTX.as_pointer())
    valty = d.value_type
    fargs = [abi.load_value(context, wb, d, vptr)]
    if extra_ty is not None:
        fargs.append(abi.load(context, wb, extra_ty, wb.load(cgutils.gep_inbounds(wb, c, 0, 2))))
    callee = context.declare_function(mod, cres.fndesc)
    status, res = context.call_conv.call_function(
        wb, callee, cres.signature.return_type, cres.signature.args, fargs
    )
    with wb.if_then(status.is_error, likely=False):
        wb.store(status.code, cgutils.gep_inbounds(wb, c, 0, 0))
        wb.store(wb.bitcast(status.excinfoptr, abi.i8p), cgutils.gep_inbounds(wb, c, 0, 1))
        wb.ret(abi.i32(1))
    if store_result:  # values without references only (c_update)
        assert not d.layouts[1].refs
        res = context.cast(wb, res, cres.signature.return_type, valty)
        data = context.data_model_manager[valty].as_data(wb, res)
        wb.store(data, wb.bitcast(vptr, data.type.as_pointer()))
    wb.ret(abi.i32(0))
    return cb


def _propagate_callback_error(context, builder, st, ctx):
    """After a C call that ran a callback: raise the callback's numba exception again, if any."""
    from numba.core.callconv import excinfo_ptr_t

    code = builder.load(cgutils.gep_inbounds(builder, ctx, 0, 0))
    failed = builder.and_(
        builder.icmp_signed("==", st, abi.i32(Status.ERR_CALLBACK)),
        builder.icmp_signed("!=", code, abi.i32(0)),
    )
    with builder.if_then(failed, likely=False):
        exc = builder.bitcast(builder.load(cgutils.gep_inbounds(builder, ctx, 0, 1)), excinfo_ptr_t)

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
def c_update(typingctx, d, key, dflt, fn):
    """pardict_update: (status, value), status NEW_KEY, OLD_KEY or < 0. If fn raised, its
    exception is propagated from here (the entry is unchanged)."""
    abi.check_dict(d)
    valty = d.value_type
    fsig = typingctx.resolve_function_type(fn, (valty,), {})
    if fsig is None:
        raise TypingError(f"pardict.update: fn cannot be called with a {valty}")
    try:
        sentry_safe_cast(fsig.return_type, valty)  # typed.Dict's rules, as for d[k] = v
    except TypingError as e:
        raise TypingError(
            f"pardict.update: fn returns {fsig.return_type}, which cannot be stored as {valty}: {e}"
        ) from None

    def codegen(context, builder, sig, args):
        vc = d.layouts[3]
        cb = _make_callback(context, builder, fn, fsig, d)
        h = abi.handle(context, builder, d, args[0])
        kp = abi.key_ptr(context, builder, d, args[1])
        dp = abi.value_ptr(context, builder, valty, args[2], vc)
        out = abi.out_buffer(builder, vc)
        ctx = _new_ctx(builder)
        st = abi.call(
            builder,
            "pardict_update",
            [h, kp, dp, cb, builder.bitcast(ctx, abi.i8p), builder.bitcast(out, abi.i8p)],
        )
        _propagate_callback_error(context, builder, st, ctx)
        return context.make_tuple(
            builder, sig.return_type, [st, abi.load(context, builder, valty, out)]
        )

    return types.Tuple([types.int32, valty])(d, d.key_type, valty, fn), codegen


@intrinsic
def visit_with(typingctx, d, key, fn, x):
    """pardict_visit: under key's element lock, fn(stored value, x) (its result ignored). FOUND,
    ABSENT or < 0; fn's exception is propagated."""
    abi.check_dict(d)
    valty = d.value_type
    fsig = typingctx.resolve_function_type(fn, (valty, x), {})
    if fsig is None:
        raise TypingError(f"cannot call {fn} with ({valty}, {x})")

    def codegen(context, builder, sig, args):
        cb = _make_callback(context, builder, fn, fsig, d, extra_ty=x, store_result=False)
        h = abi.handle(context, builder, d, args[0])
        kp = abi.key_ptr(context, builder, d, args[1])
        ctx = _new_ctx(builder)
        xslot = cgutils.alloca_once_value(
            builder, context.data_model_manager[x].as_data(builder, args[3])
        )
        builder.store(builder.bitcast(xslot, abi.i8p), cgutils.gep_inbounds(builder, ctx, 0, 2))
        st = abi.call(builder, "pardict_visit", [h, kp, cb, builder.bitcast(ctx, abi.i8p)])
        _propagate_callback_error(context, builder, st, ctx)
        return st

    return types.int32(d, d.key_type, fn, x), codegen


# ---- pardict.update ---------------------------------------------------------------------------------


def update(d: Any, key: Any, fn: Any, default: Any) -> Any:
    """pardict.update(d, key, fn, default): one atomic step that stores fn(d[key]) -- or
    fn(default) when key is absent -- and returns it. fn is an @njit function of the value; it runs
    under the element's lock, so it must be short and must not use d (doing so raises
    RuntimeError instead of deadlocking). If fn raises, its exception propagates and the entry is
    left unchanged. Values must be free of references (numbers, tuples of numbers). Works in the
    interpreter and in @njit code."""
    from numba.core.dispatcher import Dispatcher

    if not isinstance(fn, Dispatcher):
        raise TypeError(f"pardict.update needs an @njit function, got {fn!r}")
    return _update_from_interpreter(d, key, fn, default)


@overload(update)
def _ol_update(d, key, fn, default):
    if not isinstance(d, DictType):
        raise TypingError(f"pardict.update needs a pardict.Dict, got {d}")
    if not isinstance(fn, types.Dispatcher):
        raise TypingError(f"pardict.update needs an @njit function, got {fn}")
    if d.layouts[1].refs:
        raise TypingError(
            f"pardict.update needs values without references (numbers, tuples of "
            f"numbers); this dict stores {d.value_type}"
        )
    keyty, valty = d.key_type, d.value_type
    sentry_safe_cast(key, keyty)
    sentry_safe_cast(default, valty)

    def impl(d, key, fn, default):
        st, v = c_update(d, conv(key, keyty), conv(default, valty), fn)
        check(st)
        return v

    return impl


@njit
def _update_from_interpreter(d, key, fn, default):
    return update(d, key, fn, default)
