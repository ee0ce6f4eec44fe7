"""Group-by sum of 1M rows: the bulk call (GIL released, C++ threads) and a prange loop with d.add,
both checked against NumPy.

    python examples/group_by_sum.py
"""

import numba
import numpy as np
from numba import prange, types

import pardict


@numba.njit(parallel=True)
def group_sum(keys, values):
    sums = pardict.Dict.empty(types.int64, types.float64)
    for i in prange(keys.size):
        sums.add(keys[i], values[i])
    return sums


def main(n=1_000_000, groups=10_000):
    rng = np.random.default_rng(0)
    keys = rng.integers(0, groups, n)
    values = rng.integers(0, 100, n).astype(np.float64)  # integral: sums are exact in any order

    bulk = pardict.Dict.empty(types.int64, types.float64)
    bulk.add_many(keys, values)
    loop = group_sum(keys, values)

    uniq, inverse = np.unique(keys, return_inverse=True)
    expect = np.bincount(inverse, weights=values)
    assert np.array_equal(bulk.get_many(uniq), expect)
    assert np.array_equal(loop.get_many(uniq), expect)
    print(f"{n:,} rows into {len(bulk):,} groups; group 0 sums to {bulk[int(uniq[0])]:.0f}")


if __name__ == "__main__":
    main()
