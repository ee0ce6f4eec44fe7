"""prange stress kernels on pardict.Dict with exact oracle checks.

Run as a subprocess: NUMBA_NUM_THREADS, NUMBA_THREADING_LAYER (and NUMBA_NRT_STATS=1 for the
allocation balance checks) must be in the environment before numba is imported.
Usage: stress_worker.py [REPS] [KERNEL ...]. Prints one JSON line (prefixed "RESULT ") and exits 0
only when every check passed.

Each kernel records numba.get_thread_id() per iteration so that the summary shows how many threads
actually ran iterations (a test that never ran two threads at once would prove nothing).
"""

import gc
import json
import os
import sys
import time
import traceback
import warnings

import numba
import numpy as np
from numba.core import types
from numba.core.errors import NumbaTypeSafetyWarning
from numba.core.runtime import rtsys

import pardict

warnings.filterwarnings("ignore", category=NumbaTypeSafetyWarning)

I64 = types.int64
ARR = types.float64[:]


def _threads_used(tids):
    return int(np.unique(tids).size)


# ---- (a) disjoint keys --------------------------------------------------------------------------


@numba.njit(parallel=True)
def k_disjoint(d, n, tids):
    for i in numba.prange(n):
        d[i] = 3 * i + 1
        tids[i] = numba.get_thread_id()


@numba.njit
def check_disjoint(d, n):
    bad = 0
    for i in range(n):
        if i not in d or d[i] != 3 * i + 1:
            bad += 1
    return bad


def run_disjoint(fail, n):
    tids = np.zeros(n, np.int64)
    d = pardict.Dict.empty(I64, I64)  # no presizing: the table grows under contention
    k_disjoint(d, n, tids)
    if len(d) != n:
        fail(f"len {len(d)} != {n}")
    bad = check_disjoint(d, n)
    if bad:
        fail(f"{bad} keys missing or wrong")
    return tids


# ---- (b) overlapping keys -----------------------------------------------------------------------


@numba.njit(parallel=True)
def k_overlap(d, n, m, tids):
    for i in numba.prange(n):
        d[i % m] = i
        tids[i] = numba.get_thread_id()


@numba.njit
def check_overlap(d, n, m):
    """Each key k holds the value of some writer of k: v % m == k and 0 <= v < n."""
    bad = 0
    for k in range(m):
        if k not in d:
            bad += 1
            continue
        v = d[k]
        if v < 0 or v >= n or v % m != k:
            bad += 1
    return bad


def run_overlap(fail, n):
    tids = np.zeros(n, np.int64)
    for m in (1, 7, 1000):
        d = pardict.Dict.empty(I64, I64)
        k_overlap(d, n, m, tids)
        if len(d) != m:
            fail(f"m={m}: len {len(d)} != {m}")
        bad = check_overlap(d, n, m)
        if bad:
            fail(f"m={m}: {bad} keys missing or holding a value no writer wrote")
    return tids


# ---- (c) hot keys: insert / setdefault ----------------------------------------------------------


@numba.njit(parallel=True)
def k_hot_insert(d, n, m, flags, tids):
    for i in numba.prange(n):
        if d.insert(i % m, i):
            flags[i] = 1
        tids[i] = numba.get_thread_id()


@numba.njit(parallel=True)
def k_hot_setdefault(d, n, m, got, tids):
    for i in numba.prange(n):
        got[i] = d.setdefault(i % m, i)
        tids[i] = numba.get_thread_id()


@numba.njit
def check_hot_insert(d, n, m, flags):
    """Per key: exactly one insert succeeded, and the key holds that inserter's value."""
    wins = np.zeros(m, np.int64)
    winner = np.full(m, -1, np.int64)
    for i in range(n):
        if flags[i]:
            wins[i % m] += 1
            winner[i % m] = i
    bad = 0
    for k in range(m):
        if wins[k] != 1 or k not in d or d[k] != winner[k]:
            bad += 1
    return bad


@numba.njit
def check_hot_setdefault(d, n, m, got):
    """Every caller got the one stored value of its key, which some caller of that key offered."""
    bad = 0
    for i in range(n):
        k = i % m
        if k not in d:
            bad += 1
            continue
        v = d[k]
        if got[i] != v or v % m != k or v < 0 or v >= n:
            bad += 1
    return bad


