"""typeof, box and unbox for pardict.Dict, and Dict.empty inside jitted code."""

from numba.core import cgutils, types
from numba.core.errors import TypingError
from numba.core.extending import (
    NativeValue,
    box,
    overload,
    overload_classmethod,
    type_callable,
    typeof_impl,
    unbox,
)
from numba.core.imputils import numba_typeref_ctor
from numba.core.typing import signature

from .abi import from_meminfo
from .dictobject import new_dict
from .types import DictType, UntypedDictType


def register_class(dict_class, meta):
    """Make the Python class `dict_class` (metaclass `meta`) usable as a global in njit code."""

    @typeof_impl.register(meta)
    def _typeof_dict_class(val, c):
        return types.TypeRef(DictType)


@overload_classmethod(DictType, "empty")
def _ol_empty(cls, key_type, value_type, n_keys=0):
    if cls.instance_type is not DictType:
        return
    kt = getattr(key_type, "instance_type", key_type)
    vt = getattr(value_type, "instance_type", value_type)
    dty = DictType(kt, vt)

    def impl(cls, key_type, value_type, n_keys=0):
        return new_dict(dty, n_keys)

    return impl


@box(DictType)
def _box_dict(typ, val, c):
    st = cgutils.create_struct_proxy(typ)(c.context, c.builder, value=val)
    # The Python MemInfo object takes over the native reference.
    boxed_mi = c.box(types.MemInfoPointer(types.voidptr), st.meminfo)
    modname = c.context.insert_const_string(c.builder.module, "pardict.dict")
    mod = c.pyapi.import_module(modname)
    ctor = c.pyapi.object_getattr_string(mod, "_from_meminfo")
    dtype_obj = c.pyapi.unserialize(c.pyapi.serialize_object(typ))
    res = cgutils.alloca_once_value(c.builder, cgutils.get_null_value(c.pyapi.pyobj))
    with c.builder.if_then(cgutils.is_not_null(c.builder, dtype_obj)):
        c.builder.store(c.pyapi.call_function_objargs(ctor, (boxed_mi, dtype_obj)), res)
        c.pyapi.decref(dtype_obj)
    c.pyapi.decref(ctor)
    c.pyapi.decref(mod)
    c.pyapi.decref(boxed_mi)
    return c.builder.load(res)


@unbox(DictType)
def _unbox_dict(typ, obj, c):
    mi_obj = c.pyapi.object_getattr_string(obj, "_opaque")
    failed = cgutils.is_null(c.builder, mi_obj)
    out = cgutils.alloca_once(c.builder, c.context.get_value_type(typ))
    c.builder.store(c.context.get_constant_null(typ), out)
    err = cgutils.alloca_once_value(c.builder, cgutils.true_bit)
    with c.builder.if_then(c.builder.not_(failed)):
        mip = types.MemInfoPointer(types.voidptr)
        native = c.unbox(mip, mi_obj)  # a new reference to the MemInfo

        def convert(mi, t):
            return from_meminfo(mi, t)

        sig = signature(typ, mip, types.TypeRef(typ))
        is_error, value = c.pyapi.call_jit_code(
            convert, sig, (native.value, c.context.get_constant_null(types.TypeRef(typ)))
        )
        # convert returned its own (borrowed-then-increfed) reference: keep only unbox's.
        c.context.nrt.decref(c.builder, typ, value)
        c.pyapi.decref(mi_obj)
        c.builder.store(value, out)
        c.builder.store(is_error, err)
    return NativeValue(c.builder.load(out), is_error=c.builder.load(err))


@type_callable(DictType)
def _typeof_dict_call(context):
    """pardict.Dict() and pardict.Dict(iterable_of_pairs) inside njit: the types come from the
    pairs, or, for Dict(), from the first d[k] = v (UntypedDictType, refined by numba's type
    inference as it refines typed.Dict())."""

    def typer(arg=None):
        if arg is None:
            return UntypedDictType()
        if isinstance(arg, DictType):
            return arg
        if isinstance(arg, types.IterableType):
            yt = arg.iterator_type.yield_type
            if isinstance(yt, types.BaseTuple) and len(yt) == 2:
                return DictType(types.unliteral(yt[0]), types.unliteral(yt[1]))
        raise TypingError(
            f"pardict.Dict(iterable) needs an iterable of (key, value) pairs, got {arg}"
        )

    return typer


@overload(numba_typeref_ctor)
def _ol_dict_ctor(cls, *args):
    dty = cls.instance_type
    if not isinstance(dty, DictType):
        return

    if not args:
        return lambda cls, *args: new_dict(dty, 0)

    def impl(cls, *args):
        d = new_dict(dty, 0)
        for k, v in args[0]:
            d[k] = v
        return d

    return impl
