"""First use costs no compilation for int64/float64/bool keys and values: the interpreter's
element operations, iteration, copy, clear and len go to the C ABI directly (_interp.cpp), and
a table gets the NRT MemInfo jitted code needs only when it first crosses into jitted code."""

import json
import os
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import json
    from numba import types
    from numba.core.registry import cpu_target
    from numba.core.runtime import rtsys
    import pardict
    from pardict import _helpers

    d = pardict.Dict.empty(types.int64, types.float64)
    d[1] = 2.0
    d[2] = 3.5
    out = [d[1], len(d), sorted(d.items()), 2 in d, d.get(3, -1.0), d.pop(2)]
    e = d.copy()
    e.clear()
    b = pardict.Dict.empty(types.boolean, types.int64)
    b[True] = 1
    out += [len(e), sorted(b.items()), 7.5 in pardict.Dict.empty(types.float64, types.boolean)]
    compiled = sorted(
        name
        for name, fn in vars(_helpers).items()
        if hasattr(fn, "overloads") and fn.overloads
    )
    print(json.dumps({"out": repr(out), "compiled": compiled, "nrt_started": rtsys._init,
                      "has_meminfo": d._meminfo is not None}))
    """
)


def _run():
    p = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PROGRAM],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_common_types_compile_nothing_in_a_fresh_process():
    res = _run()
    assert res["out"] == repr(
        [2.0, 2, [(1, 2.0), (2, 3.5)], True, -1.0, 3.5, 0, [(True, 1)], False]
    )
    assert res["compiled"] == []  # none of pardict's jitted helpers was compiled or loaded
    assert res["nrt_started"] is False and res["has_meminfo"] is False


STR_PROGRAM = textwrap.dedent(
    """
    import json
    from numba import types
    import pardict
    from pardict import _cache, _helpers

    d = pardict.Dict.empty(types.unicode_type, types.int64)
    d["a"] = 2
    out = [d["a"], len(d), list(d.items())]
    stats = [fn.stats for fn in vars(_helpers).values() if hasattr(fn, "stats") and fn.overloads]
    print(json.dumps({"out": repr(out), "hits": sum(sum(s.cache_hits.values()) for s in stats),
                      "misses": sum(sum(s.cache_misses.values()) for s in stats)}))
    """
)


def _run_str(cache_dir, *args):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    p = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", STR_PROGRAM, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_helpers_load_from_the_cache_in_a_second_process(tmp_path):
    """Other types compile pardict's helpers once; a second process loads them from disk (the
    entries are keyed by the whole package, so another build of pardict compiles afresh)."""
    first = _run_str(tmp_path)
    assert first["misses"] > 0 and first["hits"] == 0
    second = _run_str(tmp_path)
    assert second["out"] == first["out"] == repr([2, 1, [("a", 2)]])
    assert second["misses"] == 0 and second["hits"] == first["misses"]


def test_cache_entries_are_keyed_by_every_source_of_the_package(tmp_path, monkeypatch):
    from pardict import _cache

    pkg = tmp_path / "pardict"
    for src in _cache._PACKAGE.rglob("*.py"):
        dst = pkg / src.relative_to(_cache._PACKAGE)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    monkeypatch.setattr(_cache, "_PACKAGE", pkg)
    _cache.fingerprint.cache_clear()
    try:
        before = _cache.fingerprint()
        bulk = pkg / "numba" / "bulk.py"  # not the helpers' own file
        bulk.write_text(bulk.read_text() + "\n# another build\n")
        _cache.fingerprint.cache_clear()
        assert _cache.fingerprint() != before
    finally:
        _cache.fingerprint.cache_clear()
