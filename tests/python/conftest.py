"""Shared fixtures for the pardict Python tests.

`no_leaks` (opt-in: request it by name or with @pytest.mark.usefixtures("no_leaks")) checks that a
test leaves behind no pardict table, no NRT reference held by a table or iterator, and no NRT
allocation or MemInfo it did not free.

`run_child` runs Python in a fresh process (numba's JIT on) and returns what it printed after
"RESULT ", parsed as JSON.
"""

import gc
import json
import os
import subprocess
import sys

import pytest
from numba.core.runtime import _nrt_python, rtsys

import pardict


def _nrt_stats():
    if not _nrt_python.memsys_stats_enabled():
        _nrt_python.memsys_enable_stats()
    return rtsys.get_allocation_stats()


def _snapshot():
    gc.collect()
    s = _nrt_stats()
    return {
        "live_dicts": pardict.live_dicts(),
        "live_refs": pardict.live_refs(),
        "nrt_alloc-free": s.alloc - s.free,
        "nrt_mi_alloc-mi_free": s.mi_alloc - s.mi_free,
    }


@pytest.fixture
def run_child():
    """run(args, env=..., cwd=...): `python *args` in a fresh process with NUMBA_DISABLE_JIT unset
    and `env` applied to this process's environment (a None value removes the variable); asserts
    it exited with 0 and printed one "RESULT <json>" line, and returns that JSON's value."""

    def run(args, *, env=None, cwd=None, timeout=300):
        e = dict(os.environ)
        e.pop("NUMBA_DISABLE_JIT", None)
        for name, value in (env or {}).items():
            if value is None:
                e.pop(name, None)
            else:
                e[name] = value
        p = subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=e,
            cwd=None if cwd is None else str(cwd),
        )
        assert p.returncode == 0, p.stderr[-3000:]
        (line,) = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
        return json.loads(line[len("RESULT ") :])

    return run


@pytest.fixture
def no_leaks():
    # Stats must be on before the baseline: an allocation counted only on its free side would
    # look like a negative leak.
    _nrt_stats()
    before = _snapshot()
    yield before
    after = _snapshot()
    # Only growth is a leak: a drop means objects of an earlier test (e.g. locals kept alive by the
    # traceback of a failed test) were freed meanwhile.
    diff = {k: after[k] - before[k] for k in before if after[k] > before[k]}
    assert not diff, f"leak check failed (after - before): {diff}; before={before}, after={after}"
