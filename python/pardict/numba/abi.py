"""The C ABI (capi/pardict_capi.h) as jitted code sees it.

* Its named numbers, as IntEnums built from what the compiled module exports (the header is their
  one source): Status, Result, Op, Kind, NumbaLayout.
* A check, at import, that numba's data model still lays arrays and strings out as the C side
  reads them (datamodel.py): an unsupported numba is a clear ImportError, not memory corruption.
* How values cross it: keys and values travel as the bytes of their numba data representation in
  stack buffers of the dictionary's size classes; keys are canonicalised first (padding zeroed,
  -0.0 -> 0.0, one NaN) so the C++ side can hash and compare bytes.
* One intrinsic per C function (the callback-taking pardict_update and pardict_visit are in
  atomic.py, which builds their callbacks; their prototypes are here). Each returns the C
  function's status unchanged; the callers decide what a status means.

References follow numba's NRT contract: calls borrow their inputs, values handed out are new
references.
"""

from enum import IntEnum
from typing import Any

from llvmlite import ir
from numba.core import cgutils, types
from numba.core.errors import TypingError
from numba.core.extending import intrinsic, overload, register_jitable
from numba.core.imputils import impl_ret_borrowed

from .. import _ext
from . import jit
from .datamodel import MEMINFO_DATA, MEMINFO_DTOR_INFO, MEMINFO_SIZE, check_numba_layout
from .types import DictType, layout_of, stored_as_meminfo

_CONSTANTS = _ext.abi()


def _enum(name: str, group: str) -> Any:
    """An IntEnum of one group of the header's constants (built at import, so its members are
    not known to type checkers)."""
    return IntEnum(name, _CONSTANTS[group])


Status = _enum("Status", "status")
"""Negative results of every C function (PARDICT_OK and PARDICT_ERR_*)."""
Result = _enum("Result", "result")
"""Non-negative results: ABSENT/FOUND, INSERTED/REPLACED/NEED_COPY, NEW_KEY/OLD_KEY (aliases
share a value: FOUND is REPLACED is NEW_KEY)."""
Op = _enum("Op", "op")
"""How a bulk or atomic operation combines a value into a stored one: ASSIGN, ADD, MIN, MAX."""
Kind = _enum("Kind", "kind")
"""The scalar kinds of a combined value's fields."""
NumbaLayout = _enum("NumbaLayout", "numba_layout")
"""Byte offsets inside numba's array and unicode structs that the C side reads."""

OP_NAMES = {"assign": Op.ASSIGN, "add": Op.ADD, "min": Op.MIN, "max": Op.MAX}


check_numba_layout(structs=("array",))  # the unicode struct once strings are used


# ---- C prototypes --------------------------------------------------------------------------------

i8p = ir.IntType(8).as_pointer()
i32 = ir.IntType(32)
i64 = ir.IntType(64)
void = ir.VoidType()
_i32p = i32.as_pointer()
_i64p = i64.as_pointer()

# The callback of pardict_update / pardict_visit: int32 cb(void* ctx, void* value).
CALLBACK_TYPE = ir.FunctionType(i32, [i8p, i8p])

PROTOTYPES = {
    "pardict_new": (i8p, [i32, i32, i32, i32, i32, i64, _i32p]),
    "pardict_meminfo_dtor": (void, [i8p, i64, i8p]),
    "pardict_array_view_dtor": (void, [i8p, i64, i8p]),
    "pardict_len": (i64, [i8p]),
    "pardict_set": (i32, [i8p, i8p, i8p, i8p]),
    "pardict_get": (i32, [i8p, i8p, i8p]),
    "pardict_contains": (i32, [i8p, i8p]),
    "pardict_pop": (i32, [i8p, i8p, i8p]),
    "pardict_popitem": (i32, [i8p, i8p, i8p]),
    "pardict_setdefault": (i32, [i8p, i8p, i8p, i8p]),
    "pardict_insert": (i32, [i8p, i8p, i8p]),
    "pardict_combine": (i32, [i8p, i8p, i8p, i32, _i32p, i32, i8p]),
    "pardict_combine_present": (i32, [i8p, i8p, i8p, i32, _i32p, i32, i8p]),
    "pardict_update": (i32, [i8p, i8p, i8p, CALLBACK_TYPE.as_pointer(), i8p, i8p]),
    "pardict_visit": (i32, [i8p, i8p, CALLBACK_TYPE.as_pointer(), i8p]),
    "pardict_get_many": (i32, [i8p, i8p, i64, i8p, i8p, i32, _i64p]),
    "pardict_combine_many": (i32, [i8p, i8p, i8p, i64, i32, _i32p, i32, i32, _i64p]),
    "pardict_combine_many_ucs4": (
        i32,
        [i8p, i8p, i64, i64, i8p, i64, i32, _i32p, i32, i32, _i64p, i8p, _i64p],
    ),
    "pardict_get_many_ucs4": (i32, [i8p, i8p, i64, i64, i8p, i8p, i32, _i64p]),
    "pardict_export_many": (i32, [i8p, i8p, i8p, i64, _i64p]),
    "pardict_merge": (i32, [i8p, i8p, i32, _i32p, i32, i32, _i64p]),
    "pardict_clear": (i32, [i8p]),
    "pardict_reserve": (i32, [i8p, i64]),
    "pardict_copy": (i8p, [i8p, _i32p]),
    "pardict_unowned_find": (i32, [i8p, i8p, i32, i8p]),
    "pardict_set_array": (i32, [i8p, i8p, i8p, i32]),
    "pardict_unowned_remember": (i32, [i8p, i8p, i32, i8p]),
    "pardict_view_find": (i32, [i8p, i8p, i8p.as_pointer()]),
    "pardict_set_view": (i32, [i8p, i8p, i8p]),
    "pardict_view_remember": (i32, [i8p, i8p, i8p]),
    "pardict_iter_new": (i8p, [i8p, i8p, _i32p]),
    "pardict_iter_next": (i32, [i8p, i8p.as_pointer(), i8p.as_pointer()]),
    "pardict_iter_meminfo_dtor": (void, [i8p, i64, i8p]),
    "pardict_group_indices": (i32, [i8p, i64, i32, i32, _i64p, _i64p, _i64p, _i64p]),
    "pardict_group_indices_ucs4": (i32, [i8p, i64, i64, i32, _i64p, _i64p, _i64p, _i64p]),
}


