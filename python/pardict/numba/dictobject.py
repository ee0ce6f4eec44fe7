"""pardict.Dict in jitted code: the mapping API (typed.Dict's), iteration and views.

Every operation is one call into the C ABI (abi.py), which is atomic on its own. A replaced or
removed value is released here, after the call returned, i.e. outside every lock of the table.
"""

import operator

from numba import njit
from numba.core import cgutils, types
from numba.core.errors import TypingError
from numba.core.extending import (
    intrinsic,
    lower_builtin,
    overload,
    overload_attribute,
    overload_method,
    register_jitable,
)
from numba.core.imputils import RefType, impl_ret_borrowed, iternext_impl

from . import abi, jit
from .abi import Result, check, raise_status
from .convert import (
    castable,
    conv,
    is_omitted,
    owned,
    sentry_safe_cast,
    sentry_safe_cast_default,
    shares_copies,
)
from .types import DictIterType, DictType, DictViewType, UntypedDictType

# ---- creation ---------------------------------------------------------------------------------------


def new_dict(dty, n_keys=0):
    pass


@overload(new_dict)
def _ol_new_dict(dty, n_keys=0):
    def impl(dty, n_keys=0):
        if n_keys < 0:
            raise ValueError("n_keys must be non-negative")
        h = abi.c_new(dty, n_keys)
        if h <= 0:
            raise_status(h)
        return abi.wrap(dty, h)

    return impl


# ---- iteration ---------------------------------------------------------------------------------------


def _open_iterator(context, builder, dty, dval, iter_type):
    """pardict_iter_new over a native dict value: a native iterator of `iter_type` whose MemInfo
    owns the C iterator (which holds a reference to the dict's MemInfo)."""
    st = cgutils.create_struct_proxy(dty)(context, builder, value=dval)
    status = cgutils.alloca_once_value(builder, abi.i32(0))
    it = abi.call(
        builder, "pardict_iter_new", [st.data, builder.bitcast(st.meminfo, abi.i8p), status]
    )
    with builder.if_then(cgutils.is_null(builder, it), likely=False):
        context.call_conv.return_user_exc(
            builder, MemoryError, ("pardict: cannot allocate the iteration snapshot",)
        )
    dtor = abi.declare(builder, "pardict_iter_meminfo_dtor")
    mi = context.nrt.meminfo_alloc_dtor(builder, context.get_constant(types.uintp, 8), dtor)
    builder.store(it, builder.bitcast(context.nrt.meminfo_data(builder, mi), abi.i8p.as_pointer()))
    out = cgutils.create_struct_proxy(iter_type)(context, builder)
    out.meminfo = mi
    out.state = it
    return out._getvalue()


def _iter_next(builder, state):
    """pardict_iter_next: (status, key pointer, value pointer)."""
    kp = cgutils.alloca_once(builder, abi.i8p)
    vp = cgutils.alloca_once(builder, abi.i8p)
    st = abi.call(builder, "pardict_iter_next", [state, kp, vp])
    return st, builder.load(kp), builder.load(vp)


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
    st, kp, vp = _iter_next(builder, it.state)
    with builder.if_then(builder.icmp_signed("<", st, abi.i32(0)), likely=False):
        context.call_conv.return_user_exc(
            builder, RuntimeError, ("dictionary changed size during iteration",)
        )
    valid = builder.icmp_signed("==", st, abi.i32(Result.FOUND))
    result.set_valid(valid)
    with builder.if_then(valid):
        if ity.kind == "keys":
            result.yield_(abi.load(context, builder, dty.key_type, kp))
        elif ity.kind == "values":
            result.yield_(abi.load_value(context, builder, dty, vp))
        else:
            k = abi.load(context, builder, dty.key_type, kp)
            v = abi.load_value(context, builder, dty, vp)
            result.yield_(context.make_tuple(builder, ity.yield_type, [k, v]))


def _register_view(kind):
    """d.keys() / d.values() / d.items(): a view holding a reference to d."""

    @intrinsic
    def make_view(typingctx, d):
        def codegen(context, builder, sig, args):
            out = cgutils.create_struct_proxy(sig.return_type)(context, builder)
            out.parent = args[0]
            context.nrt.incref(builder, d, args[0])
            return out._getvalue()

        return DictViewType(d, kind)(d), codegen

    overload_method(DictType, kind)(lambda d: lambda d: make_view(d))


for _kind in ("keys", "values", "items"):
    _register_view(_kind)


@intrinsic
def _view_parent(typingctx, v):
    def codegen(context, builder, sig, args):
        p = cgutils.create_struct_proxy(v)(context, builder, value=args[0]).parent
        return impl_ret_borrowed(context, builder, v.dict_type, p)

    return v.dict_type(v), codegen


@overload_attribute(DictViewType, "_parent")
def _ol_view_parent(v):
    return lambda v: _view_parent(v)


# ---- the mapping API ---------------------------------------------------------------------------------


