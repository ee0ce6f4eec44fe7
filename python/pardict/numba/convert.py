"""What a key or value becomes before it crosses the C ABI.

* typed.Dict's implicit-cast rules for keys and values (`sentry_safe_cast`), and the conversion
  itself (`conv`), which also turns NumPy string elements into numba strings.
* `owned`: a value the dictionary may keep a reference to. Arrays without an owner (the views a
  prange body gets of outer arrays) are copied; a thread that stores the same unchanged source
  again shares its previous copy, as a serial typed.Dict loop would share the array itself.
* `charseq_view`: a borrowed numba string over a NumPy string element, for calls that only
  compare a key.
"""

from llvmlite import ir
from numba.core import cgutils, types
from numba.core.errors import TypingError
from numba.core.extending import intrinsic, overload
from numba.typed.typedobjectutils import _cast
from numba.typed.typedobjectutils import _sentry_safe_cast as _numba_sentry_safe_cast

from . import abi
from .types import DictType


def castable(fromty, toty):
    """Whether numba can convert a `fromty` to a `toty` at all."""
    from numba.core.registry import cpu_target

    return cpu_target.typing_context.can_convert(types.unliteral(fromty), toty) is not None


def sentry_safe_cast(fromty, toty):
    """typed.Dict's implicit-cast rules (lossy numeric casts warn, numeric domain changes are a
    TypingError), plus: a conversion numba does not know at all (int -> str, a tuple of another
    length, an 'A'-layout array into a 'C' slot) is a TypingError here, where typed.Dict fails
    later in lowering with an internal error."""
    fromty, toty = types.unliteral(fromty), types.unliteral(toty)
    if isinstance(fromty, types.UnicodeCharSeq) and toty == types.unicode_type:
        return  # NumPy string elements: str(x) is exact
    if not (isinstance(fromty, DictType) and isinstance(toty, DictType)):
        if not castable(fromty, toty):
            raise TypingError(f"cannot safely cast {fromty} to {toty}. Please cast explicitly.")
    _numba_sentry_safe_cast(fromty, toty)


def sentry_safe_cast_default(default, valty):
    """sentry_safe_cast for an optional default (None or omitted is always fine)."""
    if default is None or isinstance(default, (types.Omitted, types.NoneType)):
        return
    sentry_safe_cast(default, valty)


def is_omitted(x):
    """Whether an optional argument was left out (or given as None)."""
    return x is None or isinstance(x, (types.Omitted, types.NoneType))


def conv(x, ty):
    pass


@overload(conv)
def _ol_conv(x, ty):
    """numba's _cast, plus NumPy string elements (UnicodeCharSeq) to unicode_type."""
    if isinstance(x, types.UnicodeCharSeq):
        return lambda x, ty: str(x)
    return lambda x, ty: _cast(x, ty)


@intrinsic
def charseq_view(typingctx, cs, n):
    """A numba string borrowing the code points of a NumPy string element (no MemInfo, no copy):
    only for calls that compare a key without storing it."""
    if not (isinstance(cs, types.UnicodeCharSeq) and isinstance(n, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        from numba.cpython.unicode import PY_UNICODE_4BYTE_KIND

        buf = cgutils.alloca_once_value(builder, args[0])  # lives as long as the caller's frame
        u = cgutils.create_struct_proxy(types.unicode_type)(context, builder)
        u.data = builder.bitcast(buf, u.data.type)
        u.length = builder.sext(args[1], u.length.type) if args[1].type.width < 64 else args[1]
        u.kind = ir.Constant(u.kind.type, PY_UNICODE_4BYTE_KIND)  # NumPy strings are UCS4
        u.is_ascii = ir.Constant(u.is_ascii.type, 0)
        u.hash = ir.Constant(u.hash.type, -1)  # not computed
        return u._getvalue()

    return types.unicode_type(cs, n), codegen


# ---- arrays without an owner -----------------------------------------------------------------------


@intrinsic
def borrowed_array(typingctx, a):
    """True for an array without a MemInfo: a view the callee cannot keep alive (arrays that
    parfor passes into prange bodies, global constants)."""

    def codegen(context, builder, sig, args):
        mi = cgutils.create_struct_proxy(a)(context, builder, value=args[0]).meminfo
        return cgutils.is_null(builder, mi)

    return types.boolean(a), codegen


def shares_copies(d, v):
    """Whether storing a borrowed `v` into d may share the storing thread's earlier copy of it
    (pardict_unowned_find): d's value is an array of v's ndim and v is C-contiguous."""
    return (
        isinstance(v, types.Array)
        and v.layout == "C"
        and isinstance(d.value_type, types.Array)
        and d.value_type.ndim == v.ndim
    )


def owned(d, v):
    pass


@overload(owned)
def _ol_owned(d, v):
    """A value the dictionary can hold a reference to: a copy of an array without an owner,
    shared with the thread's previous copy of the same unchanged source when possible (see
    pardict_unowned_find); everything else as it is."""
    if isinstance(v, types.Array) and v.layout == "F":
        # numba's copy() is C-ordered; copying the C-ordered transpose keeps the type's layout.

        def impl_f(d, v):
            if borrowed_array(v):
                return v.T.copy().T
            return v

        return impl_f
    if shares_copies(d, v):

        def impl_shared(d, v):
            if borrowed_array(v):
                hit, c = abi.c_unowned_find(d, v)
                if hit:
                    return c
                c = v.copy()
                abi.c_unowned_remember(d, v, c)
                return c
            return v

        return impl_shared
    if isinstance(v, types.Array):

        def impl_copy(d, v):
            if borrowed_array(v):
                return v.copy()
            return v

        return impl_copy
    return lambda d, v: v
