"""@njit(cache=True) functions that create, take and return pardict.Dict work across processes: the
second process loads them from numba's cache (the C ABI symbols resolve by name there too)."""

import textwrap

MODULE = textwrap.dedent("""
    import json
    import numpy as np
    from numba import njit, types
    from pardict import Dict


    @njit(cache=True)
    def make(n):
        d = Dict.empty(types.int64, types.float64)
        for i in range(n):
            d[i] = i * 0.5
        return d


    @njit(cache=True)
    def total(d):
        s = 0.0
        for k, v in d.items():
            s += k * v
        return s


    @njit(cache=True)
    def grow(d, k):
        d[k] = -1.0
        c = d.copy()
        c[k + 1] = 2.0
        return c


    @njit(cache=True)
    def strings_and_arrays(n):
        d = Dict.empty(types.unicode_type, types.float64[:])
        for i in range(n):
            d["k" + str(i) + "é"] = np.full(2, i * 1.0)
        s = 0.0
        for v in d.values():
            s += v.sum()
        return d, s


    @njit(cache=True)
    def bulk(words, keys):
        c = Dict.empty(types.unicode_type, types.int64)
        c.count_many(words)
        f = Dict.from_arrays(keys, keys * 2.0)
        k, v = f.to_arrays()
        return c, k.sum() + v.sum()


    FUNCS = (make, total, grow, strings_and_arrays, bulk)


    def main():
        d = make(100)
        t = total(d)
        c = grow(d, 1000)
        s, ssum = strings_and_arrays(5)
        words, bsum = bulk(np.array(["a", "bé", "a"]), np.arange(10))
        out = {
            "len": len(d),
            "total": t,
            "d_1000": d[1000],
            "c": sorted(c.to_dict().items()),
            "s": sorted((k, v.tolist()) for k, v in s.items()),
            "ssum": ssum,
            "words": sorted(words.items()),
            "bsum": bsum,
            "hits": sum(sum(f.stats.cache_hits.values()) for f in FUNCS),
            "misses": sum(sum(f.stats.cache_misses.values()) for f in FUNCS),
        }
        print("RESULT " + json.dumps(out))
""")


def _run(run_child, tmp_path):
    loader = "import sys; sys.path.insert(0, sys.argv[1]); import cachemod; cachemod.main()"
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    return run_child(["-c", loader, str(tmp_path)], env=env, cwd=tmp_path)


def _cache_files(tmp_path):
    """The cache entries of cachemod's functions (pardict's own helpers cache there too)."""
    root = tmp_path / "cache"
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in root.rglob("cachemod.*")
        if p.suffix in (".nbi", ".nbc")
    }


def test_cache_across_processes(tmp_path, run_child):
    (tmp_path / "cachemod.py").write_text(MODULE)
    expect_c = {i: i * 0.5 for i in range(100)}
    expect_c[1000] = -1.0
    expect_c[1001] = 2.0
    expect = {
        "len": 101,
        "total": sum(i * i * 0.5 for i in range(100)),
        "d_1000": -1.0,
        "c": [list(kv) for kv in sorted(expect_c.items())],
        "s": sorted([f"k{i}é", [i * 1.0, i * 1.0]] for i in range(5)),
        "ssum": sum(2.0 * i for i in range(5)),
        "words": [["a", 2], ["bé", 1]],
        "bsum": 3.0 * 45,
    }

    first = _run(run_child, tmp_path)
    files = _cache_files(tmp_path)
    assert {k: first[k] for k in expect} == expect
    assert first["misses"] == 5 and first["hits"] == 0
    assert sum(f.endswith(".nbi") for f in files) == 5, files
    assert sum(f.endswith(".nbc") for f in files) >= 5, files

    second = _run(run_child, tmp_path)
    assert {k: second[k] for k in expect} == expect
    assert second["hits"] == 5 and second["misses"] == 0
    assert _cache_files(tmp_path) == files  # nothing recompiled or rewritten


BULK_OPS = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numba import types
    import pardict

    out = {}
    for op in sys.argv[1:]:
        d = pardict.Dict.empty(types.int64, types.float64)
        k = np.arange(4, dtype=np.int64)
        getattr(d, op)(k, np.full(4, 10.0))
        getattr(d, op)(k, np.full(4, 3.0))
        out[op] = [d[i] for i in range(4)]
    print("RESULT " + json.dumps(out))
""")


def test_bulk_methods_compiled_in_different_processes_keep_their_op(tmp_path, run_child):
    """numba names a compiled function by name, argument types and a per-process counter, and
    shares one body per name among the libraries it loads from its cache (numba issue 10486).
    set_many and add_many are one closure per op with the same name and argument types: when
    each was first compiled by its own fresh process, the counters agreed, and a third process
    that loaded both ran one body for both (set_many added, or add_many assigned)."""
    (tmp_path / "bulk_ops.py").write_text(BULK_OPS)
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def run(*ops):
        return run_child([str(tmp_path / "bulk_ops.py"), *ops], env=env, cwd=tmp_path)

    expect = {"set_many": [3.0] * 4, "add_many": [13.0] * 4}
    assert run("add_many") == {"add_many": expect["add_many"]}  # compiles and caches add_many
    assert run("set_many") == {"set_many": expect["set_many"]}  # compiles and caches set_many
    assert run("add_many", "set_many") == expect  # both from the cache
    assert run("set_many", "add_many") == expect
