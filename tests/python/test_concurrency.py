"""prange concurrency of pardict.Dict under every threading layer and two thread counts.

NUMBA_NUM_THREADS and NUMBA_THREADING_LAYER are read when numba is imported, so every
configuration runs in its own subprocess (tests/python/workers/). A crash, an abort or a hang
(timeout) of the subprocess fails the test, as does any failed check it reports.

PARDICT_SEED_REPS overrides the 30 repetitions of the seed program per size (explicitly only).
"""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKERS = Path(__file__).parent / "workers"
TIMEOUT = 600
LAYERS = ("workqueue", "omp", "tbb")
THREADS = (2, 8)
SEED_REPS = int(os.environ.get("PARDICT_SEED_REPS", "30"))

_PROBE = """
import numba, numpy as np
@numba.njit(parallel=True)
def f(n):
    a = np.zeros(n)
    for i in numba.prange(n):
        a[i] = i
    return a.sum()
assert f(1000) == 499500.0
print(numba.threading_layer())
"""


def _env(layer, threads, **extra):
    env = dict(os.environ)
    for k in ("NUMBA_DISABLE_JIT", "NUMBA_PARALLEL_DIAGNOSTICS"):
        env.pop(k, None)
    env["NUMBA_THREADING_LAYER"] = layer
    env["NUMBA_NUM_THREADS"] = str(threads)
    env.update(extra)
    return env


@functools.cache
def _layer_unavailable(layer):
    """None when `layer` works on this machine, else the reason it does not."""
    if layer == "workqueue":
        return None
    try:
        p = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env=_env(layer, 2),
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return f"threading layer {layer!r}: probe subprocess timed out"
    if p.returncode != 0 or p.stdout.strip().splitlines()[-1:] != [layer]:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        return f"threading layer {layer!r} not available here: {tail}"
    return None


def _run_worker(script, args, layer, threads, **extra):
    reason = _layer_unavailable(layer)
    if reason:
        pytest.skip(reason)
    cmd = [sys.executable, "-W", "ignore", str(WORKERS / script), *map(str, args)]
    try:
        p = subprocess.run(
            cmd, env=_env(layer, threads, **extra), capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"{script} {layer}/{threads} threads hung (> {TIMEOUT} s); "
            f"stdout: {e.stdout!r} stderr: {e.stderr!r}"
        )
    results = [ln[len("RESULT ") :] for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    detail = (
        f"{script} {layer}/{threads} threads: exit {p.returncode}\n"
        f"stdout:\n{p.stdout[-4000:]}\nstderr:\n{p.stderr[-4000:]}"
    )
    assert p.returncode == 0, detail
    assert len(results) == 1, detail
    res = json.loads(results[0])
    assert res["ok"] and not res["failures"], detail
    assert res["layer"] == layer and res["threads"] == threads, detail
    print(json.dumps(res))
    return res


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("layer", LAYERS)
def test_seed_program(layer, threads, record_property):
    """The seed program, SEED_REPS times per size 10**3 ... 10**6: exact length, every key, the
    stored arrays, iteration, no leaked tables or references."""
    res = _run_worker("seed_worker.py", [SEED_REPS], layer, threads)
    sizes = {"1000", "10000", "100000", "1000000"}
    assert set(res["timings"]) == sizes
    assert all(t["reps"] == SEED_REPS for t in res["timings"].values())
    record_property("seed_timings", res["timings"])


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("layer", LAYERS)
def test_stress_kernels(layer, threads, record_property):
    """Disjoint, overlapping and hot keys; insert/pop churn; reads during growth; iteration during
    inserts and erases; array values replaced under contention (no leaks); unicode keys."""
    res = _run_worker("stress_worker.py", [1], layer, threads, NUMBA_NRT_STATS="1")
    assert set(res["kernels"]) == {
        "disjoint",
        "overlap",
        "hot",
        "churn",
        "read_write",
        "iterate",
        "replace_arrays",
        "unicode",
    }
    record_property("kernels", res["kernels"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads with gettid()")
@pytest.mark.parametrize("layer", ("workqueue", "omp"))
def test_eight_threads_are_eight_os_threads(layer):
    """The 8-thread runs above oversubscribe a small machine for real on omp and workqueue: a
    prange there runs on 8 OS threads. (tbb caps its workers at the CPU count; docs/python.md.)"""
    reason = _layer_unavailable(layer)
    if reason:
        pytest.skip(reason)
    p = subprocess.run(
        [sys.executable, str(WORKERS / "os_threads.py")],
        env=_env(layer, 8),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split()[-2:] == [layer, "8"], p.stdout


@pytest.mark.parametrize("layer", LAYERS)
def test_bulk_calls_from_interpreter_threads(layer):
    """Four interpreter threads run str-key and numeric bulk calls on shared dicts at once: exact
    totals, and no abort on workqueue (bulk calls start C++ workers, never numba kernels)."""
    _run_worker("threads_bulk_worker.py", [], layer, 2)


@pytest.mark.parametrize("layer", LAYERS)
def test_out_of_memory_in_a_prange_is_never_silent(layer):
    """A prange that runs out of memory (RLIMIT_AS) while inserting: numba drops (workqueue) or
    disguises (tbb, omp: SystemError) the MemoryError, so the next interpreter-side operation on
    the dict raises MemoryError naming the lost inserts; the dict stays exact and usable."""
    res = _run_worker("oom_worker.py", [], layer, 2)
    assert res["loop_raised"] == "MemoryError" or "failed for lack of memory" in res["report"]
