"""Unique values with the index of their first occurrence, in parallel: d.min(value, index).

python examples/dedup_first_index.py
"""

import numba
import numpy as np
from numba import prange, types

import pardict


@numba.njit(parallel=True)
def first_index(values):
    first = pardict.Dict.empty(types.float64, types.int64)
    for i in prange(values.size):
        first.min(values[i], np.int64(i))  # keeps the smallest index whatever the thread order
    return first


def main(n=500_000):
    rng = np.random.default_rng(1)
    values = rng.integers(0, 50_000, n).astype(np.float64)
    first = first_index(values)
    uniq, idx = np.unique(values, return_index=True)
    assert len(first) == uniq.size
    assert np.array_equal(first.get_many(uniq, default=-1), idx)
    k, v = first.to_arrays()
    order = np.argsort(v)
    dedup = k[order]  # unique values in order of first appearance
    assert np.array_equal(dedup, values[np.sort(idx)])
    print(f"{n:,} values, {uniq.size:,} unique; the first five in order: {dedup[:5]}")


if __name__ == "__main__":
    main()
