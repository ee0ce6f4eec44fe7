"""pardict.group_indices: the rows of an array grouped by key, in CSR form.

What numba users build a Dict[int64, List[int64]] for, and which a prange loop cannot fill safely
even with a thread-safe dict (a typed.List is not). One C call (pardict_group_indices, capi/
group.cpp) groups the rows on C++ worker threads, never numba's parallel kernels, so it is safe
from interpreter threads and inside a prange body on every threading layer.

One implementation for both sides: the @overload below is what jitted code runs, and the
interpreter function checks and converts its input, then runs the same overload through a nogil
jitted helper (_helpers.group_indices), so the GIL is released for the whole call.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from numba.core import config, types
from numba.core.errors import TypingError
from numba.core.extending import overload

from . import abi
from .abi import check
from .bulk import nthreads


def group_indices(
    keys: Any, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uniques, offsets, indices): the rows of `keys` grouped by key value.

    Group g holds the key uniques[g] and the rows indices[offsets[g]:offsets[g + 1]], in ascending
    order; groups are numbered in order of first occurrence, so uniques[g] = keys[first row of g].
    keys: a 1-d array (or sequence) of integers, floats or bools, or of str (a NumPy unicode array
    or a sequence of str). Floats group as pardict's dict keys do: -0.0 with 0.0, every NaN in one
    group. uniques has the keys' dtype; offsets is int64[G + 1], indices int64[n].

    The work is split over `threads` C++ worker threads (default: numba's thread count; never more
    than the CPUs the process may run on); the result does not depend on their number. Works in
    the interpreter (GIL released) and in @njit code, including inside a prange body."""
    a = _as_keys(keys)
    if threads is not None:
        try:
            threads = operator.index(threads)
        except TypeError:
            raise TypeError(
                f"pardict.group_indices: threads must be an int or None, got {threads!r}"
            ) from None
        if threads < 1:
            raise ValueError("threads must be at least 1 (or None: numba's thread count)")
        threads = min(threads, 1 << 30)
    if getattr(config, "DISABLE_JIT", False):
        return _group_with_numpy(a)
    from .. import _helpers

    return _helpers.group_indices(a, threads)


def _as_keys(keys):
    """keys as a 1-d NumPy array of a dtype the jitted implementation takes, or TypeError /
    ValueError saying what is wrong."""
    a = keys if isinstance(keys, np.ndarray) else np.asarray(keys)
    if a.ndim != 1:
        raise ValueError(f"pardict.group_indices: keys must be 1-d, got shape {a.shape}")
    if a.dtype.kind == "U" and not isinstance(keys, np.ndarray):
        bad = next((k for k in keys if not isinstance(k, str)), None)
        if bad is not None:  # NumPy would have turned it into its str()
            raise TypeError(
                f"pardict.group_indices: a sequence of keys mixes str with {type(bad).__name__}"
            )
    if a.dtype.kind not in "biufU" or a.dtype == np.float16:
        raise TypeError(
            f"pardict.group_indices: keys must be integers, floats (32 or 64 bits), bools or "
            f"str, got dtype {a.dtype}"
        )
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def _group_with_numpy(a):
    """The same result with NumPy alone (NUMBA_DISABLE_JIT: nothing compiles)."""
    k = np.where(np.isnan(a), np.nan, a + 0.0) if a.dtype.kind == "f" else a
    _, first, inverse = np.unique(k, return_index=True, return_inverse=True)
    order = np.argsort(first)  # groups by first occurrence
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    gid = rank[inverse.reshape(-1)]
    counts = np.bincount(gid, minlength=order.size)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return a[first[order]], offsets, np.argsort(gid, kind="stable").astype(np.int64)


def _key_dtype_ok(dt):
    if isinstance(dt, types.UnicodeCharSeq):
        return True
    return isinstance(dt, types.Boolean) or abi.scalar_kind(dt) is not None


@overload(group_indices)
def _ol_group_indices(keys, threads=None):
    if not (isinstance(keys, types.Array) and keys.ndim == 1 and _key_dtype_ok(keys.dtype)):
        raise TypingError(
            f"pardict.group_indices: keys must be a 1-d array of integers, floats (32 or 64 "
            f"bits), bools or str (a NumPy unicode array), got {keys}"
        )

    def impl(keys, threads=None):
        t = nthreads(threads)
        flat = np.ascontiguousarray(keys)
        n = flat.size
        first_rows = np.empty(n, dtype=np.int64)
        offsets = np.empty(n + 1, dtype=np.int64)
        indices = np.empty(n, dtype=np.int64)
        st, g = abi.c_group_indices(flat, t, first_rows, offsets, indices)
        check(st)
        return flat[first_rows[:g]], offsets[: g + 1].copy(), indices

    return impl
