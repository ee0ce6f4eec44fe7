"""Dict.split(n): partition a dict by key into n dicts (the shuffle step of a distributed group-by).

Which part a key goes to is `partition_of(key, n)`: a 64-bit hash of the key's *value*, reduced
modulo n. The hash is computed here, in jitted code, from the key alone (no seed, no address, no
per-process state: numba's own hash() of a str is salted per process unless PYTHONHASHSEED is
fixed), so every process and every machine sends a key to the same part, and the interpreter's
Dict.split runs this same jitted code. It is part of pardict's contract: changing it would make
parts of dicts split by different pardict versions disagree.

    integers and bools   the value as 64 bits (two's complement), mixed
    floats               the float64 value's bits (-0.0 as 0.0, every NaN as one), mixed
    str                  the code points (not the bytes of any encoding), FNV-1a style, mixed
    tuples               the element hashes chained through the mixer

The mixer is splitmix64's finalizer, so consecutive integers spread evenly.
"""

import numpy as np
from llvmlite import ir
from numba import literal_unroll, njit
from numba.core import types
from numba.core.errors import TypingError
from numba.core.extending import intrinsic, overload, overload_method, register_jitable

from .bulk import np_scalar
from .dictobject import new_dict
from .types import DictType

_U64 = np.uint64


@register_jitable
def mix(x):
    """splitmix64's finalizer: every input bit affects every output bit."""
    x = x ^ (x >> _U64(30))
    x = x * _U64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U64(27))
    x = x * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


@intrinsic
def _float64_bits(typingctx, x):
    """The IEEE-754 bits of a float64, as uint64."""
    if x != types.float64:
        raise TypingError(f"_float64_bits needs a float64, got {x}")

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(x), codegen


def key_hash(k):
    pass


@overload(key_hash)
def _ol_key_hash(k):
    """The process-independent 64-bit hash of a key's value (see the module docstring)."""
    if isinstance(k, (types.Integer, types.Boolean)):
        if isinstance(k, types.Integer) and not k.signed:
            return lambda k: mix(_U64(k))
        # sign-extend to 64 bits, then take the bits unsigned (an integer cast, not a conversion)
        return lambda k: mix(_U64(np.int64(k)))
    if isinstance(k, types.Float):

        def impl_float(k):
            x = np.float64(k) + 0.0  # -0.0 + 0.0 == +0.0
            if x != x:
                x = np.nan
            return mix(_float64_bits(x) ^ _U64(0x5851F42D4C957F2D))

        return impl_float
    if k == types.unicode_type:
        from numba.cpython.unicode import _get_code_point  # here: ~50 ms to import

        def impl_str(k):
            h = _U64(0xCBF29CE484222325)
            for i in range(len(k)):
                h = (h ^ _U64(_get_code_point(k, i))) * _U64(0x100000001B3)
            return mix(h ^ _U64(len(k)))

        return impl_str
    if isinstance(k, types.BaseTuple):

        def impl_tuple(k):
            h = _U64(0x9E3779B97F4A7C15)
            for x in literal_unroll(k):
                h = mix(h ^ key_hash(x))
            return h

        return impl_tuple
    raise TypingError(f"pardict: no partition hash for keys of type {k}")


@register_jitable
def partition_of(k, n):
    """The part (0 .. n-1) key k goes to when a dict is split into n."""
    return np.int64(key_hash(k) % _U64(n))


@njit(nogil=True)
def partitions_of_array(keys, n):
    """partition_of(keys[i], n) for every element of a 1-d array (NumPy strings as str)."""
    _check_parts(n)
    out = np.empty(keys.size, dtype=np.int64)
    for i in range(keys.size):
        out[i] = partition_of(_as_key(keys[i]), n)
    return out


@njit(nogil=True)
def partition_of_scalar(k, n):
    _check_parts(n)
    return partition_of(k, n)


def _as_key(x):
    pass


@overload(_as_key)
def _ol_as_key(x):
    if isinstance(x, types.UnicodeCharSeq):
        return lambda x: str(x)
    return lambda x: x


@register_jitable
def _check_parts(n):
    if n < 1:
        raise ValueError("split: n must be at least 1")


@overload_method(DictType, "split")
def _ol_split(d, n):
    """d.split(n): a list of n new dicts of d's type that together hold every item of d exactly
    once, key k in part partition_of(k, n). d is left as it is. Numeric dicts are exported and
    sorted into parts by a counting pass, each part filled by one C++ bulk insert; others walk the
    items. Under concurrent modification of d, as iteration: items present throughout are in
    exactly one part."""
    if not isinstance(n, types.Integer):
        raise TypingError(f"pardict.Dict.split: n must be an int, got {n}")
    dty = d
    if np_scalar(d.key_type) and np_scalar(d.value_type):

        def impl_arrays(d, n):
            _check_parts(n)
            keys, values = d.to_arrays()
            part = np.empty(keys.size, dtype=np.int64)
            counts = np.zeros(n, dtype=np.int64)
            for i in range(keys.size):
                p = partition_of(keys[i], n)
                part[i] = p
                counts[p] += 1
            # counting sort: each part's rows become one contiguous run
            start = np.zeros(n + 1, dtype=np.int64)
            for j in range(n):
                start[j + 1] = start[j] + counts[j]
            at = start[:-1].copy()
            order = np.empty(keys.size, dtype=np.int64)
            for i in range(keys.size):
                order[at[part[i]]] = i
                at[part[i]] += 1
            ks, vs = keys[order], values[order]
            out = []
            for j in range(n):
                sub = new_dict(dty, counts[j])
                sub.set_many(ks[start[j] : start[j + 1]], vs[start[j] : start[j + 1]])
                out.append(sub)
            return out

        return impl_arrays

    def impl_items(d, n):
        _check_parts(n)
        out = []
        for _ in range(n):
            out.append(new_dict(dty, len(d) // n))
        for k, v in d.items():
            out[partition_of(k, n)][k] = v
        return out

    return impl_items
