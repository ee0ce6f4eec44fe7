"""Smoke test of an installed pardict wheel: the seed program and the API's main paths.

Run by scripts/test_wheel.sh in a fresh venv whose PATH has no compiler, and by cibuildwheel
(pyproject.toml, [tool.cibuildwheel] test-command) on every platform the wheel workflow builds.
It imports pardict from wherever it is installed, never from the source tree, and checks that:

  * the seed program (a float64 -> float32[:] dict filled from a prange loop, which aborts with
    numba.typed.Dict) stores all 10**5 keys with the right values, at NUMBA_NUM_THREADS threads;
  * the mapping API, the atomic updates and the bulk calls work in the interpreter and in @njit.

    python tests/wheel/smoke.py [--no-compiler] [--n N]

--no-compiler first checks that no C or C++ compiler is on PATH, so that a pass shows that the
wheel runs without one. Exits 0 and prints "wheel smoke test ok" only when every check passed.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import sys
import time
from pathlib import Path


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def no_compiler_on_path() -> None:
    found = {c: shutil.which(c) for c in ("cc", "gcc", "c++", "g++", "clang", "clang++", "cl")}
    found = {c: p for c, p in found.items() if p}
    check(not found, f"a compiler is on PATH: {found}")
    print(f"no compiler on PATH ({os.environ.get('PATH', '')})")


def seed(n: int) -> None:
    import numba
    import numpy as np
    from numba import types

    import pardict

    @numba.njit(parallel=True)
    def fill(d, n):
        v = np.array([0.1, 0.2], dtype=np.float32)
        for i in numba.prange(n):
            d[float(i)] = v
        return d

    @numba.njit
    def count_wrong(d, n):
        a, b = np.float32(0.1), np.float32(0.2)
        wrong = 0
        for i in range(n):
            k = float(i)
            if k not in d:
                wrong += 1
                continue
            v = d[k]
            if v.shape[0] != 2 or v[0] != a or v[1] != b:
                wrong += 1
        return wrong

    t0 = time.perf_counter()
    d = fill(pardict.Dict.empty(types.float64, types.float32[:]), n)
    check(len(d) == n, f"seed: len(d) = {len(d)}, expected {n}")
    wrong = count_wrong(d, n)
    check(wrong == 0, f"seed: {wrong} of {n} keys missing or wrong")
    check(sorted(d.keys())[-1] == float(n - 1), "seed: iteration misses the last key")
    print(
        f"seed program: {n} keys from prange on {numba.get_num_threads()} threads "
        f"({numba.threading_layer()} layer), every entry checked "
        f"({time.perf_counter() - t0:.1f} s with compilation)"
    )


def api() -> None:
    import numba
    import numpy as np
    from numba import types

    import pardict

    # The mapping API from the interpreter.
    d = pardict.Dict.empty(types.int64, types.float64)
    for i in range(100):
        d[i] = i / 2
    check(len(d) == 100 and d[7] == 3.5 and 7 in d and 100 not in d, "mapping: get/contains")
    check(d.get(1000, -1.0) == -1.0 and d.pop(7) == 3.5 and 7 not in d, "mapping: get/pop")
    check(d.setdefault(7, 9.0) == 9.0 and d.insert(7, 1.0) is False, "mapping: setdefault/insert")
    del d[8]
    check(len(d) == 99 and sorted(d)[:3] == [0, 1, 2], "mapping: del/iteration")
    check(pickle.loads(pickle.dumps(d)).to_dict() == d.to_dict(), "pickling")

    # Inside @njit, string keys, atomic add from prange.
    @numba.njit(parallel=True)
    def count(tokens):
        c = pardict.Dict.empty(types.unicode_type, types.int64)
        for i in numba.prange(tokens.size):
            c.add(tokens[i], 1)
        return c

    c = count(np.array(["a", "b", "a", "c", "a"] * 1000))
    check(c.to_dict() == {"a": 3000, "b": 1000, "c": 1000}, f"njit add: {c.to_dict()}")

    # Bulk calls (C++ worker threads, GIL released).
    g = pardict.Dict.empty(types.int64, types.int64)
    keys = np.arange(100_000, dtype=np.int64) % 1000
    g.add_many(keys, np.ones_like(keys), threads=2)
    got = g.get_many(np.array([0, 999, 5000], dtype=np.int64), default=-1)
    check(got.tolist() == [100, 100, -1], f"bulk: get_many {got.tolist()}")

    # Atomic update with a jitted function, and a merge.
    @numba.njit
    def double(x):
        return 2 * x

    check(pardict.update(g, 0, double, 0) == 200, "update")
    other = pardict.Dict.empty(types.int64, types.int64)
    other[0] = 1
    other[-1] = 1
    check(g.merge(other, "add") == 1 and g[0] == 201 and g[-1] == 1, "merge")

    del d, c, g, other
    print(f"API smoke test: pardict {pardict.__version__}, numba {numba.__version__}, ok")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-compiler", action="store_true", help="fail if a compiler is on PATH")
    ap.add_argument("--n", type=int, default=100_000, help="keys in the seed program")
    args = ap.parse_args()

    if args.no_compiler:
        no_compiler_on_path()
    import pardict

    where = Path(pardict.__file__).resolve().parent
    source_tree = Path(__file__).resolve().parents[2] / "python" / "pardict"
    check(where != source_tree, f"pardict imported from the source tree ({where})")
    print(f"pardict {pardict.__version__} from {where} (Python {sys.version.split()[0]})")
    seed(args.n)
    api()
    print("wheel smoke test ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