def declare(builder, name):
    """The C function `name` declared in the builder's module (resolved by symbol at link time)."""
    ret, args = PROTOTYPES[name]
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), name)


def call(builder, name, args):
    return builder.call(declare(builder, name), args)


# ---- how keys and values cross -----------------------------------------------------------------


def check_dict(d):
    if not isinstance(d, DictType):
        raise TypingError(f"expected a pardict.Dict, got {d}")


def handle(context, builder, dty, d):
    """The C table (pardict_dict*) of a native dict value."""
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
    return cgutils.alloca_once(builder, ir.ArrayType(i64, max(nbytes // 8, 1)))


def key_ptr(context, builder, dty, key):
    """A zero-padded key-class buffer holding the canonical bytes of `key`, as i8*."""
    kc = dty.layouts[2]
    kty = dty.key_type
    data = context.data_model_manager[kty].as_data(builder, _canon(builder, kty, key))
    buf = _buffer(builder, kc)
    cgutils.memset(builder, buf, ir.Constant(i64, max(kc, 8)), 0)
    typed = builder.bitcast(buf, data.type.as_pointer())
    builder.store(data, typed)
    cgutils.memset_padding(builder, typed)
    return builder.bitcast(buf, i8p)


def value_ptr(context, builder, vty, val, nbytes):
    """An `nbytes` buffer holding the data representation of `val` (a `vty`), as i8*."""
    data = context.data_model_manager[vty].as_data(builder, val)
    buf = _buffer(builder, nbytes)
    builder.store(data, builder.bitcast(buf, data.type.as_pointer()))
    return builder.bitcast(buf, i8p)


def out_buffer(builder, nbytes):
    """An `nbytes` output buffer, zeroed: an untouched one reads as a value with null references
    (safe to release)."""
    buf = _buffer(builder, nbytes)
    cgutils.memset(builder, buf, ir.Constant(i64, max(nbytes, 8)), 0)
    return buf


def load(context, builder, ty, ptr):
    """The `ty` value whose data representation is at `ptr`."""
    dm = context.data_model_manager[ty]
    data = builder.load(builder.bitcast(ptr, dm.get_data_type().as_pointer()))
    return dm.from_data(builder, data)


# ---- a dictionary's values: stored forms -------------------------------------------------------
# A value crosses as its data representation, except a 1-D array, which crosses as its MemInfo
# alone (types.stored_as_meminfo; why and how: convert.py, "Arrays as one word"). value_blob and
# load_value are the two directions; every store and every read of a dictionary's value goes
# through them.


def value_blob(context, builder, dty, val):
    """The stored form of `val` (a dty.value_type) in a value-class buffer, as i8*. An array must
    be one its MemInfo describes (convert.owned makes it so)."""
    vty = dty.value_type
    if not stored_as_meminfo(vty):
        return value_ptr(context, builder, vty, val, dty.layouts[3])
    mi = cgutils.create_struct_proxy(vty)(context, builder, value=val).meminfo
    buf = _buffer(builder, 8)
    builder.store(mi, builder.bitcast(buf, mi.type.as_pointer()))
    return builder.bitcast(buf, i8p)


def load_value(context, builder, dty, ptr):
    """The dty.value_type value whose stored form is at `ptr` (an all-zero one reads as a value
    with null references)."""
    vty = dty.value_type
    if not stored_as_meminfo(vty):
        return load(context, builder, vty, ptr)
    mi = builder.load(builder.bitcast(ptr, i8p.as_pointer()))
    return array_of_meminfo(context, builder, vty, mi)


def meminfo_word(builder, mi, index):
    """Word `index` of an NRT MemInfo (datamodel.MEMINFO_*), as i64."""
    return builder.load(builder.gep(builder.bitcast(mi, i64.as_pointer()), [i64(index)]))


def is_view_meminfo(builder, mi):
    """Whether the (non-null) MemInfo `mi` is one convert.as_view made."""
    dtor = builder.ptrtoint(declare(builder, "pardict_array_view_dtor"), i64)
    return builder.icmp_unsigned("==", meminfo_word(builder, mi, MEMINFO_DTOR_INFO), dtor)


def array_of_meminfo(context, builder, aty, mi):
    """The 1-D `aty` array a stored MemInfo stands for, holding `mi` as its MemInfo (the same
    reference the stored form held): the whole buffer of an array's own MemInfo, or the view
    whose struct a view MemInfo carries. A null `mi` gives an all-zero array."""
    from numba.np.arrayobj import get_itemsize, populate_array

    llty = context.get_value_type(aty)
    out = cgutils.alloca_once_value(builder, ir.Constant(llty, None))
    with builder.if_then(cgutils.is_not_null(builder, mi), likely=True):
        data = meminfo_word(builder, mi, MEMINFO_DATA)
        with builder.if_else(is_view_meminfo(builder, mi), likely=False) as (view, whole):
            with view:
                carried = builder.load(builder.inttoptr(data, llty.as_pointer()))
                builder.store(builder.insert_value(carried, mi, 0), out)
            with whole:
                itemsize = get_itemsize(context, aty)
                nitems = builder.udiv(meminfo_word(builder, mi, MEMINFO_SIZE), i64(itemsize))
                ary = context.make_array(aty)(context, builder)
                populate_array(
                    ary,
                    data=builder.inttoptr(data, ary.data.type),
                    shape=[nitems],
                    strides=[i64(itemsize)],
                    itemsize=itemsize,
                    meminfo=mi,
                )
                builder.store(ary._getvalue(), out)
    return builder.load(out)


def described_by_meminfo(context, builder, aty, val):
    """i1: whether the 1-D `aty` array `val` is what array_of_meminfo rebuilds from its MemInfo
    (so that storing the MemInfo alone stores `val`): the whole buffer of its own MemInfo, or the
    view a view MemInfo carries. False for a null MemInfo."""
    from numba.np.arrayobj import get_itemsize

    ary = context.make_array(aty)(context, builder, value=val)
    mi = builder.bitcast(ary.meminfo, i8p)
    out = cgutils.alloca_once_value(builder, cgutils.false_bit)
    with builder.if_then(cgutils.is_not_null(builder, mi), likely=True):
        data = meminfo_word(builder, mi, MEMINFO_DATA)
        with builder.if_else(is_view_meminfo(builder, mi), likely=False) as (view, whole):
            with view:
                llty = context.get_value_type(aty)
                carried = builder.load(builder.inttoptr(data, llty.as_pointer()))
                same = cgutils.true_bit
                for i in range(1, len(llty.elements)):
                    mine, theirs = builder.extract_value(val, i), builder.extract_value(carried, i)
                    if isinstance(llty.elements[i], ir.ArrayType):  # shape, strides: [1 x intp]
                        mine, theirs = (
                            builder.extract_value(mine, 0),
                            builder.extract_value(theirs, 0),
                        )
                    same = builder.and_(same, builder.icmp_unsigned("==", mine, theirs))
                builder.store(same, out)
            with whole:
                itemsize = i64(get_itemsize(context, aty))
                nitems = builder.extract_value(ary.shape, 0)
                checks = (
                    builder.icmp_unsigned("==", data, builder.ptrtoint(ary.data, i64)),
                    builder.icmp_unsigned(
                        "==", meminfo_word(builder, mi, MEMINFO_SIZE), builder.mul(nitems, itemsize)
                    ),
                    builder.icmp_unsigned("==", builder.extract_value(ary.strides, 0), itemsize),
                    cgutils.is_null(builder, ary.parent),
                )
                exact = checks[0]
                for c in checks[1:]:
                    exact = builder.and_(exact, c)
                builder.store(exact, out)
    return builder.load(out)


@intrinsic
def storable_as_meminfo(typingctx, a):
    """Whether the 1-D array `a` can be stored as its MemInfo alone (described_by_meminfo)."""

    def codegen(context, builder, sig, args):
        return described_by_meminfo(context, builder, a, args[0])

    return types.boolean(a), codegen


@intrinsic
def as_view(typingctx, a):
    """A new reference to `a` (1-D, with a MemInfo) under a view MemInfo: one whose payload is
    a's struct, holding a's reference, and whose destructor (pardict_array_view_dtor) releases
    it. Such an array is storable_as_meminfo."""

    def codegen(context, builder, sig, args):
        [val] = args
        llty = context.get_value_type(a)
        size = i64(context.get_abi_sizeof(llty))
        mi = context.nrt.meminfo_alloc_dtor(
            builder, size, declare(builder, "pardict_array_view_dtor")
        )
        context.nrt.incref(builder, a, val)  # the payload's reference
        builder.store(
            val, builder.bitcast(context.nrt.meminfo_data(builder, mi), llty.as_pointer())
        )
        return builder.insert_value(val, builder.bitcast(mi, llty.elements[0]), 0)

    return a(a), codegen


@intrinsic
def c_view_find(typingctx, d, a):
    """(hit, view): the view MemInfo this thread last made for an array equal to `a` stored into
    d (pardict_view_find), as `a` with that MemInfo (a new reference); (False, `a` without a
    MemInfo) otherwise."""

    def codegen(context, builder, sig, args):
        h = handle(context, builder, d, args[0])
        src = value_ptr(context, builder, a, args[1], context.get_abi_sizeof(args[1].type))
        out = cgutils.alloca_once_value(builder, ir.Constant(i8p, None))
        st = call(builder, "pardict_view_find", [h, src, out])
        mi = builder.load(out)
        view = builder.insert_value(args[1], builder.bitcast(mi, args[1].type.elements[0]), 0)
        hit = builder.icmp_signed("==", st, i32(Result.FOUND))
        return context.make_tuple(builder, sig.return_type, [hit, view])

    return types.Tuple([types.boolean, a])(d, a), codegen


@intrinsic
def c_view_remember(typingctx, d, a, view):
    """Keep `view` (as_view(a), just made) as this thread's last view for d."""

    def codegen(context, builder, sig, args):
        h = handle(context, builder, d, args[0])
        src = value_ptr(context, builder, a, args[1], context.get_abi_sizeof(args[1].type))
        mi = cgutils.create_struct_proxy(view)(context, builder, value=args[2]).meminfo
        call(builder, "pardict_view_remember", [h, src, builder.bitcast(mi, i8p)])
        return context.get_dummy_value()

    return types.none(d, a, view), codegen


def _kv_ptrs(context, builder, d, args):
    """(table, key buffer, value buffer) for a C call taking (d, key, value) arguments."""
    return (
        handle(context, builder, d, args[0]),
        key_ptr(context, builder, d, args[1]),
        value_blob(context, builder, d, args[2]),
    )


def _kv_out_call(context, builder, d, args, cname):
    """cname(table, key, value, out) for (d, key, value) arguments: (status, out buffer)."""
    out = out_buffer(builder, d.layouts[3])
    st = call(builder, cname, [*_kv_ptrs(context, builder, d, args), builder.bitcast(out, i8p)])
    return st, out


def array_data(context, builder, ty, v):
    """The data pointer of an array value, as i8*."""
    return builder.bitcast(cgutils.create_struct_proxy(ty)(context, builder, value=v).data, i8p)


def fields_constant(builder, fields):
    """The (offset, kind) pairs of pardict_combine as an int32[2n] constant; its address."""
    flat = [i32(int(x)) for f in fields for x in f]
    gv = cgutils.global_constant(
        builder,
        builder.module.get_unique_name("pardict_fields"),
        ir.Constant(ir.ArrayType(i32, len(flat)), flat),
    )
    return builder.bitcast(gv, _i32p)


def scalar_kind(ty):
    """The Kind of a numeric scalar type, or None."""
    if isinstance(ty, types.Integer) and ty.bitwidth in (8, 16, 32, 64):
        return Kind[f"{'I' if ty.signed else 'U'}{ty.bitwidth}"]
    if isinstance(ty, types.Float) and ty.bitwidth in (32, 64):
        return Kind[f"F{ty.bitwidth}"]
    return None


def combine_fields(context, ty, base=0):
    """(offset, Kind) of every scalar in ty's data representation, following the LLVM layout of
    numba's data model (UniTuple: an array; Tuple: a non-packed struct)."""
    if not isinstance(ty, types.BaseTuple):
        return [(base, scalar_kind(ty))]
    td = context.target_data
    out, off = [], 0
    for t in ty:
        llt = context.data_model_manager[t].get_data_type()
        align = llt.get_abi_alignment(td)
        off = (off + align - 1) // align * align
        out += combine_fields(context, t, base + off)
        off += llt.get_abi_size(td)
    return out


def _status_or_address(builder, h, status):
    """A table pointer as an int64 address, or the (negative) status when it is null."""
    st = builder.sext(builder.load(status), i64)
    return builder.select(cgutils.is_null(builder, h), st, builder.ptrtoint(h, i64))


# ---- status -> exception -------------------------------------------------------------------------


def raise_status(status):
    pass


@overload(raise_status)
def _ol_raise_status(status):
    def impl(status):
        if status == Status.ERR_NOMEM:
            raise MemoryError("pardict: cannot allocate the requested table")
        if status == Status.ERR_INVALID:
            raise ValueError("pardict: invalid argument")
        if status == Status.ERR_REENTRANT:
            raise RuntimeError("pardict: the dictionary was used from inside its own operation")
        if status == Status.ERR_MUTATED:
            raise RuntimeError("dictionary changed size during iteration")
        if status == Status.ERR_CALLBACK:
            raise RuntimeError("pardict.update: the update function failed")
        if status == Status.ERR_FORKED:
            raise RuntimeError(
                "pardict: this dictionary was inherited through fork() while operations on "
                "pardict dictionaries were in flight in the parent; the child cannot use it"
            )
        raise RuntimeError("pardict: internal error")

    return impl


@register_jitable
def check(status):
    """status, after raising the exception of a negative (error) status."""
    if status < 0:
        raise_status(status)
    return status


# ---- creation and lifetime -----------------------------------------------------------------------


@intrinsic
def c_new(typingctx, dtyref, n_keys):
    """pardict_new for a DictType: the table's address, or a negative status."""
    dty = dtyref.instance_type
    check_dict(dty)
    if not isinstance(n_keys, types.Integer):
        raise TypingError("n_keys must be an integer")

    def codegen(context, builder, sig, args):
        k, v, _, _ = dty.layouts
        n = context.cast(builder, args[1], sig.args[1], types.int64)
        status = cgutils.alloca_once_value(builder, i32(0))
        h = call(
            builder,
            "pardict_new",
            [i32(k.size), i32(v.size), i32(k.refs), i32(k.strs), i32(v.refs), n, status],
        )
        return _status_or_address(builder, h, status)

    return types.int64(dtyref, n_keys), codegen


@intrinsic
def c_copy(typingctx, d):
    """pardict_copy: the address of a new table with d's elements, or a negative status."""
    check_dict(d)

    def codegen(context, builder, sig, args):
        status = cgutils.alloca_once_value(builder, i32(0))
        h = call(builder, "pardict_copy", [handle(context, builder, d, args[0]), status])
        return _status_or_address(builder, h, status)

    return types.int64(d), codegen


@intrinsic
def wrap(typingctx, dtyref, address):
    """A dict value owning the table at `address` (from c_new/c_copy) through a new NRT MemInfo
    whose destructor is pardict_meminfo_dtor."""
    dty = dtyref.instance_type
    check_dict(dty)

    def codegen(context, builder, sig, args):
        dtor = declare(builder, "pardict_meminfo_dtor")
        mi = context.nrt.meminfo_alloc_dtor(builder, context.get_constant(types.uintp, 8), dtor)
        h = builder.inttoptr(args[1], i8p)
        builder.store(h, builder.bitcast(context.nrt.meminfo_data(builder, mi), i8p.as_pointer()))
        st = cgutils.create_struct_proxy(dty)(context, builder)
        st.meminfo = mi
        st.data = h
        return st._getvalue()

    return dty(dtyref, address), codegen


@intrinsic
def from_meminfo(typingctx, mi, dtyref):
    """The native dict value of a MemInfo that owns a table (unboxing)."""
    dty = dtyref.instance_type

    def codegen(context, builder, sig, args):
        st = cgutils.create_struct_proxy(dty)(context, builder)
        payload = context.nrt.meminfo_data(builder, args[0])
        st.data = builder.load(builder.bitcast(payload, i8p.as_pointer()))
        st.meminfo = args[0]
        return impl_ret_borrowed(context, builder, dty, st._getvalue())

    return dty(mi, dtyref), codegen


# ---- element operations ----------------------------------------------------------------------------


def _table_intrinsic(cname, restype):
    """An intrinsic (d) -> restype calling cname(table)."""

    @intrinsic
    def on_table(typingctx, d):
        check_dict(d)

        def codegen(context, builder, sig, args):
            return call(builder, cname, [handle(context, builder, d, args[0])])

        return restype(d), codegen

    return on_table


c_len = _table_intrinsic("pardict_len", types.int64)
c_clear = _table_intrinsic("pardict_clear", types.int32)


@intrinsic
def c_set(typingctx, d, key, value):
    """d[key] = value: INSERTED or REPLACED (the replaced value is released here), or < 0."""
    check_dict(d)

    def codegen(context, builder, sig, args):
        st, old = _kv_out_call(context, builder, d, args, "pardict_set")
        if context.enable_nrt and d.layouts[1].refs:
            with builder.if_then(builder.icmp_signed("==", st, i32(Result.REPLACED))):
                context.nrt.decref(builder, d.value_type, load_value(context, builder, d, old))
        return st

    return types.int32(d, d.key_type, d.value_type), codegen


@intrinsic
def c_insert(typingctx, d, key, value):
    """Insert when absent: NEW_KEY or OLD_KEY, or < 0."""
    check_dict(d)

    def codegen(context, builder, sig, args):
        return call(builder, "pardict_insert", list(_kv_ptrs(context, builder, d, args)))

    return types.int32(d, d.key_type, d.value_type), codegen


def _key_to_value_codegen(cname, d):
    """codegen of a C call (d, key, out) returning (status, value read from out)."""

    def codegen(context, builder, sig, args):
        vc = d.layouts[3]
        h = handle(context, builder, d, args[0])
        kp = key_ptr(context, builder, d, args[1])
        out = out_buffer(builder, vc)
        st = call(builder, cname, [h, kp, builder.bitcast(out, i8p)])
        val = load_value(context, builder, d, out)
        return context.make_tuple(builder, sig.return_type, [st, val])

    return codegen


def _key_to_value_intrinsic(cname, doc):
    @intrinsic
    def key_to_value(typingctx, d, key):
        check_dict(d)
        sig = types.Tuple([types.int32, d.value_type])(d, d.key_type)
        return sig, _key_to_value_codegen(cname, d)

    key_to_value.__doc__ = doc
    return key_to_value


c_get = _key_to_value_intrinsic(
    "pardict_get", "(status, value): FOUND (value is a new reference) or ABSENT, or < 0."
)


@intrinsic
def table_of(typingctx, d):
    """The C table of a dict as a raw pointer, which holds no reference: valid while the caller's
    reference to d lives. With it a jitted wrapper can let go of its own reference to d before
    a lookup whose inlined body branches (c_get_at), so that numba's reference-count pruning
    still finds the wrapper's incref and decref of d in one basic block."""
    check_dict(d)

    def codegen(context, builder, sig, args):
        return handle(context, builder, d, args[0])

    return types.voidptr(d), codegen


@intrinsic
def borrowed(typingctx, x):
    """x's bits as words that hold no reference (a UniTuple of int64), given back by `unborrow`
    in codegen: table_of for any value. Valid while the caller's own reference to x lives. With
    it a jitted wrapper lets go of its own references to its arguments before a store whose
    inlined body branches (c_set_array), as table_of does for d alone."""
    size = layout_of(x).size
    if size % 8:
        raise TypingError(f"borrowed: {x} is not a whole number of words")
    words = types.UniTuple(types.int64, size // 8)

    def codegen(context, builder, sig, args):
        buf = cgutils.alloca_once_value(builder, args[0])
        return builder.load(builder.bitcast(buf, context.get_value_type(words).as_pointer()))

    return words(x), codegen


def unborrow(context, builder, ty, words):
    """The `ty` value whose bits `borrowed` made into `words` (it holds no reference of its own)."""
    buf = cgutils.alloca_once_value(builder, words)
    return builder.load(builder.bitcast(buf, context.get_value_type(ty).as_pointer()))


def _inlined_or_call(context, builder, op, dty, cargs):
    """pardict_<op>(*cargs) through pardict.numba.jit's inlinable entry point when there is one
    for dty's layout, else the C call."""
    fast = jit.entry(context, builder, op, dty)
    return (
        jit.call(builder, fast, cargs)
        if fast is not None
        else call(builder, f"pardict_{op}", cargs)
    )


@intrinsic
def c_get_at(typingctx, table, dtyref, key):
    """c_get on table_of(d) for a d of type dtyref: the inlinable lookup of pardict.numba.jit
    when there is one for the dict's layout, else pardict_get."""
    dty = dtyref.instance_type
    check_dict(dty)
    sig = types.Tuple([types.int32, dty.value_type])(table, dtyref, dty.key_type)

    def codegen(context, builder, sig, args):
        kp = key_ptr(context, builder, dty, args[2])
        out = out_buffer(builder, dty.layouts[3])
        cargs = [args[0], kp, builder.bitcast(out, i8p)]
        st = _inlined_or_call(context, builder, "get", dty, cargs)
        val = load_value(context, builder, dty, out)
        return context.make_tuple(builder, sig.return_type, [st, val])

    return sig, codegen


@intrinsic
def c_set_at(typingctx, table, dtyref, key, value):
    """c_set on table_of(d) for a d of type dtyref whose values hold no reference (nothing to
    release on a replace), inlined as c_get_at is."""
    dty = dtyref.instance_type
    check_dict(dty)
    assert not dty.layouts[1].refs

    def codegen(context, builder, sig, args):
        kp = key_ptr(context, builder, dty, args[2])
        vp = value_blob(context, builder, dty, args[3])
        out = out_buffer(builder, dty.layouts[3])
        cargs = [args[0], kp, vp, builder.bitcast(out, i8p)]
        return _inlined_or_call(context, builder, "set", dty, cargs)

    return types.int32(table, dtyref, dty.key_type, dty.value_type), codegen


@intrinsic(prefer_literal=True)
def c_combine_at(typingctx, table, dtyref, key, value, op):
    """c_combine on table_of(d) for a d of type dtyref with scalar values, inlined as c_get_at is
    (pardict.numba.jit's "combine"). (status, stored value)."""
    dty = dtyref.instance_type
    check_dict(dty)
    _check_op_literal(op)
    kind = scalar_kind(dty.value_type)
    assert kind is not None

    def codegen(context, builder, sig, args):
        out = out_buffer(builder, dty.layouts[3])
        cargs = [
            args[0],
            key_ptr(context, builder, dty, args[2]),
            value_blob(context, builder, dty, args[3]),
            i32(sig.args[4].literal_value),
            fields_constant(builder, [(0, kind)]),
            i32(1),
            builder.bitcast(out, i8p),
        ]
        st = _inlined_or_call(context, builder, "combine", dty, cargs)
        val = load_value(context, builder, dty, out)
        return context.make_tuple(builder, sig.return_type, [st, val])

    sig = types.Tuple([types.int32, dty.value_type])(
        table, dtyref, dty.key_type, dty.value_type, op
    )
    return sig, codegen


@intrinsic
def c_contains_at(typingctx, table, dtyref, key):
    """c_contains on table_of(d) for a d of type dtyref, inlined as c_get_at is."""
    dty = dtyref.instance_type
    check_dict(dty)

    def codegen(context, builder, sig, args):
        cargs = [args[0], key_ptr(context, builder, dty, args[2])]
        return _inlined_or_call(context, builder, "contains", dty, cargs)

    return types.int32(table, dtyref, dty.key_type), codegen


c_pop = _key_to_value_intrinsic(
    "pardict_pop", "(status, value): FOUND (the value is handed over) or ABSENT, or < 0."
)


@intrinsic
def c_contains(typingctx, d, key):
    """FOUND or ABSENT, or < 0. `key` may borrow memory it does not own (it is never stored)."""
    check_dict(d)

    def codegen(context, builder, sig, args):
        h = handle(context, builder, d, args[0])
        return call(builder, "pardict_contains", [h, key_ptr(context, builder, d, args[1])])

    return types.int32(d, d.key_type), codegen


@intrinsic
def c_setdefault(typingctx, d, key, dflt):
    """(status, value): NEW_KEY (dflt stored) or OLD_KEY; value is the stored one (new ref)."""
    check_dict(d)

    def codegen(context, builder, sig, args):
        st, out = _kv_out_call(context, builder, d, args, "pardict_setdefault")
        val = load_value(context, builder, d, out)
        return context.make_tuple(builder, sig.return_type, [st, val])

    return types.Tuple([types.int32, d.value_type])(d, d.key_type, d.value_type), codegen


@intrinsic
def c_popitem(typingctx, d):
    """(status, key, value): FOUND (both handed over) or ABSENT (empty), or < 0."""
    check_dict(d)

    def codegen(context, builder, sig, args):
        _, _, kc, vc = d.layouts
        h = handle(context, builder, d, args[0])
        kout = out_buffer(builder, kc)
        vout = out_buffer(builder, vc)
        st = call(
            builder, "pardict_popitem", [h, builder.bitcast(kout, i8p), builder.bitcast(vout, i8p)]
        )
        key = load(context, builder, d.key_type, kout)
        val = load_value(context, builder, d, vout)
        return context.make_tuple(builder, sig.return_type, [st, key, val])

    return types.Tuple([types.int32, d.key_type, d.value_type])(d), codegen


@intrinsic
def c_reserve(typingctx, d, n):
    check_dict(d)

    def codegen(context, builder, sig, args):
        nn = context.cast(builder, args[1], sig.args[1], types.int64)
        return call(builder, "pardict_reserve", [handle(context, builder, d, args[0]), nn])

    return types.int32(d, n), codegen


def _combine_codegen(cname, d):
    def codegen(context, builder, sig, args):
        vc = d.layouts[3]
        fields = combine_fields(context, d.value_type)
        h, kp, vp = _kv_ptrs(context, builder, d, args)
        out = out_buffer(builder, vc)
        op = sig.args[3].literal_value
        cargs = [
            h,
            kp,
            vp,
            i32(op),
            fields_constant(builder, fields),
            i32(len(fields)),
            builder.bitcast(out, i8p),
        ]
        st = call(builder, cname, cargs)
        val = load_value(context, builder, d, out)
        return context.make_tuple(builder, sig.return_type, [st, val])

    return codegen


def _check_op_literal(op):
    if not (isinstance(op, types.IntegerLiteral) and op.literal_value in (Op.ADD, Op.MIN, Op.MAX)):
        raise TypingError(f"pardict: a combining op must be a constant Op.ADD/MIN/MAX, got {op}")


def _combine_intrinsic(cname, doc):
    @intrinsic(prefer_literal=True)
    def combine(typingctx, d, key, value, op):
        check_dict(d)
        _check_op_literal(op)
        sig = types.Tuple([types.int32, d.value_type])(d, d.key_type, d.value_type, op)
        return sig, _combine_codegen(cname, d)

    combine.__doc__ = doc
    return combine


c_combine = _combine_intrinsic(
    "pardict_combine",
    """One atomic step: insert value, or combine it field by field into the stored one (op a
    constant Op). (status, stored value): NEW_KEY or OLD_KEY, or < 0.""",
)
c_combine_present = _combine_intrinsic(
    "pardict_combine_present",
    """c_combine without the insert; `key` may borrow memory it does not own. (status, stored
    value): FOUND or ABSENT, or < 0.""",
)


# ---- arrays without an owner (see pardict_unowned_find) -----------------------------------------


@intrinsic
def c_unowned_find(typingctx, d, a):
    """(hit, copy): this thread's earlier copy of the unowned C-contiguous array `a` stored into
    d, if it still has a's shape and bytes (a new reference); (False, null array) otherwise."""
    copy_ty = types.Array(a.dtype, a.ndim, "C")

    def codegen(context, builder, sig, args):
        size = context.get_abi_sizeof(context.get_value_type(a))
        h = handle(context, builder, d, args[0])
        src = value_ptr(context, builder, a, args[1], size)
        out = out_buffer(builder, size)
        st = call(builder, "pardict_unowned_find", [h, src, i32(a.ndim), builder.bitcast(out, i8p)])
        hit = builder.icmp_signed("==", st, i32(Result.FOUND))
        return context.make_tuple(
            builder, sig.return_type, [hit, load(context, builder, copy_ty, out)]
        )

    return types.Tuple([types.boolean, copy_ty])(d, a), codegen


@intrinsic
def c_unowned_remember(typingctx, d, a, copy):
    """Keep `copy` (just made from the unowned array `a`) as this thread's copy of `a` for d."""

    def codegen(context, builder, sig, args):
        size = context.get_abi_sizeof(context.get_value_type(a))
        h = handle(context, builder, d, args[0])
        src = value_ptr(context, builder, a, args[1], size)
        cp = value_ptr(context, builder, copy, args[2], size)
        call(builder, "pardict_unowned_remember", [h, src, i32(a.ndim), cp])
        return context.get_dummy_value()

    return types.none(d, a, copy), codegen


@intrinsic
def c_set_array(typingctx, dw, dtyref, key, aw, atyref, on_miss):
    """d[key] = a for a dict of arrays (pardict_set_array: a replaced value is released in C), d
    and a (of types dtyref and atyref) passed as `borrowed` words, so that the wrapper holds no
    reference of its own across the store (whose inlined form, pardict.numba.jit's set_array,
    branches). A borrowed `a` (no MemInfo) is stored as the calling thread's matching copy of it;
    when there is none (NEED_COPY), or when d stores arrays as their MemInfo and a's does not
    describe `a`, the jitted `on_miss(d, key, a)` runs and its status is returned. It runs
    without propagating an exception (that would add an exit that skips the caller's decref of d,
    and refcount pruning would then keep an incref/decref pair on d's MemInfo per store): a
    failure becomes ERR_NOMEM."""
    d, a = dtyref.instance_type, atyref.instance_type
    check_dict(d)
    miss_sig = types.int32(d, d.key_type, a)
    miss_fn = on_miss.dispatcher.py_func if isinstance(on_miss, types.Dispatcher) else None
    if miss_fn is None:
        raise TypingError("c_set_array: on_miss must be a jitted function")

    def codegen(context, builder, sig, args):
        dval, aval = unborrow(context, builder, d, args[0]), unborrow(context, builder, a, args[3])
        args = [dval, args[2], aval]
        h = handle(context, builder, d, args[0])
        kp = key_ptr(context, builder, d, args[1])
        vp = value_ptr(context, builder, a, args[2], context.get_abi_sizeof(args[2].type))
        result = cgutils.alloca_once(builder, i32)
        storable = cgutils.true_bit
        if stored_as_meminfo(d.value_type):  # an array the MemInfo does not describe: a view
            mi = cgutils.create_struct_proxy(a)(context, builder, value=args[2]).meminfo
            storable = builder.or_(
                cgutils.is_null(builder, mi),
                described_by_meminfo(context, builder, a, args[2]),
            )
        # The inlinable store (pardict.numba.jit) hands a replaced MemInfo back in `old`, to be
        # released here; the C calls release it themselves and leave `old` null.
        old = cgutils.alloca_once_value(builder, cgutils.get_null_value(i8p))
        fast = jit.entry(context, builder, "set_array", d)
        if fast is not None:
            described = builder.zext(storable, i32)
            builder.store(
                jit.call(builder, fast, [h, kp, vp, builder.bitcast(old, i8p), described]), result
            )
        else:
            with builder.if_else(storable, likely=True) as (whole, view):
                with whole:
                    st = call(builder, "pardict_set_array", [h, kp, vp, i32(a.ndim)])
                    builder.store(st, result)
                with view:  # the thread's last view of it, else (NEED_COPY) on_miss makes one
                    builder.store(call(builder, "pardict_set_view", [h, kp, vp]), result)
        if fast is not None:  # only it hands a replaced MemInfo back (one-word 1-D arrays only)
            replaced = builder.load(old)
            with builder.if_then(cgutils.is_not_null(builder, replaced), likely=False):
                vty = d.value_type
                context.nrt.decref(builder, vty, array_of_meminfo(context, builder, vty, replaced))
        st = builder.load(result)
        with builder.if_then(builder.icmp_signed("==", st, i32(Result.NEED_COPY)), likely=False):
            cres = context.compile_subroutine(builder, miss_fn, miss_sig)
            status, res = context.call_internal_no_propagate(
                builder, cres.fndesc, miss_sig, args[:3]
            )
            builder.store(builder.select(status.is_error, i32(Status.ERR_NOMEM), res), result)
        return builder.load(result)

    return types.int32(dw, dtyref, d.key_type, aw, atyref, on_miss), codegen


# ---- bulk operations ---------------------------------------------------------------------------
# Each takes the table, then arrays and scalars, and a count out-parameter last: (status, count).


def _nitems(context, builder, ty, v):
    return cgutils.create_struct_proxy(ty)(context, builder, value=v).nitems


def _data_or_null(context, builder, ty, v):
    if isinstance(ty, types.NoneType):
        return cgutils.get_null_value(i8p)
    return array_data(context, builder, ty, v)


def _bulk_codegen(cname, d, middle):
    """codegen of a bulk call: `middle(context, builder, sig, args)` lists the C arguments between
    the table and the count pointer."""

    def codegen(context, builder, sig, args):
        count = cgutils.alloca_once_value(builder, i64(0))
        h = handle(context, builder, d, args[0])
        st = call(builder, cname, [h, *middle(context, builder, sig, args), count])
        return context.make_tuple(builder, sig.return_type, [st, builder.load(count)])

    return codegen


_STATUS_COUNT = types.Tuple([types.int32, types.int64])


def _value_fields(builder, d, op):
    """(fields pointer, count) of a bulk op over scalar values: none for ASSIGN."""
    if op == Op.ASSIGN:
        return cgutils.get_null_value(_i32p), i32(0)
    return fields_constant(builder, [(0, scalar_kind(d.value_type))]), i32(1)


@intrinsic(prefer_literal=True)
def c_combine_many(typingctx, d, keys, values, op, threads):
    """pardict_combine_many over blob arrays (op a constant Op; ASSIGN stores): (status, number
    of new keys)."""
    check_dict(d)
    if not isinstance(op, types.IntegerLiteral):
        raise TypingError(f"pardict: a bulk op must be a constant Op, got {op}")

    def middle(context, builder, sig, args):
        opv = sig.args[3].literal_value
        return [
            array_data(context, builder, keys, args[1]),
            array_data(context, builder, values, args[2]),
            _nitems(context, builder, keys, args[1]),
            i32(opv),
            *_value_fields(builder, d, opv),
            args[4],
        ]

    sig = _STATUS_COUNT(d, keys, values, op, types.int32)
    return sig, _bulk_codegen("pardict_combine_many", d, middle)


def _lookup_middle(keys, values, found, width):
    def middle(context, builder, sig, args):
        kp, vp, fp, th = args[1:]
        return [
            array_data(context, builder, keys, kp),
            *([i64(keys.dtype.count)] if width else []),
            _nitems(context, builder, keys, kp),
            _data_or_null(context, builder, values, vp),
            array_data(context, builder, found, fp),
            th,
        ]

    return middle


@intrinsic
def c_get_many(typingctx, d, keys, values, found, threads):
    """pardict_get_many over a blob array: value blobs of found keys into `values` (None:
    membership only), 0/1 into `found`. (status, number found)."""
    check_dict(d)
    middle = _lookup_middle(keys, values, found, width=False)
    sig = _STATUS_COUNT(d, keys, values, found, types.int32)
    return sig, _bulk_codegen("pardict_get_many", d, middle)


@intrinsic
def c_get_many_ucs4(typingctx, d, keys, values, found, threads):
    """pardict_get_many_ucs4 over a C-contiguous NumPy unicode array: (status, number found).
    values None: only `found` is written (membership, any value type)."""
    check_dict(d)
    middle = _lookup_middle(keys, values, found, width=True)
    sig = _STATUS_COUNT(d, keys, values, found, types.int32)
    return sig, _bulk_codegen("pardict_get_many_ucs4", d, middle)


@intrinsic(prefer_literal=True)
def c_combine_many_ucs4(typingctx, d, keys, values, stride, op, threads, miss_rows, miss_vals):
    """pardict_combine_many_ucs4 over a C-contiguous NumPy unicode array (op a constant Op):
    (status, number of words handed back in miss_rows/miss_vals)."""
    check_dict(d)

    def middle(context, builder, sig, args):
        kp, vp, sv, _, th, mr, mv = args[1:]
        return [
            array_data(context, builder, keys, kp),
            i64(keys.dtype.count),
            _nitems(context, builder, keys, kp),
            array_data(context, builder, values, vp),
            sv,
            i32(sig.args[4].literal_value),
            *_value_fields(builder, d, sig.args[4].literal_value),
            th,
            builder.bitcast(array_data(context, builder, miss_rows, mr), _i64p),
            array_data(context, builder, miss_vals, mv),
        ]

    sig = _STATUS_COUNT(d, keys, values, types.int64, op, types.int32, miss_rows, miss_vals)
    return sig, _bulk_codegen("pardict_combine_many_ucs4", d, middle)


# ---- grouping rows (no dictionary) -----------------------------------------------------------------


@intrinsic
def c_group_indices(typingctx, keys, threads, first_rows, offsets, indices):
    """pardict_group_indices over a C-contiguous 1-d array of numeric or bool keys, or
    pardict_group_indices_ucs4 over a NumPy unicode one; the outputs are int64 arrays with room
    for n, n + 1 and n. (status, number of groups)."""
    if not (isinstance(keys, types.Array) and keys.ndim == 1 and keys.layout == "C"):
        raise TypingError(f"c_group_indices: keys must be a C-contiguous 1-d array, got {keys}")
    ucs4 = isinstance(keys.dtype, types.UnicodeCharSeq)
    kind = None if ucs4 else (Kind.U8 if keys.dtype == types.boolean else scalar_kind(keys.dtype))
    if not ucs4 and kind is None:
        raise TypingError(f"c_group_indices: unsupported key dtype {keys.dtype}")

    def codegen(context, builder, sig, args):
        kp, th, fp, op, ip = args
        n = _nitems(context, builder, keys, kp)
        shape = [i64(keys.dtype.count), n] if ucs4 else [n, i32(kind)]
        outs = [
            builder.bitcast(array_data(context, builder, ty, v), _i64p)
            for ty, v in ((first_rows, fp), (offsets, op), (indices, ip))
        ]
        count = cgutils.alloca_once_value(builder, i64(0))
        cname = "pardict_group_indices_ucs4" if ucs4 else "pardict_group_indices"
        st = call(
            builder, cname, [array_data(context, builder, keys, kp), *shape, th, *outs, count]
        )
        return context.make_tuple(builder, sig.return_type, [st, builder.load(count)])

    return _STATUS_COUNT(keys, types.int32, first_rows, offsets, indices), codegen


@intrinsic
def c_export_many(typingctx, d, keys, values):
    """pardict_export_many into two blob arrays of equal length (their capacity): (status, number
    of elements the walk met; more than the capacity when the dict grew meanwhile)."""
    check_dict(d)

    def middle(context, builder, sig, args):
        return [
            array_data(context, builder, keys, args[1]),
            array_data(context, builder, values, args[2]),
            _nitems(context, builder, keys, args[1]),
        ]

    sig = _STATUS_COUNT(d, keys, values)
    return sig, _bulk_codegen("pardict_export_many", d, middle)


@intrinsic(prefer_literal=True)
def c_merge(typingctx, d, other, op, threads):
    """pardict_merge of another dict of the same type into d (op a constant Op; ASSIGN stores,
    the others combine every numeric field of the value): (status, number of new keys)."""
    check_dict(d)
    check_dict(other)
    if other != d:
        raise TypingError(f"c_merge: both dicts must have one type, got {d} and {other}")
    if not isinstance(op, types.IntegerLiteral):
        raise TypingError(f"pardict: a merge op must be a constant Op, got {op}")

    def middle(context, builder, sig, args):
        opv = sig.args[2].literal_value
        if opv == Op.ASSIGN:
            fields, n_fields = cgutils.get_null_value(_i32p), i32(0)
        else:
            flist = combine_fields(context, d.value_type)
            fields, n_fields = fields_constant(builder, flist), i32(len(flist))
        return [handle(context, builder, other, args[1]), i32(opv), fields, n_fields, args[3]]

    sig = _STATUS_COUNT(d, other, op, types.int32)
    return sig, _bulk_codegen("pardict_merge", d, middle)
