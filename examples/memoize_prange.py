"""Memoization inside prange: Collatz stopping times, each thread reusing what any thread already
computed (d.get, then d.insert: the first writer wins, the others agree).

    python examples/memoize_prange.py
"""

import numba
import numpy as np
from numba import prange, types

import pardict


@numba.njit
def steps(n, memo):
    # Walk until a known value (or 1), then record the path's values on the way back.
    path = []
    m = n
    while m != 1:
        known = memo.get(m, -1)
        if known >= 0:
            break
        path.append(m)
        m = m // 2 if m % 2 == 0 else 3 * m + 1
    base = 0 if m == 1 else memo.get(m, -1)
    for j in range(len(path) - 1, -1, -1):
        base += 1
        memo.insert(path[j], base)  # atomic insert-if-absent: a concurrent writer agrees
    return memo.get(n, 0)


@numba.njit(parallel=True)
def all_steps(limit, memo):
    out = np.empty(limit, dtype=np.int64)
    for i in prange(1, limit + 1):
        out[i - 1] = steps(i, memo)
    return out


@numba.njit
def plain_steps(n):
    c = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        c += 1
    return c


def main(limit=200_000):
    memo = pardict.Dict.empty(types.int64, types.int64)
    got = all_steps(limit, memo)
    expect = np.array([plain_steps(i) for i in range(1, limit + 1)])
    assert np.array_equal(got, expect)
    print(
        f"stopping times of 1..{limit:,}: max {got.max()} at {got.argmax() + 1}; "
        f"{len(memo):,} values memoized"
    )


if __name__ == "__main__":
    main()