@overload(bool)
def _ol_bool(d):
    """bool(d), `if d:`, `while d:`, `not d`: whether d has items, as for dict."""
    if isinstance(d, DictType):
        return lambda d: abi.c_len(d) != 0


@lower_builtin(bool, DictType)
def _dict_bool(context, builder, sig, args):
    """bool(d) when one of numba's generic bool() templates typed the call before _ol_bool."""
    n = abi.call(builder, "pardict_len", [abi.handle(context, builder, sig.args[0], args[0])])
    return builder.icmp_signed("!=", n, abi.i64(0))


@overload(len)
def _ol_len(d):
    if isinstance(d, DictType):
        return lambda d: abi.c_len(d)
    if isinstance(d, DictViewType):
        return lambda d: abi.c_len(d._parent)


def _store_new_copy(d, key, a):
    pass


@overload(_store_new_copy)
def _ol_store_new_copy(d, key, a):
    valty = d.value_type
    return lambda d, key, a: abi.c_set(d, key, conv(owned(d, a), valty))


@njit
def _on_array_miss(d, key, a):
    """c_set_array's miss path: store a new copy of the borrowed array `a` (see convert.owned)."""
    return _store_new_copy(d, key, a)


@overload(operator.setitem)
def _ol_setitem_untyped(d, key, value):
    """The first store into a pardict.Dict() made in jitted code: its types are the key's and
    the value's (numba's type inference then retypes every use of the dict with them)."""
    if not isinstance(d, UntypedDictType):
        return
    from numba.core.typing import signature

    dty = d.refine(key, value)
    return signature(types.void, dty, dty.key_type, dty.value_type), _refined_setitem


def _refined_setitem(d, key, value):
    d[key] = value


@overload(operator.setitem)
def _ol_setitem(d, key, value):
    if not isinstance(d, DictType):
        return
    keyty, valty = d.key_type, d.value_type
    sentry_safe_cast(key, keyty)
    sentry_safe_cast(value, valty)

    if shares_copies(d, value):
        # The seed program's loop, `d[float(i)] = v` in prange: v arrives as a borrowed view.
        # All the branching lives in one intrinsic, so this impl has the shape of the scalar one
        # below: LLVM inlines it into the loop and no incref/decref of d's MemInfo is left per
        # store (which would move one cache line between the cores on every store).

        dty, aty = d, value

        def impl_array(d, key, value):
            # borrowed first, as table_of in impl_inline below: see abi.borrowed.
            dw, aw = abi.borrowed(d), abi.borrowed(value)
            st = abi.c_set_array(dw, dty, conv(key, keyty), aw, aty, _on_array_miss)
            check(st)

        return impl_array

    if jit.STORES and not d.layouts[1].refs:
        dty = d

        def impl_inline(d, key, value):
            # table_of first: see abi.table_of.
            st = abi.c_set_at(abi.table_of(d), dty, conv(key, keyty), conv(value, valty))
            check(st)

        return impl_inline

    def impl(d, key, value):
        st = abi.c_set(d, conv(key, keyty), conv(owned(d, value), valty))
        check(st)

    return impl


@register_jitable
def _found(result, key):
    """The value of a lookup's (status, value) that reported FOUND; KeyError(key) for ABSENT;
    the error otherwise."""
    st, v = result
    if check(st) == Result.ABSENT:
        raise KeyError(key)
    return v


@register_jitable
def _found_or(result, default):
    """The value of a lookup's (status, value) that reported FOUND, else default."""
    st, v = result
    return v if check(st) == Result.FOUND else default


@overload(operator.getitem)
def _ol_getitem(d, key):
    if not isinstance(d, DictType):
        return
    keyty = d.key_type
    sentry_safe_cast(key, keyty)

    dty = d
    # table_of first: see abi.table_of.
    return lambda d, key: _found(abi.c_get_at(abi.table_of(d), dty, conv(key, keyty)), key)


@overload(operator.delitem)
def _ol_delitem(d, key):
    if not isinstance(d, DictType):
        return

    def impl(d, key):
        d.pop(key)

    return impl


@overload(operator.contains)
def _ol_contains(d, key):
    if not isinstance(d, DictType):
        return
    keyty = d.key_type
    sentry_safe_cast(key, keyty)  # a key of another type domain is a TypingError, as in typed.Dict

    dty = d

    def impl(d, key):
        return check(abi.c_contains_at(abi.table_of(d), dty, conv(key, keyty))) == Result.FOUND

    return impl


@overload_method(DictType, "get")
def _ol_get(d, key, default=None):
    keyty = d.key_type
    sentry_safe_cast(key, keyty)
    sentry_safe_cast_default(default, d.value_type)
    dty = d
    return lambda d, key, default=None: _found_or(
        abi.c_get_at(abi.table_of(d), dty, conv(key, keyty)), default
    )


