"""Out of memory inside a prange (run by test_concurrency.py on each threading layer).

The address space is capped (RLIMIT_AS) a little above what the process uses, then a prange
inserts far more keys than fit. Whatever numba does with the MemoryError raised in the loop body
(workqueue drops it, tbb and omp turn it into SystemError), no insert may be lost without a
trace: once the limit is lifted, the next interpreter-side operation on the dict raises
MemoryError naming the lost inserts, the one after it works, and the dict holds only keys that
were inserted, each with its value. Prints one "RESULT {json}" line.
"""

import json
import resource
import sys

import numba
import numpy as np
from numba import prange, types

import pardict


@numba.njit(parallel=True)
def fill(d, n):
    for i in prange(n):
        d[i] = i + 1


def main():
    layer_threads = numba.get_num_threads()
    warm = pardict.Dict.empty(types.int64, types.int64)
    fill(warm, 1000)  # compiles and starts the layer's threads before the cap
    d = pardict.Dict.empty(types.int64, types.int64)
    fill(d, 1000)

    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (used + (192 << 20), hard))
    raised = None
    try:
        fill(d, 200_000_000)  # ~3 GB of table: cannot fit
    except Exception as e:  # numba's choice: MemoryError, SystemError, or nothing
        raised = type(e).__name__
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))

    report = None
    try:
        n = len(d)
    except MemoryError as e:
        report = str(e)
        n = len(d)  # reported once: the next call works
    keys, values = d.to_arrays()
    failures = []
    if raised is None and report is None:
        failures.append("inserts were lost without a trace")
    if raised != "MemoryError" and report is None:
        failures.append(f"no MemoryError anywhere (the loop raised {raised})")
    if not 1000 <= n < 200_000_000:
        failures.append(f"len {n}")
    if keys.size != n or not np.array_equal(values, keys + 1):
        failures.append("a stored value is not its key + 1")
    if keys.size and (keys.min() < 0 or keys.max() >= 200_000_000):
        failures.append("a key that was never inserted")
    d[-1] = 0  # usable afterwards
    if d[-1] != 0:
        failures.append("not usable after the failure")
    print(
        "RESULT "
        + json.dumps(
            {
                "ok": not failures,
                "failures": failures,
                "layer": numba.threading_layer(),
                "threads": layer_threads,
                "loop_raised": raised,
                "report": report,
                "len": n,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
