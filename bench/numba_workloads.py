"""Jitted kernels for bench/bench_numba.py: pardict.Dict vs numba.typed.Dict at the numba level.

Every kernel builds its dictionary inside the jitted call (as the seed program does) and returns
it, so the timed call covers construction + fill and never the deallocation. The lookup kernels
take a prefilled dictionary and return an integer checksum (values are float(index), exact below
2**53, so the sum is exact and independent of the summation order).

impl names (see IMPLS in bench_numba.py):
  pardict                     pardict.Dict written/read from a @njit(parallel=True) prange loop
  typed_dict                  numba.typed.Dict from a plain @njit range loop (its only safe writer)
  typed_dict_chunks           numba's advice for writes: one typed.Dict per chunk, kept in a
                              typed.List made before the loop, filled in a prange over the chunks,
                              then merged serially into one typed.Dict (fill and merge are two
                              jitted calls; the cell's time is their sum)
  typed_dict_prange_readonly  numba's advice for reads: a read-only prange over a typed.Dict that
                              nothing writes meanwhile (documented safe)
"""

import numpy as np
from numba import njit, prange, types
from numba.typed import Dict as TDict
from numba.typed import List as TList

import pardict

PDict = pardict.Dict

i64 = types.int64
f64 = types.float64
f32arr = types.float32[:]
TD_INT = types.DictType(i64, f64)
TD_SEED = types.DictType(f64, f32arr)

GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplication is a bijection mod 2**64


def make_keys(n, seed=12345):
    """n distinct, random-looking int64 keys: a shuffled 1..n times a large odd constant."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n).astype(np.uint64) + np.uint64(1)
    return (perm * GOLDEN).view(np.int64)


def make_queries(n, n_lookups, seed=54321):
    """Uniform random indices into the key array (every lookup hits); the expected checksum is
    their sum, since key j maps to float(j)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=n_lookups, dtype=np.int64)


# ---- W_insert -------------------------------------------------------------------------------------


@njit(parallel=True)
def pd_insert(keys):
    d = PDict.empty(i64, f64)
    for i in prange(keys.size):
        d[keys[i]] = float(i)
    return d


@njit
def td_insert(keys):
    d = TDict.empty(i64, f64)
    for i in range(keys.size):
        d[keys[i]] = float(i)
    return d


@njit(parallel=True)
def td_insert_chunks(keys, nch):
    parts = TList.empty_list(TD_INT)
    for _ in range(nch):
        parts.append(TDict.empty(i64, f64))
    n = keys.size
    for c in prange(nch):
        p = parts[np.int64(c)]
        for i in range(c * n // nch, (c + 1) * n // nch):
            p[keys[i]] = float(i)
    return parts


@njit
def td_merge_int(parts):
    out = TDict.empty(i64, f64)
    for c in range(len(parts)):
        for k, v in parts[c].items():
            out[k] = v
    return out


# ---- W_lookup -------------------------------------------------------------------------------------


@njit(parallel=True)
def lookup_prange(d, keys, q):
    """Works for pardict.Dict (pardict) and typed.Dict (typed_dict_prange_readonly)."""
    s = 0
    for i in prange(q.size):
        s += np.int64(d[keys[q[i]]])
    return s


@njit
def lookup_serial(d, keys, q):
    s = 0
    for i in range(q.size):
        s += np.int64(d[keys[q[i]]])
    return s


# ---- W_seed: float64 -> float32[:], d[float(i)] = v ------------------------------------------------


@njit(parallel=True)
def pd_seed(n):
    d = PDict.empty(f64, f32arr)
    v = np.array([0.1, 0.2], dtype=np.float32)
    for i in prange(n):
        d[float(i)] = v
    return d


@njit
def td_seed(n):
    d = TDict.empty(f64, f32arr)
    v = np.array([0.1, 0.2], dtype=np.float32)
    for i in range(n):
        d[float(i)] = v
    return d


@njit(parallel=True)
def td_seed_chunks(n, nch):
    parts = TList.empty_list(TD_SEED)
    for _ in range(nch):
        parts.append(TDict.empty(f64, f32arr))
    for c in prange(nch):
        # v is made inside the iteration: an array made before a prange loop reaches the loop body
        # without its owner (NRT MemInfo), so typed.Dict would keep a dangling view of it.
        v = np.array([0.1, 0.2], dtype=np.float32)
        p = parts[np.int64(c)]
        for i in range(c * n // nch, (c + 1) * n // nch):
            p[float(i)] = v
    return parts


@njit
def td_merge_seed(parts):
    out = TDict.empty(f64, f32arr)
    for c in range(len(parts)):
        for k, v in parts[c].items():
            out[k] = v
    return out


# ---- W_seed_shuffled: the seed's keys and values, keys in a shuffled order -------------------------
# numba hashes an integral float like the int (hash(float(i)) == i), so the seed's keys in order
# write typed.Dict's index sequentially; this shows how much of its W_seed rate that order is worth.


def make_seed_keys(n, seed=2024):
    """float(0) ... float(n - 1) in a fixed random order (the key set of W_seed)."""
    keys = np.arange(n, dtype=np.float64)
    np.random.default_rng(seed).shuffle(keys)
    return keys


@njit(parallel=True)
def pd_seed_keys(keys):
    d = PDict.empty(f64, f32arr)
    v = np.array([0.1, 0.2], dtype=np.float32)
    for i in prange(keys.size):
        d[keys[i]] = v
    return d


@njit
def td_seed_keys(keys):
    d = TDict.empty(f64, f32arr)
    v = np.array([0.1, 0.2], dtype=np.float32)
    for i in range(keys.size):
        d[keys[i]] = v
    return d


# ---- checks (untimed; read-only prange, safe for both dictionaries) --------------------------------


@njit(parallel=True)
def check_int(d, keys):
    """Number of keys whose value is not float(index) (0 = every key present and right)."""
    bad = 0
    for i in prange(keys.size):
        if d.get(keys[i], -1.0) != float(i):
            bad += 1
    return bad


@njit(parallel=True)
def check_seed(d, n):
    """Number of i in [0, n) whose d[float(i)] is missing or not [0.1f, 0.2f]."""
    a0 = np.float32(0.1)
    a1 = np.float32(0.2)
    bad = 0
    for i in prange(n):
        k = float(i)
        if k in d:
            a = d[k]
            if a.size != 2 or a[0] != a0 or a[1] != a1:
                bad += 1
        else:
            bad += 1
    return bad
