"""The seed program of pardict (numba.typed.Dict aborts on it), run repeatedly with exact checks.

Run as a subprocess: NUMBA_NUM_THREADS and NUMBA_THREADING_LAYER must be in the environment before
numba is imported. Usage: seed_worker.py REPS [SIZE ...] (sizes default to 10**3 ... 10**6).
Prints one JSON line (prefixed "RESULT ") and exits 0 only when every check passed.
"""

import gc
import json
import os
import sys
import time

import numba
import numpy as np
from numba.core import types

import pardict


@numba.njit(parallel=True)
def fill(d, n):
    v = np.array([0.1, 0.2], dtype=np.float32)
    for i in numba.prange(n):
        d[float(i)] = v
    return d


@numba.njit
def check_lookup(d, n):
    """Serial: every key float(i) present with the value [0.1, 0.2] (float32). Returns the number
    of missing keys and of wrong values."""
    a, b = np.float32(0.1), np.float32(0.2)
    missing = 0
    wrong = 0
    for i in range(n):
        k = float(i)
        if k not in d:
            missing += 1
            continue
        v = d[k]
        if v.shape[0] != 2 or v[0] != a or v[1] != b:
            wrong += 1
    return missing, wrong


@numba.njit
def check_iteration(d, n):
    """Serial: iteration yields exactly the keys 0.0 ... n-1 once each. Returns (count, bad keys,
    duplicates, values not equal to [0.1, 0.2])."""
    seen = np.zeros(n, dtype=np.uint8)
    a, b = np.float32(0.1), np.float32(0.2)
    count = 0
    bad = 0
    dups = 0
    wrong = 0
    for k, v in d.items():
        count += 1
        i = int(k)
        if k != float(i) or i < 0 or i >= n:
            bad += 1
            continue
        if seen[i]:
            dups += 1
        seen[i] = 1
        if v.shape[0] != 2 or v[0] != a or v[1] != b:
            wrong += 1
    return count, bad, dups, wrong


def main():
    reps = int(sys.argv[1])
    sizes = [int(s) for s in sys.argv[2:]] or [10**3, 10**4, 10**5, 10**6]
    want_layer = os.environ["NUMBA_THREADING_LAYER"]
    want_threads = int(os.environ["NUMBA_NUM_THREADS"])
    failures = []
    timings = {}
    dicts0, refs0 = pardict.live_dicts(), pardict.live_refs()

    t0 = time.perf_counter()
    fill(pardict.Dict.empty(types.float64, types.float32[:]), 10)  # compile
    compile_s = time.perf_counter() - t0
    layer = numba.threading_layer()
    if layer != want_layer:
        failures.append(f"threading layer is {layer!r}, wanted {want_layer!r}")
    if numba.config.NUMBA_NUM_THREADS != want_threads:
        failures.append(
            f"NUMBA_NUM_THREADS is {numba.config.NUMBA_NUM_THREADS}, wanted {want_threads}"
        )

    for n in sizes:
        fill_s = 0.0
        t_all = time.perf_counter()
        for r in range(reps):
            t = time.perf_counter()
            d = fill(pardict.Dict.empty(types.float64, types.float32[:]), n)
            fill_s += time.perf_counter() - t
            where = f"n={n} rep={r}"
            if len(d) != n:
                failures.append(f"{where}: len {len(d)} != {n}")
            missing, wrong = check_lookup(d, n)
            if missing or wrong:
                failures.append(f"{where}: {missing} keys missing, {wrong} wrong values")
            if r == 0 or r == reps - 1:
                count, bad, dups, wrongv = check_iteration(d, n)
                if (count, bad, dups, wrongv) != (n, 0, 0, 0):
                    failures.append(
                        f"{where}: iteration count={count} (want {n}) bad={bad} "
                        f"dups={dups} wrong values={wrongv}"
                    )
            del d
            gc.collect()
            if pardict.live_dicts() != dicts0 or pardict.live_refs() != refs0:
                failures.append(
                    f"{where}: leak: live_dicts {pardict.live_dicts()} (start "
                    f"{dicts0}), live_refs {pardict.live_refs()} (start {refs0})"
                )
            if len(failures) > 20:
                break
        timings[str(n)] = {
            "reps": reps,
            "fill_s": round(fill_s, 3),
            "total_s": round(time.perf_counter() - t_all, 3),
        }

    result = {
        "ok": not failures,
        "layer": layer,
        "threads": numba.config.NUMBA_NUM_THREADS,
        "compile_s": round(compile_s, 3),
        "timings": timings,
        "failures": failures[:20],
    }
    print("RESULT " + json.dumps(result), flush=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