@overload_method(DictType, "pop")
def _ol_pop(d, key, default=None):
    keyty = d.key_type
    sentry_safe_cast(key, keyty)
    if default is None or isinstance(default, types.Omitted):  # pop(k, None) returns None
        return lambda d, key, default=None: _found(abi.c_pop(d, conv(key, keyty)), key)
    sentry_safe_cast_default(default, d.value_type)
    return lambda d, key, default=None: _found_or(abi.c_pop(d, conv(key, keyty)), default)


@overload_method(DictType, "popitem")
def _ol_popitem(d):
    def impl(d):
        st, k, v = abi.c_popitem(d)
        if check(st) == Result.ABSENT:
            raise KeyError("dictionary is empty")
        return k, v

    return impl


@overload_method(DictType, "setdefault")
def _ol_setdefault(d, key, default=None):
    keyty, valty = d.key_type, d.value_type
    sentry_safe_cast(key, keyty)
    if is_omitted(default):
        raise TypingError(
            "pardict.Dict.setdefault needs a default of the value type (None cannot be stored)"
        )
    sentry_safe_cast(default, valty)

    def impl(d, key, default=None):
        st, v = abi.c_setdefault(d, conv(key, keyty), conv(owned(d, default), valty))
        check(st)
        return v

    return impl


@overload_method(DictType, "insert")
def _ol_insert(d, key, value):
    """Insert only if absent; returns whether it was inserted (atomic)."""
    keyty, valty = d.key_type, d.value_type
    sentry_safe_cast(key, keyty)
    sentry_safe_cast(value, valty)

    def impl(d, key, value):
        st = abi.c_insert(d, conv(key, keyty), conv(owned(d, value), valty))
        check(st)
        return st == Result.NEW_KEY

    return impl


@overload_method(DictType, "clear")
def _ol_clear(d):
    def impl(d):
        st = abi.c_clear(d)
        check(st)

    return impl


@overload_method(DictType, "reserve")
def _ol_reserve(d, n):
    def impl(d, n):
        if n < 0:
            raise ValueError("reserve: n must be non-negative")
        st = abi.c_reserve(d, n)
        check(st)

    return impl


@overload_method(DictType, "copy")
def _ol_copy(d):
    dty = d

    def impl(d):
        h = abi.c_copy(d)
        if h <= 0:
            raise_status(h)
        return abi.wrap(dty, h)

    return impl


@overload_method(DictType, "update")
def _ol_update(d, other):
    if not isinstance(other, (DictType, types.DictType)):
        raise TypingError(f"update() takes a pardict.Dict or numba typed.Dict, got {other}")
    sentry_safe_cast(other.key_type, d.key_type)
    sentry_safe_cast(other.value_type, d.value_type)

    def impl(d, other):
        for k, v in other.items():
            d[k] = v

    return impl


def _is_dict(t):
    return isinstance(t, (DictType, types.DictType))


@overload(operator.eq)
def _ol_eq(a, b):
    """a == b with a pardict.Dict on either side and a pardict.Dict or numba typed.Dict on the
    other: the same keys with equal values, as for dict."""
    if not (isinstance(a, DictType) or isinstance(b, DictType)):
        return
    if not (_is_dict(a) and _is_dict(b)):
        return lambda a, b: False
    if not (castable(a.key_type, b.key_type) and castable(b.key_type, a.key_type)):
        return lambda a, b: len(a) == 0 and len(b) == 0

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
    if isinstance(a, DictType) or isinstance(b, DictType):
        return lambda a, b: not (a == b)


def _put_pardict_comparisons_first(ctx):
    """numba's own == of a typed.Dict answers False for any other right-hand side, and numba
    takes the first template that accepts the arguments, in the order they were registered
    (numba's first). Moving pardict's templates for == and != to the front makes
    `typed_dict == pardict_dict` compare contents; pardict's templates accept nothing but calls
    with a pardict.Dict, so every other comparison resolves as before."""
    for op, ours in (
        (operator.eq, _ol_eq),
        (operator.ne, _ol_ne),
        (operator.setitem, _ol_setitem_untyped),
    ):
        fnty = ctx._lookup_global(op)
        templates = getattr(fnty, "templates", None)
        if not templates:
            continue
        mine = [t for t in templates if getattr(t, "_overload_func", None) is ours]
        rest = [t for t in templates if getattr(t, "_overload_func", None) is not ours]
        if mine and templates[: len(mine)] != tuple(mine):
            ctx._remove_global(op)
            ctx._insert_global(op, type(fnty)(tuple(mine + rest)))


def _order_comparisons_after_each_refresh():
    # The typing context installs pardict's templates when it next refreshes (before the next
    # compilation); refreshing it here instead would start numba's whole target (~0.2 s) at import.
    from numba.core.registry import cpu_target

    ctx = cpu_target.typing_context
    refresh = ctx.refresh

    def refresh_then_order():
        refresh()
        _put_pardict_comparisons_first(ctx)

    ctx.refresh = refresh_then_order


_order_comparisons_after_each_refresh()
