"""Interpreter threads calling the str-key and numeric bulk methods of one pardict.Dict at once,
with exact totals checked against a model.

Run as a subprocess with NUMBA_THREADING_LAYER and NUMBA_NUM_THREADS in the environment: on the
workqueue layer, a bulk call that launched numba parallel kernels from two threads at once would
abort the process ("workqueue threading layer is terminating: Concurrent access").
Prints one JSON line (prefixed "RESULT ") and exits 0 only when every check passed.
"""

import collections
import json
import os
import sys
import threading
import traceback

import numba
import numpy as np
from numba.core import types

import pardict

THREADS = 4
ROUNDS = 3


@numba.njit(parallel=True)
def _start_layer(n):
    a = np.zeros(n)
    for i in numba.prange(n):
        a[i] = i
    return a.sum()


def main():
    _start_layer(100)  # the layer under test is running before the threads start
    failures = []
    rng = np.random.default_rng(5)
    words = np.array([f"w{i}" for i in range(3000)])
    batches = [words[rng.integers(0, words.size, 20_000)] for _ in range(THREADS)]
    counts = pardict.Dict.empty(types.unicode_type, types.int64)
    sums = pardict.Dict.empty(types.unicode_type, types.float64)
    stored = pardict.Dict.empty(types.unicode_type, types.int64)
    nums = pardict.Dict.empty(types.int64, types.int64)
    start = threading.Barrier(THREADS)
    errors = []

    def work(t):
        try:
            start.wait()
            for _ in range(ROUNDS):
                b = batches[t]
                counts.count_many(b, threads=2)
                sums.add_many(b, np.ones(b.size), threads=2)
                stored.set_many(b[:500], np.full(500, t), threads=2)
                nums.add_many(np.arange(b.size) % 997, np.ones(b.size, np.int64), threads=2)
                found = counts.contains_many(b, threads=2)
                if not found.all():
                    errors.append(f"thread {t}: a key counted by this thread is missing")
                counts.get_many(b, threads=2)
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    failures += errors
    model = collections.Counter()
    for b in batches:
        model.update(b.tolist())
    want = {k: v * ROUNDS for k, v in model.items()}
    if counts.to_dict() != want:
        failures.append("count_many totals differ from the model")
    if sums.to_dict() != {k: float(v) for k, v in want.items()}:
        failures.append("add_many totals differ from the model")
    if set(stored.to_dict()) != {w for b in batches for w in b[:500].tolist()}:
        failures.append("set_many keys differ from the model")
    n_rows = sum(b.size for b in batches) * ROUNDS
    if sum(nums.to_dict().values()) != n_rows or len(nums) != 997:
        failures.append("numeric add_many totals differ from the model")
    res = {
        "ok": not failures,
        "failures": failures,
        "layer": numba.threading_layer(),
        "threads": int(os.environ["NUMBA_NUM_THREADS"]),
    }
    print("RESULT " + json.dumps(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
