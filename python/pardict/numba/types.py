"""numba types of pardict: the dictionary, its views and its iterators.

A dictionary type is parametrised by (key type, value type). Its native value is the same two
words as numba's typed.Dict ({meminfo, data}: the MemInfo owns the C++ table, `data` points at it),
so passing it to prange workers copies two words and every worker reaches the same table.
"""

from functools import cached_property

from numba.core import types
from numba.core.datamodel import models
from numba.core.errors import TypingError

__all__ = [
    "DictType",
    "DictIterType",
    "DictViewType",
    "layout_of",
    "stored_as_meminfo",
    "check_key_type",
    "check_value_type",
]


def _target_context():
    from numba.core.registry import cpu_target

    ctx = cpu_target.target_context
    ctx.refresh()  # data models of lazily registered types (unicode, ...) must be loaded
    return ctx


def _is_key_scalar(ty):
    return isinstance(ty, (types.Integer, types.Float, types.Boolean))


def check_key_type(ty):
    """Raise TypingError unless `ty` can be a pardict key (scalars, str, tuples of these)."""
    if _is_key_scalar(ty) or ty == types.unicode_type:
        return
    if isinstance(ty, types.BaseTuple) and len(ty) > 0:
        for t in ty:
            check_key_type(t)
        return
    raise TypingError(
        f"{ty} as key is forbidden: pardict keys must be integer, float or bool scalars, unicode "
        f"strings, or tuples of these"
    )


def check_value_type(ty):
    """Raise TypingError for value types pardict cannot store, at the door (Dict.empty, the first
    store into an untyped Dict) rather than at the first use."""
    if isinstance(ty, (types.Optional, types.NoneType, types.Undefined)) or ty is None:
        raise TypingError(f"pardict values cannot be {ty}")
    if isinstance(ty, (types.List, types.Set)):
        raise TypingError(
            f"pardict values cannot be Python lists or sets ({ty}): numba reflects them back to "
            f"the Python object they came from, which a dictionary cannot hold; use "
            f"numba.typed.List (types.ListType) or a NumPy array"
        )
    if isinstance(ty, types.Record):
        raise TypingError(
            f"pardict values cannot be NumPy record scalars ({ty}): numba represents them as a "
            f"pointer into the array they came from; store a tuple of the fields, or a 1-element "
            f"record array"
        )
    if isinstance(ty, types.PyObject):
        raise TypingError(
            "pardict values cannot be Python objects (types.pyobject): jitted code cannot hold "
            "them; store numbers, strings, tuples or arrays"
        )
    if isinstance(ty, (types.Literal, types.Omitted, types.Dispatcher, types.Function)):
        raise TypingError(f"pardict values cannot be {ty}")


class Layout:
    """Bytes and reference positions of a key or value's data representation."""

    __slots__ = ("size", "refs", "strs")

    def __init__(self, size, refs, strs):
        self.size = size
        self.refs = refs  # bit i: word i holds an NRT MemInfo pointer
        self.strs = strs  # bit i: word i starts a numba unicode struct

    def __repr__(self):
        return f"Layout(size={self.size}, refs={self.refs:#x}, strs={self.strs:#x})"


def _walk(ctx, ty, llty, base, refs, strs):
    """Collect byte offsets of MemInfo pointers and unicode structs inside `ty`'s data."""
    if isinstance(ty, types.MemInfoPointer):
        refs.append(base)
        return
    if ty == types.unicode_type:
        strs.append(base)
    dm = ctx.data_model_manager[ty]
    td = ctx.target_data
    if isinstance(dm, models.StructModel):
        for i, mty in enumerate(dm._members):
            off = llty.get_element_offset(td, i)
            _walk(ctx, mty, dm.get_data_type().elements[i], base + off, refs, strs)
    elif isinstance(dm, models.UniTupleModel):
        elem_ll = llty.element
        step = elem_ll.get_abi_size(td)
        for i in range(llty.count):
            _walk(ctx, ty.dtype, elem_ll, base + i * step, refs, strs)
    elif dm.contains_nrt_meminfo():
        raise TypingError(f"pardict cannot find the references inside {ty}")