def run_hot(fail, n):
    tids = np.zeros(n, np.int64)
    for m in (1, 16, 5000):
        flags = np.zeros(n, np.uint8)
        d = pardict.Dict.empty(I64, I64)
        k_hot_insert(d, n, m, flags, tids)
        if int(flags.sum()) != m:
            fail(f"insert m={m}: {int(flags.sum())} inserts succeeded, want {m}")
        if len(d) != m:
            fail(f"insert m={m}: len {len(d)} != {m}")
        bad = check_hot_insert(d, n, m, flags)
        if bad:
            fail(f"insert m={m}: {bad} keys without exactly one winning insert")
        got = np.full(n, -1, np.int64)
        d = pardict.Dict.empty(I64, I64)
        k_hot_setdefault(d, n, m, got, tids)
        if len(d) != m:
            fail(f"setdefault m={m}: len {len(d)} != {m}")
        bad = check_hot_setdefault(d, n, m, got)
        if bad:
            fail(f"setdefault m={m}: {bad} callers saw a value other than the stored one")
    return tids


# ---- (d) insert / pop churn ---------------------------------------------------------------------


@numba.njit(parallel=True)
def k_churn_own(d, n, ok, tids):
    """Key i is only touched by iteration i: insert, read back, pop."""
    for i in numba.prange(n):
        d[i] = 7 * i
        a = d[i] == 7 * i
        v = d.pop(i)
        ok[i] = a and v == 7 * i and (i not in d)
        tids[i] = numba.get_thread_id()


@numba.njit(parallel=True)
def k_churn_shared(d, n, m, won, ok, tids):
    """Keys i % m are shared. Only the thread whose insert succeeded pops, so while it holds the
    key nobody else can replace or remove it: the pop must return exactly what it inserted."""
    for i in numba.prange(n):
        k = i % m
        if d.insert(k, i):
            won[i] = 1
            v = d.pop(k, -1)
            ok[i] = v == i
        else:
            ok[i] = True
        tids[i] = numba.get_thread_id()


@numba.njit(parallel=True)
def k_churn_arrays(d, n, ok, tids):
    for i in numba.prange(n):
        d[i] = np.full(3, float(i))
        v = d.pop(i)
        ok[i] = v.shape[0] == 3 and v[0] == float(i) and v[2] == float(i)
        tids[i] = numba.get_thread_id()


def run_churn(fail, n):
    tids = np.zeros(n, np.int64)
    ok = np.zeros(n, np.bool_)
    d = pardict.Dict.empty(I64, I64)
    k_churn_own(d, n, ok, tids)
    if not ok.all():
        fail(f"own keys: {int((~ok).sum())} iterations popped a wrong value / key survived pop")
    if len(d) != 0:
        fail(f"own keys: final len {len(d)} != 0")
    for m in (1, 8, 512):
        ok[:] = False
        won = np.zeros(n, np.uint8)
        d = pardict.Dict.empty(I64, I64)
        k_churn_shared(d, n, m, won, ok, tids)
        if not ok.all():
            fail(f"shared m={m}: {int((~ok).sum())} winners popped a value they did not insert")
        if len(d) != 0:
            fail(f"shared m={m}: final len {len(d)} != 0")
        if int(won.sum()) < m:
            fail(
                f"shared m={m}: only {int(won.sum())} inserts succeeded (every key is free at "
                f"least once)"
            )
    ok[:] = False
    d = pardict.Dict.empty(I64, ARR)
    k_churn_arrays(d, n, ok, tids)
    if not ok.all():
        fail(f"arrays: {int((~ok).sum())} pops returned a wrong array")
    if len(d) != 0:
        fail(f"arrays: final len {len(d)} != 0")
    return tids


# ---- (e) readers vs writers (growth during reads) ------------------------------------------------


@numba.njit(parallel=True)
def k_read_write(d, p, n, miss, tids):
    for i in numba.prange(n):
        if i % 2 == 0:
            d[p + i] = -i  # new key: grows the table while others read
        else:
            k = (i * 7919) % p
            if k not in d:
                miss[i] = 1
            elif d.get(k, -1) != 2 * k:
                miss[i] = 2
            elif d[k] != 2 * k:
                miss[i] = 3
        tids[i] = numba.get_thread_id()


@numba.njit
def prepopulate(d, p):
    for k in range(p):
        d[k] = 2 * k


@numba.njit
def check_read_write(d, p, n):
    bad = 0
    for k in range(p):
        if d.get(k, -1) != 2 * k:
            bad += 1
    for i in range(0, n, 2):
        if d.get(p + i, 1) != -i:
            bad += 1
    return bad


