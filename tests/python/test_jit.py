"""The numba fast path (capi/jit.hpp, pardict/numba/jit.py): lookups and stores compiled to LLVM
bitcode and inlined into jitted loops.

It must be invisible: the same results as the C call for every key and value type it serves,
hits, misses, -0.0 and NaN keys, from prange while the dict grows, after numba's cache reloads a
function in a new process, and with the fast path turned off. The bitcode itself must define no variable (a jitted module would get
its own copy of the engine's state) and call nothing but the C ABI."""

import gc
import math
import os
import re
import subprocess
import sys
import textwrap

import llvmlite.binding as llvm
import numpy as np
import pytest
from numba import njit, prange, types
from numba.typed import List

import pardict
from pardict.numba import jit

# CI builds the package with clang present and runs the suite with the fast path on (stores by
# default; lookups too with PARDICT_JIT_INLINE=1, for this file and test_njit_api.py), and sets
# this: a missing bitcode or a fast path left off is then a failure, not a skip.
REQUIRED = os.environ.get("PARDICT_REQUIRE_JIT") == "1"


def test_the_fast_path_is_on_when_required():
    if REQUIRED:
        assert jit.STORES, "PARDICT_REQUIRE_JIT=1 needs the fast path (not PARDICT_JIT_INLINE=0)"
        assert jit.bitcode_path().is_file()


def _bitcode_or_skip():
    path = jit.bitcode_path()
    if not path.is_file():
        assert not REQUIRED, f"{path} was not built (no clang++ at build time?)"
        pytest.skip("pardict was built without clang++: no fast path")
    return llvm.parse_bitcode(path.read_bytes())


def test_bitcode_defines_no_variable_and_calls_only_the_c_abi():
    mod = _bitcode_or_skip()
    # Constants (a switch's lookup table) are allowed: a copy per module changes nothing.
    variables = [g.name for g in mod.global_variables if " constant " not in str(g)]
    assert variables == []
    calls = {f.name for f in mod.functions if f.is_declaration and not f.name.startswith("llvm.")}
    assert calls == {
        "pardict_get",
        "pardict_contains",
        "pardict_set",
        "pardict_set_array",
        "pardict_set_view",
        "pardict_jit_slot_for",
        "pardict_jit_domain",
        "pardict_jit_thread_ctx",
        "pardict_jit_grow",
        "pardict_combine",
    }
    defined = {f.name for f in mod.functions if not f.is_declaration}
    for op in ("get", "contains", "set", "combine"):
        assert {f"pardict_jit_{op}_k{k}_v{v}" for k in (4, 8) for v in (4, 8, 16)} <= defined
    assert {"pardict_jit_set_array_k4", "pardict_jit_set_array_k8"} <= defined
    assert "personality" not in str(mod)  # no unwinding code: nothing the JIT cannot link


def _loop_function_ir(fn, mangled):
    """The LLVM IR of jitted fn itself (not its CPython wrapper), from its `define` to the closing
    brace; `mangled` is the start of its symbol, e.g. "_ZN8test_jit8_add_all"."""
    (ir,) = fn.inspect_llvm().values()
    start = ir.index("define", ir.index("@" + mangled) - 200)
    return ir[start : ir.index("\n}\n", start)]


@njit
def _lookup_sum(d, keys):
    s = 0.0
    for i in range(keys.size):
        s += d[keys[i]]
    return s


def test_lookups_are_inlined_into_the_loop():
    _bitcode_or_skip()
    if not jit.ENABLED:
        pytest.skip("the fast path is off (PARDICT_JIT_INLINE=1 turns it on)")
    d = pardict.Dict.empty(types.int64, types.float64)
    d[1] = 2.0
    assert _lookup_sum(d, np.array([1, 1], np.int64)) == 4.0
    body = _loop_function_ir(_lookup_sum, "_ZN8test_jit11_lookup_sum")
    assert "@pardict_jit_slot_for" in body  # the inlined lookup's calls made once per loop
    assert "call i32 @pardict_jit_get_" not in body  # no call left to the entry point
    # The lookup's wrapper hands back its reference to d before the inlined body, so numba's
    # pruning removes the pair: the only increfs left are the function's own, one per argument
    # (d and keys), none inside the loop.
    assert body.count("@NRT_incref(") == 2, body