def layout_of(ty):
    """Bytes, MemInfo words and string words of ty's data representation."""
    if isinstance(ty, (types.Integer, types.Float)):  # plain numbers: no target context needed
        return Layout(ty.bitwidth // 8, 0, 0)
    if isinstance(ty, types.Boolean):
        return Layout(1, 0, 0)  # numba's boolean data model is one byte
    ctx = _target_context()
    llty = ctx.get_data_type(ty)
    size = ctx.get_abi_sizeof(llty)
    refs, strs = [], []
    _walk(ctx, ty, llty, 0, refs, strs)
    for off in refs + strs:
        if off % 8:
            raise TypingError(f"unaligned reference inside {ty}")
    return Layout(size, sum(1 << (o // 8) for o in refs), sum(1 << (o // 8) for o in strs))


def stored_as_meminfo(ty):
    """Whether a dictionary stores its `ty` values as their MemInfo alone, one word (1-D arrays;
    convert.py, "Arrays as one word")."""
    return isinstance(ty, types.Array) and ty.ndim == 1


class DictType(types.IterableType):
    """pardict.DictType(key_type, value_type): the numba type of a pardict.Dict."""

    mutable = True  # keep parfor hoisting away from it (numba's DictType leaves this False)

    def __init__(self, key_type, value_type):
        key_type = _as_type(key_type)
        value_type = _as_type(value_type)
        check_key_type(key_type)
        check_value_type(value_type)
        self.key_type = key_type
        self.value_type = value_type
        super().__init__(name=f"pardict.DictType[{key_type},{value_type}]")

    @property
    def key(self):
        return self.key_type, self.value_type

    @property
    def iterator_type(self):
        return DictIterType(self, "keys")

    def unify(self, typingctx, other):
        if isinstance(other, UntypedDictType):  # the refined type of a pardict.Dict() wins
            return self

    @cached_property
    def layouts(self):
        from .. import _ext

        if not all(_is_key_scalar(t) for t in (self.key_type, self.value_type)):
            from .datamodel import ensure_numba_layout_checked  # the C side reads strings too

            ensure_numba_layout_checked()
        k = layout_of(self.key_type)
        if stored_as_meminfo(self.value_type):
            from .datamodel import ensure_meminfo_layout_checked

            ensure_meminfo_layout_checked()
            v = Layout(8, 1, 0)  # the MemInfo word
        else:
            v = layout_of(self.value_type)
        kc, vc = _ext.key_class(k.size), _ext.value_class(v.size)
        if kc == 0:
            raise TypingError(
                f"pardict key type {self.key_type} is too large ({k.size} bytes; at most 128)"
            )
        if vc == 0:
            raise TypingError(
                f"pardict value type {self.value_type} is too large ({v.size} bytes; at most 256)"
            )
        return k, v, kc, vc


class UntypedDictType(types.DictType):
    """pardict.Dict() in jitted code until its first store says its key and value types. A
    numba DictType only so that numba's type inference refines it as it refines typed.Dict():
    refine() gives the pardict DictType of the first key and value stored."""

    def __init__(self):
        super().__init__(types.undefined, types.undefined)
        self.name = "pardict.DictType[undefined,undefined]"

    @classmethod
    def refine(cls, keyty, valty):
        return DictType(types.unliteral(keyty), types.unliteral(valty))

    def unify(self, typingctx, other):
        if isinstance(other, (DictType, UntypedDictType)):
            return other


class DictViewType(types.IterableType):
    """d.keys(), d.values(), d.items()."""

    def __init__(self, dict_type, kind):
        self.dict_type = dict_type
        self.kind = kind
        super().__init__(name=f"pardict.{kind}[{dict_type}]")

    @property
    def iterator_type(self):
        return DictIterType(self.dict_type, self.kind)


class DictIterType(types.SimpleIteratorType):
    def __init__(self, dict_type, kind):
        self.dict_type = dict_type
        self.kind = kind
        if kind == "keys":
            yt = dict_type.key_type
        elif kind == "values":
            yt = dict_type.value_type
        else:
            yt = types.Tuple([dict_type.key_type, dict_type.value_type])
        super().__init__(f"pardict.iter_{kind}[{dict_type}]", yt)


def _as_type(t):
    """Accept numba types, and NumPy dtypes / Python types numba can translate."""
    if isinstance(t, types.Type):
        return t
    import numpy as np
    from numba.np.numpy_support import from_dtype

    if t is str:
        return types.unicode_type
    if t is int or t is float or t is bool:  # not `in`: np.dtype('float64') == float
        return {int: types.int64, float: types.float64, bool: types.boolean}[t]
    # np.dtype(None) is float64: reject it (and anything not a type or dtype spelling) explicitly.
    if isinstance(t, (type, np.dtype)) or (isinstance(t, str) and t):
        try:
            return from_dtype(np.dtype(t))
        except Exception:
            pass
    raise TypeError(f"expected a numba type for a pardict key or value, got {t!r}")


class DictModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        members = [("meminfo", types.MemInfoPointer(types.voidptr)), ("data", types.voidptr)]
        super().__init__(dmm, fe_type, members)


class DictViewModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, [("parent", fe_type.dict_type)])


class DictIterModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        # meminfo owns the C++ iterator (which holds a reference to the dictionary's MemInfo).
        members = [("meminfo", types.MemInfoPointer(types.voidptr)), ("state", types.voidptr)]
        super().__init__(dmm, fe_type, members)


def _register_models():
    from numba.core.extending import register_model

    register_model(DictType)(DictModel)
    register_model(UntypedDictType)(DictModel)
    register_model(DictViewType)(DictViewModel)
    register_model(DictIterType)(DictIterModel)


_register_models()