def run_read_write(fail, n):
    tids = np.zeros(n, np.int64)
    p = 1000
    miss = np.zeros(n, np.uint8)
    d = pardict.Dict.empty(I64, I64)  # small table: grows many times during the loop
    prepopulate(d, p)
    k_read_write(d, p, n, miss, tids)
    if miss.any():
        fail(
            f"{int((miss != 0).sum())} reads of prepopulated keys failed during growth "
            f"(codes {sorted(set(miss[miss != 0].tolist()))})"
        )
    want = p + (n + 1) // 2
    if len(d) != want:
        fail(f"len {len(d)} != {want}")
    bad = check_read_write(d, p, n)
    if bad:
        fail(f"{bad} keys missing or wrong afterwards")
    return tids


# ---- (f) iteration while others insert (and erase) ----------------------------------------------


@numba.njit(parallel=True)
def k_iterate(d, p, n, every, churn, res, tids):
    """Iterations i % every == 0 iterate the dict; the others insert key p + i (and pop it again
    when churn). res[i] = (count, duplicates, invalid keys or values, prepopulated keys missed)."""
    for i in numba.prange(n):
        if i % every == 0:
            seen = np.zeros(p + n, np.uint8)
            count = 0
            dups = 0
            invalid = 0
            for k, v in d.items():
                count += 1
                if k < 0 or k >= p + n:
                    invalid += 1
                    continue
                if seen[k]:
                    dups += 1
                seen[k] = 1
                if (k < p and v != 2 * k) or (k >= p and v != -k):
                    invalid += 1
            missed = 0
            for k in range(p):
                if not seen[k]:
                    missed += 1
            res[i, 0] = count
            res[i, 1] = dups
            res[i, 2] = invalid
            res[i, 3] = missed
        else:
            d[p + i] = -(p + i)
            if churn:
                d.pop(p + i)
        tids[i] = numba.get_thread_id()