@njit
def _store_all(d, keys):
    for i in range(keys.size):
        d[keys[i]] = 0.5


def test_stores_are_inlined_into_the_loop():
    _bitcode_or_skip()
    if not jit.STORES:
        pytest.skip("the fast path is off (PARDICT_JIT_INLINE=0)")
    d = pardict.Dict.empty(types.int64, types.float64)
    _store_all(d, np.array([1, 2, 1], np.int64))
    assert d.to_dict() == {1: 0.5, 2: 0.5}
    body = _loop_function_ir(_store_all, "_ZN8test_jit10_store_all")
    assert "@pardict_jit_slot_for" in body
    assert "call i32 @pardict_jit_set_" not in body
    assert body.count("@NRT_incref(") == 2, body  # as for lookups: none inside the loop


_FENCE_PROBE = """
import numpy as np
from numba import njit, types

import pardict
from pardict.numba import jit


@njit
def store_all(d, keys):
    for i in range(keys.size):
        d[keys[i]] = 0.5


d = pardict.Dict.empty(types.int64, types.float64)
store_all(d, np.arange(1000, dtype=np.int64))
(ir,) = store_all.inspect_llvm().values()
full = sum(1 for line in ir.splitlines() if line.strip() == "fence seq_cst")
light = ir.count('fence syncscope("singlethread") seq_cst')
print(jit.fences(), full, light, len(d))
"""


