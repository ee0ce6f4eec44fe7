"""Sparse matrix-vector product from COO triplets, accumulating y[row] += a * x[col] in a dict
from prange (only the rows that occur get an entry).

    python examples/sparse_matvec.py
"""

import numba
import numpy as np
from numba import prange, types

import pardict


@numba.njit(parallel=True)
def coo_matvec(rows, cols, vals, x):
    y = pardict.Dict.empty(types.int64, types.float64)
    for i in prange(rows.size):
        y.add(rows[i], vals[i] * x[cols[i]])
    return y


def main(nnz=400_000, n_rows=10**9, n_cols=1000):
    rng = np.random.default_rng(2)
    rows = rng.integers(0, n_rows, nnz) % 20_000 * 50_000  # 20,000 distinct rows of a huge matrix
    cols = rng.integers(0, n_cols, nnz)
    vals = rng.integers(-8, 8, nnz).astype(np.float64)
    x = rng.integers(-4, 4, n_cols).astype(np.float64)  # small integers: exact in any order
    y = coo_matvec(rows, cols, vals, x)

    uniq, inverse = np.unique(rows, return_inverse=True)
    expect = np.zeros(uniq.size)
    np.add.at(expect, inverse, vals * x[cols])
    assert np.array_equal(y.get_many(uniq), expect)
    print(f"{nnz:,} nonzeros into {len(y):,} rows; |y|_1 = {np.abs(expect).sum():.0f}")


if __name__ == "__main__":
    main()