def run_iterate(fail, n):
    tids = np.zeros(n, np.int64)
    p = 2000
    every = max(n // 64, 1)
    for churn in (False, True):
        res = np.zeros((n, 4), np.int64)
        d = pardict.Dict.empty(I64, I64)
        prepopulate(d, p)
        k_iterate(d, p, n, every, churn, res, tids)
        it = res[::every]
        # Elements that ever existed: p prepopulated + at most one per inserting iteration.
        ever = p + n - len(it)
        tag = f"churn={churn}"
        if (it[:, 0] > ever).any() or (it[:, 0] < p).any():
            fail(
                f"{tag}: iteration counts out of [{p}, {ever}]: "
                f"{sorted(set(it[:, 0].tolist()))[:5]} ..."
            )
        if it[:, 1].any():
            fail(f"{tag}: {int(it[:, 1].sum())} duplicate keys seen in iterations")
        if it[:, 2].any():
            fail(f"{tag}: {int(it[:, 2].sum())} invalid keys/values seen in iterations")
        if it[:, 3].any():
            fail(f"{tag}: {int(it[:, 3].sum())} prepopulated keys missed by iterations")
        want = p if churn else ever
        if len(d) != want:
            fail(f"{tag}: final len {len(d)} != {want}")
    return tids


# ---- (g) array values replaced under contention; leak check --------------------------------------


@numba.njit(parallel=True)
def k_replace_arrays(d, n, m, tids):
    for i in numba.prange(n):
        d[i % m] = np.full(4, float(i))
        tids[i] = numba.get_thread_id()


@numba.njit
def check_replace_arrays(d, n, m):
    bad = 0
    for k in range(m):
        if k not in d:
            bad += 1
            continue
        a = d[k]
        x = a[0]
        i = int(x)
        if a.shape[0] != 4 or float(i) != x or i % m != k or i < 0 or i >= n:
            bad += 1
            continue
        for j in range(4):
            if a[j] != x:
                bad += 1
                break
    return bad


def _nrt_balance():
    s = rtsys.get_allocation_stats()
    return s.alloc - s.free, s.mi_alloc - s.mi_free


def run_replace_arrays(fail, n):
    tids = np.zeros(n, np.int64)
    # warm up (compiles; numba's own first-call allocations happen here, not in the measurement)
    d = pardict.Dict.empty(I64, ARR)
    k_replace_arrays(d, 10, 3, tids)
    check_replace_arrays(d, 10, 3)
    del d
    gc.collect()
    for m in (1, 4, 64):
        dicts0, refs0 = pardict.live_dicts(), pardict.live_refs()
        nrt0 = _nrt_balance()
        d = pardict.Dict.empty(I64, ARR)
        k_replace_arrays(d, n, m, tids)
        if len(d) != m:
            fail(f"m={m}: len {len(d)} != {m}")
        bad = check_replace_arrays(d, n, m)
        if bad:
            fail(f"m={m}: {bad} keys hold an array no writer wrote (torn or lost)")
        if pardict.live_refs() != refs0 + m:
            fail(f"m={m}: live_refs {pardict.live_refs()} != start {refs0} + {m} held values")
        del d
        gc.collect()
        if pardict.live_dicts() != dicts0 or pardict.live_refs() != refs0:
            fail(
                f"m={m}: leak after drop: live_dicts {pardict.live_dicts()} (start {dicts0}), "
                f"live_refs {pardict.live_refs()} (start {refs0})"
            )
        nrt1 = _nrt_balance()
        if nrt1 != nrt0:
            fail(f"m={m}: NRT allocation balance (allocs-frees, meminfos) {nrt0} -> {nrt1}")
    return tids


# ---- (h) unicode keys from prange (key references) ------------------------------------------------


@numba.njit(parallel=True)
def k_unicode(d, n, m, tids):
    for i in numba.prange(n):
        d[str(i % m)] = i
        tids[i] = numba.get_thread_id()


@numba.njit
def check_unicode(d, n, m):
    bad = 0
    for k in range(m):
        s = str(k)
        if s not in d:
            bad += 1
            continue
        v = d[s]
        if v % m != k or v < 0 or v >= n:
            bad += 1
    return bad


def run_unicode(fail, n):
    tids = np.zeros(n, np.int64)
    refs0 = pardict.live_refs()
    for m in (3, 2000):
        d = pardict.Dict.empty(types.unicode_type, I64)
        k_unicode(d, n, m, tids)
        if len(d) != m:
            fail(f"m={m}: len {len(d)} != {m}")
        bad = check_unicode(d, n, m)
        if bad:
            fail(f"m={m}: {bad} keys missing or wrong")
        del d
        gc.collect()
    if pardict.live_refs() != refs0:
        fail(f"leak: live_refs {pardict.live_refs()} != start {refs0}")
    return tids


KERNELS = {
    "disjoint": (run_disjoint, 200_000),
    "overlap": (run_overlap, 100_000),
    "hot": (run_hot, 100_000),
    "churn": (run_churn, 100_000),
    "read_write": (run_read_write, 200_000),
    "iterate": (run_iterate, 20_000),
    "replace_arrays": (run_replace_arrays, 100_000),
    "unicode": (run_unicode, 50_000),
}


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    names = sys.argv[2:] or list(KERNELS)
    want_layer = os.environ["NUMBA_THREADING_LAYER"]
    want_threads = int(os.environ["NUMBA_NUM_THREADS"])
    failures = []
    summary = {}
    dicts0, refs0 = pardict.live_dicts(), pardict.live_refs()
    for name in names:
        run, n = KERNELS[name]
        t = time.perf_counter()
        used = 0
        for r in range(reps):

            def fail(msg, name=name, r=r):
                failures.append(f"{name} rep {r}: {msg}")

            try:
                tids = run(fail, n)
                used = max(used, _threads_used(tids))
            except Exception:
                failures.append(f"{name} rep {r}: raised\n{traceback.format_exc()}")
            gc.collect()
        summary[name] = {"seconds": round(time.perf_counter() - t, 3), "threads_used": used}
    layer = numba.threading_layer()
    if layer != want_layer:
        failures.append(f"threading layer is {layer!r}, wanted {want_layer!r}")
    if numba.config.NUMBA_NUM_THREADS != want_threads:
        failures.append(f"NUMBA_NUM_THREADS is {numba.config.NUMBA_NUM_THREADS}")
    if max(s["threads_used"] for s in summary.values()) < 2:
        failures.append("no kernel ran its iterations on more than one thread")
    gc.collect()
    if pardict.live_dicts() != dicts0 or pardict.live_refs() != refs0:
        failures.append(
            f"leak at exit: live_dicts {pardict.live_dicts()} (start {dicts0}), "
            f"live_refs {pardict.live_refs()} (start {refs0})"
        )
    result = {
        "ok": not failures,
        "layer": layer,
        "threads": numba.config.NUMBA_NUM_THREADS,
        "kernels": summary,
        "failures": failures[:30],
    }
    print("RESULT " + json.dumps(result), flush=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