@pytest.mark.parametrize("symmetric", [False, True])
def test_the_light_fence_is_compiled_in_as_the_process_needs_it(symmetric):
    """The inlined store's light fences (its epoch announcement, its unlock) are a compiler
    barrier where the epoch scans run membarrier, else full fences (PARDICT_SYMMETRIC_FENCES=1):
    pardict_jit_fences() is passed to the entry point as a constant, so one kind is left."""
    _bitcode_or_skip()
    if not jit.STORES:
        pytest.skip("the fast path is off (PARDICT_JIT_INLINE=0)")
    env = {k: v for k, v in os.environ.items() if k != "PARDICT_SYMMETRIC_FENCES"}
    if symmetric:
        env["PARDICT_SYMMETRIC_FENCES"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", _FENCE_PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    fences, full, light, n = (int(x) for x in out)
    assert n == 1000
    if symmetric or fences == 0:  # the OS refused membarrier, or the process asked for full fences
        assert fences == 0
        assert full >= 2 and light == 0, out
    else:
        assert full == 0 and light >= 2, out


def _c_call_buffers(body, cname):
    """The pointer arguments after the table of every call to cname in an IR body."""
    calls = re.findall(rf"call i32 @{cname}\(([^)]*)\)", body)
    assert calls, f"no call to {cname}"
    return [arg.split()[-1] for args in calls for arg in args.split(", ")[1:]]


def test_c_calls_get_their_own_buffers():
    """The C call an inlined operation falls back to gets copies of the key, value and output
    buffers (capi/jit.hpp, c_buffer), never numba's own: passed to a call, numba's buffers would
    stay in memory on the inlined path too. Every access to a buffer the call gets is volatile
    (the copy in, the result out) and the buffer is an alloca of its own."""
    _bitcode_or_skip()
    if not jit.STORES:
        pytest.skip("the fast path is off (PARDICT_JIT_INLINE=0)")
    d = pardict.Dict.empty(types.int64, types.float64)
    _store_all(d, np.array([1], np.int64))
    bodies = [(_loop_function_ir(_store_all, "_ZN8test_jit10_store_all"), "pardict_set")]
    if jit.ENABLED:
        _lookup_sum(d, np.array([1], np.int64))
        bodies.append((_loop_function_ir(_lookup_sum, "_ZN8test_jit11_lookup_sum"), "pardict_get"))
    for body, cname in bodies:
        for buf in _c_call_buffers(body, cname):
            assert re.search(rf"\n  {re.escape(buf)} = alloca ", body), (cname, buf)
            ref = rf"ptr {re.escape(buf)}(?![\w.])"
            accesses = re.findall(rf"\b(load|store)( volatile)? [^\n]*{ref}", body)
            assert accesses and all(v for _, v in accesses), (cname, buf, accesses)


@njit
def _hits(d, ks):
    out = []
    for i in range(len(ks)):
        out.append(d[ks[i]])
    return out


@njit
def _gets(d, ks, dflt):
    out = []
    for i in range(len(ks)):
        out.append(d.get(ks[i], dflt))
    return out


@njit
def _one(d, k):
    return d[k]


@njit
def _has(d, ks):
    out = []
    for i in range(len(ks)):
        out.append(ks[i] in d)
    return out


@njit
def _puts(d, ks, vs):
    for i in range(len(ks)):
        d[ks[i]] = vs[i]


def _seq(ty, xs):
    """xs as a sequence numba passes with elements of type ty exactly (no cast hides anything)."""
    if isinstance(ty, (types.Integer, types.Float, types.Complex)):
        return np.array(xs, dtype=np.dtype(str(ty)))
    if isinstance(ty, types.Boolean):
        return np.array(xs, dtype=np.bool_)
    return List(xs)


def _check_type_pair(kt, vt, keys, values, absent):
    d = pardict.Dict.empty(kt, vt)
    for k, v in zip(keys, values, strict=True):
        d[k] = v
    model = dict(zip(keys, values, strict=True))

    def seq(xs):  # keys of the dict's own type, so that no cast hides anything
        if isinstance(kt, (types.Integer, types.Float)):
            return np.array(xs, dtype=np.dtype(str(kt)))
        return List(xs)

    got = list(_hits(d, seq(keys)))
    assert got == [model[k] for k in keys]
    dflt = values[0]
    assert list(_gets(d, seq(absent), dflt)) == [dflt] * len(absent)
    assert list(_has(d, seq(keys))) == [True] * len(keys)
    assert list(_has(d, seq(absent))) == [False] * len(absent)
    for k in absent:
        with pytest.raises(KeyError):
            _one(d, k)
    # Stores from jitted code (d[k] = v, inlined too): replacements of every key, then the
    # absent keys inserted; the interpreter must read back exactly the model.
    _puts(d, _seq(kt, keys), _seq(vt, values[::-1]))
    model = dict(zip(keys, values[::-1], strict=True))
    _puts(d, _seq(kt, absent), _seq(vt, [values[0]] * len(absent)))
    model.update(dict.fromkeys(absent, values[0]))
    assert len(d) == len(model)
    assert {k: d[k] for k in model} == model


CASES = [
    (types.int64, types.float64, [0, 1, -5, 2**62, -(2**63)], [0.5, 1.5, -2.0, 3.0, 4.0], [2, 7]),
    (types.int32, types.int32, [0, 1, -5, 2**31 - 1], [9, 8, 7, 6], [2, -2]),
    (types.int32, types.float64, [np.int32(3), np.int32(4)], [0.25, 0.75], [np.int32(5)]),
    (types.uint64, types.int32, [np.uint64(0), np.uint64(2**64 - 1)], [1, 2], [np.uint64(3)]),
    (types.float64, types.float64, [0.0, 1.5, -3.25, math.inf], [1.0, 2.0, 3.0, 4.0], [2.5]),
    (types.float32, types.int64, [0.5, -1.0], [10, 20], [0.25]),
    (types.boolean, types.float64, [True], [1.0], [False]),
    (types.int64, types.complex128, [1, 2], [1 + 2j, -3j], [3]),
    (types.int64, types.UniTuple(types.int64, 2), [5, 6], [(1, 2), (3, 4)], [7]),
]


@pytest.mark.parametrize("kt, vt, keys, values, absent", CASES, ids=lambda x: str(x)[:20])
def test_results_match_a_dict_for_every_served_type(kt, vt, keys, values, absent):
    _check_type_pair(kt, vt, keys, values, absent)


def test_minus_zero_and_nan_keys():
    d = pardict.Dict.empty(types.float64, types.int64)
    d[0.0] = 1
    d[float("nan")] = 2

    @njit
    def look(d):
        return d[-0.0], d[float("nan")], d.get(np.float64(-np.nan), -1)

    assert look(d) == (1, 2, 2)


@njit(parallel=True, nogil=True)
def _prange_lookups(d, keys):
    out = np.empty(keys.size)
    for i in prange(keys.size):
        out[i] = d[keys[i]]
    return out


@njit(nogil=True)
def _inserts(d, keys):
    for i in range(keys.size):
        d[keys[i]] = keys[i] * 0.5


def test_prange_lookups_while_another_thread_grows_the_dict():
    import threading

    n = 400_000
    keys = np.arange(n, dtype=np.int64) * 7919
    old = keys[: n // 4]
    d = pardict.Dict.empty(types.int64, types.float64)
    _inserts(d, old)
    # One prange launch at a time (numba's workqueue layer allows no more); the writer is a
    # nogil loop on a Python thread, migrating shards while the lookups run.
    t = threading.Thread(target=_inserts, args=(d, keys[n // 4 :]))
    t.start()
    rounds = 0
    while t.is_alive() or rounds < 3:
        np.testing.assert_array_equal(_prange_lookups(d, old), old * 0.5)
        rounds += 1
    t.join()
    np.testing.assert_array_equal(_prange_lookups(d, keys), keys * 0.5)


@njit(parallel=True)
def _prange_puts(d, keys, rounds, hot):
    for r in range(rounds):
        for i in prange(keys.size):
            d[keys[i]] = keys[i] * 0.5 + r
            d[i % hot] = float(i % hot)  # every thread replaces a few hot keys


def test_prange_stores_count_exactly_while_the_dict_grows():
    # From empty, so the dict grows under the stores: an inlined insert that exhausts its table's
    # budget starts the growth through pardict_jit_grow.
    n, rounds, hot = 200_000, 3, 4
    keys = np.arange(hot, n + hot, dtype=np.int64) * 7919
    d = pardict.Dict.empty(types.int64, types.float64)
    _prange_puts(d, keys, rounds, hot)
    assert len(d) == n + hot
    np.testing.assert_array_equal(_prange_lookups(d, keys), keys * 0.5 + rounds - 1)
    assert [d[k] for k in range(hot)] == [float(k) for k in range(hot)]


@njit
def _combine_all(d, keys, values, op):
    for i in range(keys.size):
        if op == 0:
            d.add(keys[i], values[i])
        elif op == 1:
            d.min(keys[i], values[i])
        else:
            d.max(keys[i], values[i])


@pytest.mark.parametrize("op", [0, 1, 2], ids=["add", "min", "max"])
@pytest.mark.parametrize(
    "kt, vt",
    [
        (types.int64, types.float64),
        (types.int32, types.int32),
        (types.float64, types.uint8),
        (types.int64, types.float32),
        (types.int32, types.int16),
    ],
    ids=str,
)
def test_combines_match_a_dict_model(kt, vt, op):
    # d.add / d.min / d.max on scalar values run inline (capi/jit.hpp, jit_combine): from empty
    # (the dict grows under them), repeated keys, and NaN values for the floats
    rng = np.random.default_rng(op)
    kdt, vdt = np.dtype(str(kt)), np.dtype(str(vt))
    keys = rng.integers(0, 3000, 40_000).astype(kdt)
    if vdt.kind == "f":
        values = rng.normal(size=keys.size).astype(vdt)
        values[::997] = np.nan
    else:
        values = rng.integers(0, 100, keys.size).astype(vdt)
    d = pardict.Dict.empty(kt, vt)
    _combine_all(d, keys, values, op)
    model = {}
    for k, v in zip(keys.tolist(), values.tolist(), strict=True):
        v = vdt.type(v)
        if k not in model:
            model[k] = v
        elif op == 0:
            with np.errstate(over="ignore"):
                model[k] = vdt.type(model[k] + v)  # integers wrap, as in C
        elif op == 1:
            model[k] = v if v < model[k] else model[k]  # NaN never compares less
        else:
            model[k] = v if v > model[k] else model[k]
    got = d.to_dict()
    assert got.keys() == model.keys()
    for k, v in model.items():
        if vdt.kind == "f":
            np.testing.assert_allclose(got[k], v, rtol=1e-5 if vt == types.float32 else 1e-12)
        else:
            assert got[k] == v, k


@njit
def _add_all(d, keys, values):
    for i in range(keys.size):
        d.add(keys[i], values[i])


@njit(parallel=True)
def _prange_counts(d, keys, rounds):
    for _ in range(rounds):
        for i in prange(keys.size):
            d.add(keys[i], 1)


def test_combines_are_inlined_and_count_exactly_from_prange():
    _bitcode_or_skip()
    if not jit.STORES:
        pytest.skip("the fast path is off (PARDICT_JIT_INLINE=0)")
    d = pardict.Dict.empty(types.int64, types.float64)
    _add_all(d, np.array([1, 2, 1], np.int64), np.array([1.0, 2.0, 3.0]))
    assert d.to_dict() == {1: 4.0, 2: 2.0}
    body = _loop_function_ir(_add_all, "_ZN8test_jit8_add_all")
    assert "@pardict_jit_slot_for" in body
    assert "call i32 @pardict_jit_combine_" not in body
    calls = set(re.findall(r"call [^@]*@([\w.]+)", body))
    assert {c for c in calls if not c.startswith(("llvm.", "NRT_"))} == {
        "pardict_jit_slot_for",  # these three once per loop
        "pardict_jit_domain",
        "pardict_jit_thread_ctx",
        "pardict_combine",  # what the inline path cannot decide
        "pardict_jit_grow",
    }, calls
    # From empty and from two threads: every add lands once, through growth and collisions
    keys = np.arange(50_000, dtype=np.int64) * 7919 % 20_011
    c = pardict.Dict.empty(types.int64, types.int64)
    _prange_counts(c, keys, 3)
    expected = {}
    for k in keys.tolist():
        expected[k] = expected.get(k, 0) + 3
    assert c.to_dict() == expected


def test_stores_during_iteration_still_raise():
    # The inlined store declines while an iterator is alive, so the C call notes the change.
    @njit
    def insert_while_iterating(d):
        for k in d.keys():
            d[k + 1000] = 1.0

    d = pardict.Dict.empty(types.int64, types.float64)
    for k in range(10):
        d[k] = float(k)
    with pytest.raises(RuntimeError, match="dictionary changed size during iteration"):
        insert_while_iterating(d)


# ---- arrays stored as one word (capi/jit.hpp, jit_set_array) --------------------------------------


@njit
def _store_arrays(d, v, n):
    for i in range(n):
        d[float(i)] = v


def test_array_stores_are_inlined_into_the_loop():
    _bitcode_or_skip()
    if not jit.STORES:
        pytest.skip("the fast path is off (PARDICT_JIT_INLINE=0)")
    d = pardict.Dict.empty(types.float64, types.float32[:])
    v = np.ones(2, np.float32)
    _store_arrays(d, v, 3)
    assert len(d) == 3 and d[2.0] is v
    body = _loop_function_ir(_store_arrays, "_ZN8test_jit13_store_arrays")
    assert "@pardict_jit_slot_for" in body
    assert "call i32 @pardict_jit_set_array" not in body
    # The store's wrapper passes d and v on as borrowed words (abi.borrowed), so no incref/decref
    # pair is left per store: the function's own increfs of d and v, and the same two on the miss
    # path (which makes the view and calls a jitted function); a pair per store would make 6.
    assert body.count("@NRT_incref(") == 4, body


@njit
def _replace_own(d, n, keys):
    for i in range(n):
        d[float(i % keys)] = np.full(2, float(i), np.float32)


@njit(parallel=True)
def _replace_borrowed(d, n, keys):
    v = np.arange(3, dtype=np.float32)
    for i in prange(n):
        d[float(i % keys)] = v  # v reaches the body without a MemInfo: the thread's copy


def _live_meminfos():
    from numba.core.runtime import _nrt_python, rtsys

    if not _nrt_python.memsys_stats_enabled():
        _nrt_python.memsys_enable_stats()
    st = rtsys.get_allocation_stats()
    return st.mi_alloc - st.mi_free


def test_array_stores_release_what_they_replace():
    # Arrays made in the loop (stored as their own MemInfo): every replaced one is freed.
    keys, n = 10, 5000
    gc.collect()
    d = pardict.Dict.empty(types.float64, types.float32[:])
    _replace_own(d, 100, keys)  # compiled, and the keys in place
    live0, refs0 = _live_meminfos(), pardict.live_refs()
    _replace_own(d, n, keys)
    assert len(d) == keys and pardict.live_refs() == refs0
    assert _live_meminfos() == live0
    assert [d[float(k)][0] for k in range(keys)] == [float(n - keys + k) for k in range(keys)]
    del d
    assert _live_meminfos() == live0 - keys - 1  # and the dict's own MemInfo


def test_array_stores_of_copies_and_views_replace_exactly():
    keys, n = 97, 20_000
    gc.collect()  # the books are the process's: count from what other tests left
    refs0 = pardict.live_refs()
    d = pardict.Dict.empty(types.float64, types.float32[:])
    _replace_borrowed(d, n, keys)
    _replace_borrowed(d, n, keys)
    assert len(d) == keys
    assert all((d[float(k)] == np.arange(3, dtype=np.float32)).all() for k in range(keys))
    # The dict's values plus at most one remembered copy per thread.
    assert keys <= pardict.live_refs() - refs0 <= keys + 64
    d.clear()
    assert pardict.live_refs() == refs0
    # An interpreter array (stored under the thread's view of it), over and over.
    v = np.ones(4, np.float32)
    count = sys.getrefcount(v)
    for _ in range(3):
        _store_arrays(d, v, 50)
    assert len(d) == 50 and all(d[float(k)] is v for k in range(50))
    assert pardict.live_refs() - refs0 == 50 + 1  # the values and the thread's remembered view
    del d
    assert pardict.live_refs() == refs0 and sys.getrefcount(v) == count


DEBUG_CHILD = textwrap.dedent("""
    import pardict
    from numba import njit, types
    d = pardict.Dict.empty(types.int64, types.float64)
    d[3] = 1.5

    @njit
    def look(d, k):
        return d[k] + d.get(k + 1, -1.0) + (1.0 if k in d else 0.0)

    print("RESULT", look(d, 3))
""")


def test_debug_builds_take_the_c_call(tmp_path, run_child):
    # NUMBA_DEBUGINFO=1 marks every jitted function noinline, pardict's wrappers included, and
    # noinline excludes the alwaysinline the fast path puts on them ("Can't have alwaysinline and
    # noinline" before this was handled): those builds must compile and take the C call.
    _bitcode_or_skip()
    env = {"PARDICT_JIT_INLINE": "1", "NUMBA_DEBUGINFO": "1"}
    assert run_child(["-c", DEBUG_CHILD], env=env, cwd=tmp_path) == 1.5


CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numba import njit, types
    import pardict
    from pardict.numba import jit

    @njit(cache=True)
    def look(d, keys):
        s = 0.0
        for i in range(keys.size):
            s += d.get(keys[i], -1.0) + (d[keys[i]] if keys[i] in d else 0.0)
        return s

    d = pardict.Dict.empty(types.int64, types.float64)
    for i in range(1000):
        d[i] = i * 0.25
    keys = np.arange(-10, 1010, dtype=np.int64)
    print("RESULT " + json.dumps({"s": look(d, keys), "hits": sum(look.stats.cache_hits.values()),
                                  "fast": jit.ENABLED, "stores": jit.STORES}))
""")


def _child(run_child, tmp_path, inline):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "jitchild.py").write_text(CHILD)
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PARDICT_JIT_INLINE": inline}
    return run_child([str(tmp_path / "jitchild.py")], env=env, cwd=tmp_path)


def test_cached_functions_and_the_c_path_agree(tmp_path, run_child):
    expect = sum(i * 0.25 for i in range(1000)) * 2 - 20.0
    _bitcode_or_skip()
    first = _child(run_child, tmp_path, "1")
    again = _child(
        run_child, tmp_path, "1"
    )  # loaded from numba's cache: the inlined code, linked by name
    off = _child(run_child, tmp_path / "off", "0")
    default = _child(run_child, tmp_path / "default", None)
    assert first["s"] == again["s"] == off["s"] == default["s"] == expect
    assert first["hits"] == 0 and again["hits"] == 1
    assert first["fast"] is True and off["fast"] is False and default["fast"] is False
    assert first["stores"] is True and off["stores"] is False and default["stores"] is True
