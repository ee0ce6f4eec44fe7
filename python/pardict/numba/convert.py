"""What a key or value becomes before it crosses the C ABI.

* typed.Dict's implicit-cast rules for keys and values (`sentry_safe_cast`), and the conversion
  itself (`conv`), which also turns NumPy string elements into numba strings.
* `owned`: a value the dictionary may keep a reference to. Arrays without an owner (the views a
  prange body gets of outer arrays) are copied; a thread that stores the same unchanged source
  again shares its previous copy, as a serial typed.Dict loop would share the array itself.
* `charseq_view`: a borrowed numba string over a NumPy string element, for calls that only
  compare a key.

Arrays as one word
------------------
A 1-D array is a 7-word numba struct (meminfo, parent, nitems, itemsize, data, shape, stride).
Stored whole, it makes the seed program's slot (float64 key, float32[:] value) 64 bytes, and slot
size is most of what separated pardict from typed.Dict on that program (bench/seed_breakdown.py:
10M keys on 2 threads, 5.6 Mops/s with 64-byte slots against 10.8 with 16-byte ones). So a
dictionary whose value type is a 1-D array (types.stored_as_meminfo) stores the array's MemInfo
alone, and the slot is 16 bytes for an 8-byte key.

Reading a value rebuilds the struct from the MemInfo (abi.array_of_meminfo): data is the
MemInfo's data pointer, nitems its size over the item size, the stride the item size, no parent.
That describes exactly the arrays that are their MemInfo's whole buffer: those np.empty, zeros,
array, copy and friends make in jitted code, and the copies of borrowed arrays below. Any other
array (a slice or a strided view; an array from the interpreter, whose MemInfo has size 0 and
which has a parent) is stored under a view MemInfo made for it (abi.as_view, in `owned`): its
payload is the array's whole struct, holding the array's reference, and its destructor,
pardict_array_view_dtor, releases that. A read recognises such a MemInfo by that destructor (its
dtor_info word) and returns the carried struct with the view MemInfo as the array's owner. Stores
check which case they have (abi.described_by_meminfo), and a view MemInfo read back and stored
again is stored as it is, and each thread remembers the last view MemInfo it made
(pardict_view_find), so a loop storing one array from the interpreter under many keys makes one,
not one per key. So the behaviour is typed.Dict's: a stored view still shares memory
with its base, and an array from the interpreter comes back as the same object (numba boxes an
array with a parent as that parent).

The cost: a store compares four MemInfo words with the array's (the MemInfo sits in the same
allocation as the data numba made with it, usually still in cache); storing a view other than
the thread's last one allocates one MemInfo (about 100 bytes with its payload, so a dictionary of
distinct slices takes more memory than with whole structs, and a dictionary of arrays made in
jitted code a quarter of it); a read loads the MemInfo's data and size words. What this relies on is checked or
stated: NRT's MemInfo layout (datamodel.check_meminfo_layout, when the first such dictionary type
is made), and that numba never changes an array MemInfo's data or size once made (only lists and
strings use resizable MemInfos). Arrays of more dimensions keep their whole struct, since the
MemInfo does not hold a shape.
"""

from llvmlite import ir
from numba.core import cgutils, types
from numba.core.errors import TypingError
from numba.core.extending import intrinsic, overload
from numba.typed.typedobjectutils import _cast
from numba.typed.typedobjectutils import _sentry_safe_cast as _numba_sentry_safe_cast

from . import abi
from .types import DictType, stored_as_meminfo


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
    pardict_unowned_find); for a dictionary that stores arrays as one word, an array its MemInfo
    does not describe under a view MemInfo; everything else as it is."""
    if isinstance(v, types.Array) and stored_as_meminfo(d.value_type):

        def impl_one_word(d, v):
            c = _with_owner(d, v)
            if abi.storable_as_meminfo(c):
                return c
            hit, w = abi.c_view_find(d, c)
            if hit:
                return w
            w = abi.as_view(c)
            abi.c_view_remember(d, c, w)
            return w

        return impl_one_word
    return _ol_with_owner(d, v)


def _with_owner(d, v):
    pass


@overload(_with_owner)
def _ol_with_owner(d, v):
    """`v`, or for an array without an owner, a copy (see owned)."""
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
