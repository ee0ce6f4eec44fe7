"""numba's data model, as the C side (capi/pardict_capi.h's pardict_numba_layout) assumes it.

The C side reads numba's array and unicode structs at fixed byte offsets; these functions compare
those offsets with the installed numba's, so that an unsupported numba is a clear ImportError, not
memory corruption. abi.py checks the array struct at import; DictType checks the unicode struct
once a dict with strings is made (loading numba's unicode model at import would cost start-up).
"""

import numba
from numba.core import types

from .. import _ext


def _field_offsets(ty):
    """{field name: byte offset} of a numba StructModel type's data representation, and its size.
    From numba's default data model manager and the host's LLVM target data: no target context
    (whose first refresh costs ~0.2 s of numba's start-up)."""
    import llvmlite.binding as ll
    from numba.core.datamodel.registry import default_manager

    if ty == types.unicode_type:
        import numba.cpython.unicode  # noqa: F401  (registers the unicode data model)

    ll.initialize_native_target()
    machine = ll.Target.from_default_triple().create_target_machine()
    td = ll.create_target_data(str(machine.target_data))
    model = default_manager[ty]
    llty = model.get_data_type()
    offsets = {name: llty.get_element_offset(td, i) for i, name in enumerate(model._fields)}
    return offsets, llty.get_abi_size(td)


def expected_numba_layout():
    """(struct, field) -> byte offset, as capi/pardict_capi.h states it."""
    out = {}
    for name, offset in _ext.abi()["numba_layout"].items():  # with the aliases (equal offsets)
        struct, _, field = name.partition("_")
        out[(struct.lower(), field.lower())] = int(offset)
    return out


_checked_structs: set[str] = set()


def check_numba_layout(expected=None, structs=("array", "unicode")):
    """Raise ImportError unless the installed numba lays out `structs` as the C side reads them
    (pardict_numba_layout in pardict_capi.h). Each struct is checked once per process."""
    own = expected is None
    expected = expected_numba_layout() if own else expected
    types_of = {"array": types.Array(types.float64, 1, "C"), "unicode": types.unicode_type}
    actual = {}
    for struct in structs:
        offsets, size = _field_offsets(types_of[struct])
        actual.update({(struct, f): off for f, off in offsets.items()})
        actual[(struct, "size")] = size
    wrong = [
        f"{struct}.{field}: the C side reads byte {off}, numba has "
        f"{actual.get((struct, field), 'no such field')}"
        for (struct, field), off in sorted(expected.items())
        if struct in structs and actual.get((struct, field)) != off
    ]
    if wrong:
        raise ImportError(
            f"pardict was built for another numba data model than numba "
            f"{numba.__version__}'s: "
            + "; ".join(wrong)
            + ". Install a numba version pardict supports (see pyproject.toml)."
        )
    if own:
        _checked_structs.update(structs)


def ensure_numba_layout_checked():
    """check_numba_layout for the structs not checked yet (the unicode model is only loaded once
    numba compiles something with strings; checking it at import would load it there)."""
    missing = tuple(s for s in ("array", "unicode") if s not in _checked_structs)
    if missing:
        check_numba_layout(structs=missing)


# NRT's MemInfo (numba/core/runtime/nrt.cpp), as the one-word form of array values reads it
# (convert.py, "Arrays as one word"): words of the struct.
MEMINFO_DTOR_INFO = 2  # the destructor NRT_MemInfo_alloc_dtor was given
MEMINFO_DATA = 3
MEMINFO_SIZE = 4
_meminfo_checked = False


def check_meminfo_layout():
    """Raise ImportError unless NRT's MemInfo holds its destructor argument, data pointer and
    size in the words the jitted code reads (made by numba's own allocators, read back here)."""
    import ctypes

    from numba.core.registry import cpu_target
    from numba.core.runtime import _nrt_python

    _ = cpu_target.target_context  # starts NRT, whose allocator the calls below use
    helpers = _nrt_python.c_helpers
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
    alloc_dtor = ctypes.CFUNCTYPE(vp, sz, vp)(helpers["MemInfo_alloc_dtor"])
    data_of = ctypes.CFUNCTYPE(vp, vp)(helpers["MemInfo_data"])
    release = ctypes.CFUNCTYPE(None, vp)(helpers["MemInfo_release"])
    dtor = _ext.symbols()["pardict_array_view_dtor"]
    mi = alloc_dtor(56, dtor)
    if not mi:
        raise MemoryError("NRT_MemInfo_alloc_dtor failed")
    try:
        ctypes.memset(data_of(mi), 0, 56)  # a null inner MemInfo: the destructor does nothing
        words = (ctypes.c_uint64 * 6).from_address(mi)
        wrong = [
            name
            for name, word, want in (
                ("dtor_info", MEMINFO_DTOR_INFO, dtor),
                ("data", MEMINFO_DATA, data_of(mi)),
                ("size", MEMINFO_SIZE, 56),
            )
            if words[word] != want
        ]
    finally:
        release(mi)
    if wrong:
        raise ImportError(
            f"numba {numba.__version__}'s NRT MemInfo does not hold "
            + ", ".join(wrong)
            + " where pardict reads them. Install a numba version pardict supports "
            "(see pyproject.toml)."
        )


def ensure_meminfo_layout_checked():
    global _meminfo_checked
    if not _meminfo_checked:
        check_meminfo_layout()
        _meminfo_checked = True
