"""How many OS threads a numba prange really runs on.

Run as a subprocess with NUMBA_NUM_THREADS and NUMBA_THREADING_LAYER in the environment.
Usage: os_threads.py [T] (T defaults to NUMBA_NUM_THREADS). Prints "LAYER COUNT": the layer numba
chose and the number of distinct gettid() values seen by a 4000-iteration prange at T threads.
Used by tests/python/test_concurrency.py and bench/bench_numba.py (numba's tbb layer caps its
workers at the CPU count, so an "8-thread" run may not oversubscribe at all).
"""

import ctypes
import sys

import numba
import numpy as np

gettid = ctypes.CDLL(None).gettid
gettid.restype = ctypes.c_int
gettid.argtypes = []


@numba.njit(parallel=True)
def tids(n):
    out = np.zeros(n, np.int64)
    for i in numba.prange(n):
        s = 0.0
        for j in range(20000):  # long enough that every thread takes a share of the iterations
            s += j * 0.5
        out[i] = gettid() + (0 if s > 0 else 1)
    return out


if __name__ == "__main__":
    numba.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else numba.config.NUMBA_NUM_THREADS)
    tids(16)
    print(numba.threading_layer(), len(set(tids(4000).tolist())))
