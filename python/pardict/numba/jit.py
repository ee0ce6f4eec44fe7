"""The numba fast path: pardict's single-key operations as LLVM bitcode (capi/jit.hpp, built into
``pardict/_jit.bc`` when a clang++ was found at build time), linked into the module of every jitted
function that uses them, so that LLVM inlines them into the caller's loop.

Only the common case runs inline (see capi/jit.hpp); every other case calls the C ABI, so results
never depend on which path ran.

``PARDICT_JIT_INLINE`` in the environment (read at import) says which operations run inline:
unset, the stores (``d[k] = v``, numbers and arrays alike, and ``d.add``, ``d.min``, ``d.max`` on
scalar values); ``1``, the lookups too (``d[k]``,
``d.get``, ``k in d``); ``0``, none. Stores run inline by default because they ran faster on
every workload and machine they were measured on (the seed program's array store: 466 -> 332
instructions, 10M keys 1.35x faster at 1 thread and 1.22x at 2; int64 inserts at 10M keys 1.08x
and 1.29x). Lookups stay opt-in: they cut a lookup from 186 to 153 instructions and speed up serial
lookups, integer sums, ``k in d`` and lookups into an array by 10-25% on a cache-resident table,
but a float sum over lookups in a prange loop (``s += d[k]``) ran 28% slower on the Intel Xeon VM
it was measured on, for a reason not found yet (docs/python.md, "How it plugs into numba").
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from llvmlite import ir
from numba.core import cgutils

from .types import stored_as_meminfo

i8p = ir.IntType(8).as_pointer()

_MODE = os.environ.get("PARDICT_JIT_INLINE")
ENABLED = _MODE == "1"  # every operation, lookups included
STORES = _MODE != "0"  # the stores (the default)
_LOOKUPS = ("get", "contains")
# (key class, value class) pairs with an entry point in capi/jit.cpp.
_KEY_CLASSES = (4, 8)
_VALUE_CLASSES = (4, 8, 16)


def bitcode_path() -> Path:
    from .. import _ext

    return Path(_ext.__file__).with_name("_jit.bc")


@functools.cache
def _bitcode() -> bytes | None:
    path = bitcode_path()
    return path.read_bytes() if STORES and path.is_file() else None


_libraries: dict[int, object] = {}


def _library(codegen):
    """The code library holding the bitcode, one per numba codegen, or None when there is none
    or it does not load (a bitcode newer than llvmlite's LLVM, say)."""
    key = id(codegen)
    if key not in _libraries:
        lib = None
        bc = _bitcode()
        if bc is not None:
            import llvmlite.binding as llvm

            try:
                mod = llvm.parse_bitcode(bc)
                # The target of the modules it is linked into (clang's triple spelling differs).
                empty = codegen._create_empty_module("pardict_jit")
                mod.triple = empty.triple
                mod.data_layout = empty.data_layout
                lib = codegen.create_library("pardict_jit")
                lib.add_llvm_module(mod)
                lib.finalize()
            except Exception:  # noqa: BLE001 - any failure means: use the C calls
                lib = None
        _libraries[key] = lib
    return _libraries[key]


def available(context) -> bool:
    return _library(context.codegen()) is not None


def _entry_name(op: str, dty) -> str | None:
    k, v, kc, vc = dty.layouts
    if k.refs or k.strs or kc not in _KEY_CLASSES:
        return None
    if op in _ARRAY_OPS:  # 1-D arrays stored as one word (convert.py, "Arrays as one word")
        return f"pardict_jit_{op}_k{kc}" if stored_as_meminfo(dty.value_type) else None
    if v.refs or v.strs or vc not in _VALUE_CLASSES:
        return None
    return f"pardict_jit_{op}_k{kc}_v{vc}"


def inlinable(op: str, dty) -> bool:
    """Whether op may run inline for dictionaries of type dty (the mode allows it and there is an
    entry point for dty's layout; the bitcode may still turn out missing, which `entry` finds)."""
    if op in _LOOKUPS:
        return ENABLED and _entry_name(op, dty) is not None
    return STORES and _entry_name(op, dty) is not None


i32 = ir.IntType(32)
# Each entry point takes its C call's arguments and, last, `fences` (see call()).
_TYPES = {
    "get": ir.FunctionType(i32, [i8p, i8p, i8p, i32]),
    "contains": ir.FunctionType(i32, [i8p, i8p, i32]),
    "set": ir.FunctionType(i32, [i8p, i8p, i8p, i8p, i32]),
    # pardict_combine's (d, key, value, op, fields, n_fields, out): d.add, d.min, d.max.
    "combine": ir.FunctionType(i32, [i8p, i8p, i8p, i32, i32.as_pointer(), i32, i8p, i32]),
    # (d, key, numba array struct, old MemInfo out, described): capi/jit.hpp, jit_set_array.
    "set_array": ir.FunctionType(i32, [i8p, i8p, i8p, i8p, i32, i32]),
}


@functools.cache
def fences() -> int:
    """pardict_jit_fences(): 1 when the inlined code's light fence may be a compiler barrier (the
    epoch scans of this process run a process-wide barrier), 0 when it must be a full fence."""
    from .. import _ext

    return int(_ext.jit_fences())


def call(builder, fn, args):
    """A call of entry point fn with its C call's args: `fences` goes last as a constant, so that
    LLVM folds the choice of fence away. It is also part of the id the library checks before it
    serves the inlined code (pardict_jit_slot_for): a function cached in a process whose answer
    was different takes the C calls."""
    return builder.call(fn, [*args, ir.Constant(i32, fences())])


_ARRAY_OPS = ("set_array",)


def entry(context, builder, op, dty):
    """The inlinable pardict_<op> ("get", "contains", "set", "combine" or "set_array") for
    dictionaries of type dty, or None when there is none (the caller then calls the C ABI). The
    first four take pardict_<op>'s arguments and give its result; "set_array" is
    pardict_set_array and pardict_set_view in one (capi/jit.hpp, jit_set_array)."""
    name = _entry_name(op, dty)
    if name is None or (op in _LOOKUPS and not ENABLED):
        return None
    if "noinline" in builder.function.attributes:
        # numba's debug builds (debug=True, NUMBA_DEBUGINFO) mark functions noinline, which
        # cannot be combined with the alwaysinline below: they get the C call.
        return None
    lib = _library(context.codegen())
    if lib is None:
        return None
    context.active_code_library.add_linking_library(lib)
    # The function being built is one of pardict's small wrappers (d[k]: the status check and the
    # KeyError); with the lookup inlined into it, LLVM's cost model would keep it a call.
    builder.function.attributes.add("alwaysinline")
    return cgutils.get_or_insert_function(builder.module, _TYPES[op], name)


__all__ = ["ENABLED", "STORES", "available", "bitcode_path", "call", "entry", "fences", "inlinable"]
