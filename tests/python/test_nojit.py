"""NUMBA_DISABLE_JIT=1 (how numba users debug): pardict imports and a typical program runs with
the same results as with the JIT. Run in a subprocess, since numba reads the variable at import."""

import os
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import numba, numpy as np
    from numba import types
    import pardict

    @numba.njit(parallel=True)
    def fill(d, n):
        v = np.array([0.1, 0.2], dtype=np.float32)
        for i in numba.prange(n):
            d[float(i)] = v
        return d

    @numba.njit
    def count(keys):
        d = pardict.Dict.empty(types.int64, types.int64)
        for k in keys:
            d.add(k, 1)
        return d

    @numba.njit
    def double(v):
        return v * 2

    out = {}
    d = fill(pardict.Dict.empty(types.float64, types.float32[:]), 1000)
    out["seed"] = [len(d), float(d[999.0][1])]
    c = count(np.array([1, 2, 1, 3, 1]))
    out["count"] = sorted((int(k), int(v)) for k, v in c.items())
    e = pardict.Dict()
    e[1] = 10
    e.setdefault(2, 5)
    out["insert"] = [e.insert(1, 0), e.insert(3, 7)]
    out["update"] = pardict.update(e, 1, double, 0)
    out["min_max"] = [e.min(3, 1), e.max(2, 9)]
    out["bulk"] = [
        c.add_many(np.array([1, 9]), np.array([10, 1])),
        c.count_many(np.array([9, 9])),
        c.get_many(np.array([1, 4]), -1).tolist(),
        c.contains_many(np.array([3, 4])).tolist(),
    ]
    out["merge"] = [e.merge(c, "add"), sorted(e.items())]
    out["mapping"] = [e.pop(3), e.get(42, -1), 3 in e, len(e.copy()), sorted(e.to_dict())]
    out["empty_dict"] = [bool(pardict.Dict()), pardict.Dict.empty(types.int64, types.int64) == {}]
    print(repr(out))
    """
)


def _run(disable_jit):
    env = dict(os.environ, NUMBA_DISABLE_JIT="1" if disable_jit else "0")
    p = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PROGRAM],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-4000:]
    return p.stdout.strip().splitlines()[-1]


def test_same_results_with_and_without_the_jit():
    with_jit = _run(False)
    without = _run(True)
    assert without == with_jit
    assert "'seed': [1000, " in without
