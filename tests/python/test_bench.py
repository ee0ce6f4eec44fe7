"""The benchmark drivers still run: a tiny matrix of each, written to a temporary directory.

No timing is asserted (speed targets live in the benchmarks' own reports). What is checked is
what a broken driver would get wrong: every cell runs in its own process and passes its result
check (exact contents of every filled dict, the lookup checksum), the report and the machine
description are written, and the committed results in bench/results are left alone.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"


def _run(script, out, *args, timeout=600):
    p = subprocess.run(
        [sys.executable, str(BENCH / script), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    return p.stdout


def test_numba_benchmark_tiny_matrix(tmp_path):
    before = (BENCH / "results" / "numba.json").read_bytes()
    _run(
        "bench_numba.py",
        tmp_path,
        "--n",
        "20000",
        "--runs",
        "1",
        "--threads",
        "2",
        "--python",
        sys.executable,
    )
    rows = json.loads((tmp_path / "numba.json").read_text())
    cells = {(r["impl"], r["workload"], r["threads"]) for r in rows}
    assert cells == {
        ("pardict", w, 2) for w in ("W_insert", "W_lookup", "W_seed", "W_seed_shuffled")
    } | {("typed_dict", w, 1) for w in ("W_insert", "W_lookup", "W_seed", "W_seed_shuffled")} | {
        ("pardict_inline", "W_lookup", 2),
        ("typed_dict_chunks", "W_insert", 2),
        ("typed_dict_chunks", "W_seed", 2),
        ("typed_dict_prange_readonly", "W_lookup", 2),
    }
    for r in rows:
        assert r["check"] == "ok", r
        assert r["n"] == 20000 and r["mops"] > 0, r
    meta = json.loads((tmp_path / "numba_meta.json").read_text())
    assert meta["machine"]["versions"]["pardict"]
    assert meta["machine"]["git"]
    assert meta["params"]["os_threads"]["2"]["os_threads"] == 2
    md = (tmp_path / "numba.md").read_text()
    assert "## Summary" in md and "2T inserts: pardict 2T / typed.Dict 1T" in md
    assert "2T lookups: pardict inline 2T / typed.Dict 1T" in md
    assert (BENCH / "results" / "numba.json").read_bytes() == before


def test_seed_breakdown_tiny_run(tmp_path):
    before = (BENCH / "results" / "seed_breakdown.json").read_bytes()
    _run("seed_breakdown.py", tmp_path, "--n", "5000", "--passes", "1")
    data = json.loads((tmp_path / "seed_breakdown.json").read_text())
    cells = {(r["impl"], r["threads"]) for r in data["rows"]}
    impls = ("array", "array_pre", "tuple7", "tuple3", "float")
    assert cells == {("typed_seed", 1)} | {(f"pardict_{i}", t) for i in impls for t in (1, 2)}
    assert all(r["n"] == 5000 and r["seconds"] > 0 for r in data["rows"])
    md = (tmp_path / "seed_breakdown.md").read_text()
    assert "slot 64 → 16 bytes: float / tuple7" in md and "- git:" in md
    assert (BENCH / "results" / "seed_breakdown.json").read_bytes() == before


def test_groupby_benchmark_tiny_matrix(tmp_path):
    pytest.importorskip("pandas")
    pytest.importorskip("polars")
    before = (BENCH / "results" / "groupby.json").read_bytes()
    # The driver exits non-zero when any implementation's result differs from NumPy's.
    _run(
        "bench_groupby.py",
        tmp_path,
        "--rows",
        "20000",
        "--keys",
        "2000",
        "--tokens",
        "20000",
        "--vocab",
        "500",
        "--runs",
        "1",
        "--threads",
        "2",
    )
    res = json.loads((tmp_path / "groupby.json").read_text())
    assert {r["task"] for r in res["rows"]} == {
        "sum_uniform",
        "sum_zipf",
        "word_count",
        "group_uniform",
        "group_zipf",
    }
    assert all(r["seconds"] > 0 for r in res["rows"])
    assert (tmp_path / "groupby.md").exists() and (tmp_path / "groupby.png").exists()
    assert (BENCH / "results" / "groupby.json").read_bytes() == before


def test_dask_benchmark_tiny_run(tmp_path):
    pytest.importorskip("distributed")
    before = (
        (BENCH / "results" / "dask.json").read_bytes()
        if (BENCH / "results" / "dask.json").exists()
        else None
    )
    _run(
        "bench_dask.py",
        tmp_path,
        "--quick",
        "--tasks",
        "sum_uniform",
        "--impls",
        "pardict,dask",
        "--pickle-n",
        "20000",
    )
    doc = json.loads((tmp_path / "dask.json").read_text())
    assert {r["impl"] for r in doc["rows"]} == {"pardict", "dask"}
    for r in doc["rows"]:
        assert r["seconds"] > 0 and r["keys"] > 0, r  # the driver checked every result
    assert doc["pickle"]["size_ratio"] < 1.01 and doc["machine"]["git"]
    assert (tmp_path / "dask.md").exists() and (tmp_path / "dask.png").exists()
    if before is not None:
        assert (BENCH / "results" / "dask.json").read_bytes() == before
