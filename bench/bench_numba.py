#!/usr/bin/env python3
"""pardict.Dict vs numba.typed.Dict from numba code; writes bench/results/numba.{json,md}.

One process per (impl, workload, threads, run); the runs are interleaved passes over the whole
matrix so that slow drift of the machine spreads over all cells. Every process is started with
NUMBA_NUM_THREADS = max(8, threads) so that numba.set_num_threads(8) is allowed on a 2-core machine.

  .venv/bin/python bench/bench_numba.py --quick          # smoke run: N = 1M, 1 run per cell
  .venv/bin/python bench/bench_numba.py                  # full: N = 10M, 3 runs per cell, threads 1,2,8
  .venv/bin/python bench/bench_numba.py --n 2000000 --runs 5 --workloads W_insert --threads 2
  .venv/bin/python bench/bench_numba.py --report-only    # redo numba.md from results/numba.json

Workloads (keys: a shuffled 1..N times an odd 64-bit constant; values: float(index)):
  W_insert  N int64 -> float64 inserts into an empty dictionary (no presizing); made inside the call
  W_lookup  N uniformly random lookups (all hits) into a prefilled N-key dictionary (prefill untimed:
            pardict from 2 threads, typed.Dict serially); returns an exact integer checksum
  W_seed    the seed program: float64 -> float32[:], `d[float(i)] = v` for i in prange(N_seed),
            v = np.array([0.1, 0.2], float32) made once before the loop (inside prange v has no
            owner, so pardict stores a copy of it, one per thread, shared by that thread's entries;
            see numba.md, Method)
  W_seed_shuffled  W_seed's keys and values with the keys in a fixed shuffled order, `d[keys[i]] = v`
            (pardict and the serial typed.Dict only): no target, it shows what the seed's key order
            is worth to typed.Dict, which hashes float(i) to i
Impls: see bench/numba_workloads.py; pardict is pardict as installed (its stores inlined into the
jitted loop, pardict.numba.jit), pardict_inline is pardict with PARDICT_JIT_INLINE=1 (its lookups
inlined too; W_lookup only). Checks (untimed, every run): len == N, every key's value
(W_insert, W_seed, W_seed_shuffled), the lookup checksum (W_lookup).

Threading layer (--layer, default omp): every worker runs on one layer, recorded in the results.
Not tbb by default: TBB caps its workers at the CPU count, so on a 2-core machine numba's tbb layer
runs an 8-thread prange on 2 OS threads, and the 8-thread column would not oversubscribe. The
driver probes how many OS threads a prange really uses at each thread count and reports it.

Standard library only in this (driver) process; the workers run in --python (default: the repo's
.venv if it exists, else this interpreter).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import machine  # bench/machine.py: the machine description shared by the drivers

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"

ALL_WORKLOADS = ["W_insert", "W_lookup", "W_seed", "W_seed_shuffled"]
ALL_IMPLS = [
    "pardict",
    "pardict_inline",
    "typed_dict",
    "typed_dict_chunks",
    "typed_dict_prange_readonly",
]
# pardict with its opt-in inlined lookups (PARDICT_JIT_INLINE=1, pardict.numba.jit).
PARDICTS = ("pardict", "pardict_inline")
IMPL_LABEL = {
    "pardict": "pardict.Dict, prange",
    "pardict_inline": "pardict.Dict, prange, PARDICT_JIT_INLINE=1 (lookups inlined too)",
    "typed_dict": "numba.typed.Dict, serial @njit loop",
    "typed_dict_chunks": "numba's advice: typed.Dict per chunk in prange + serial merge",
    "typed_dict_prange_readonly": "numba's advice: read-only prange over a typed.Dict",
}
WORKLOAD_TITLE = {
    "W_insert": "W_insert: {n} int64 → float64 inserts into an empty dict (no presizing)",
    "W_lookup": "W_lookup: {n} random lookups (all hits) in a {n}-key int64 → float64 dict",
    "W_seed": "W_seed: the seed program, `d[float(i)] = v` (float64 → float32[:]) for i in range({n})",
    "W_seed_shuffled": "W_seed_shuffled: W_seed's {n} keys in a shuffled order, `d[keys[i]] = v`",
}


def applies(impl: str, workload: str) -> bool:
    if impl == "typed_dict_chunks":
        return workload in ("W_insert", "W_seed")
    if impl == "pardict_inline":  # the stores are inlined by default: only lookups change
        return workload == "W_lookup"
    if workload == "W_seed_shuffled":
        return impl in (*PARDICTS, "typed_dict")
    if impl == "typed_dict_prange_readonly":
        return workload == "W_lookup"
    return True


def impl_threads(impl: str, threads: list[int]) -> list[int]:
    if impl == "typed_dict":
        return [1]  # its only safe use
    if impl == "typed_dict_chunks":
        return [t for t in threads if t > 1] or [t for t in threads]
    return list(threads)


# ================================================================================================
# worker: one configuration, one JSON line on stdout


def timed_fill(impl, pd_fill, td_fill, td_chunks, td_merge, tiny_arg, arg, threads):
    """One fill (W_insert, W_seed, W_seed_shuffled): an untimed warm-up on tiny_arg (compile
    time), then the timed run on arg. Returns (dict, seconds, compile seconds, extra timings)."""
    t0 = time.perf_counter()
    if impl in (*PARDICTS, "typed_dict"):
        fill = pd_fill if impl in PARDICTS else td_fill
        fill(tiny_arg)
        compile_s = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        d = fill(arg)
        return d, time.perf_counter() - t0, compile_s, {}
    if impl == "typed_dict_chunks":
        td_merge(td_chunks(tiny_arg, threads))
        compile_s = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        parts = td_chunks(arg, threads)
        t1 = time.perf_counter()
        d = td_merge(parts)
        t2 = time.perf_counter()
        return d, t2 - t0, compile_s, {"fill_s": round(t1 - t0, 6), "merge_s": round(t2 - t1, 6)}
    raise SystemExit(3)


def worker(impl: str, workload: str, threads: int, n: int, run: int) -> int:
    import resource

    t_imp = time.perf_counter()
    import numba

    sys.path.insert(0, str(HERE))
    import numba_workloads as W

    row = {"impl": impl, "workload": workload, "threads": threads, "n": n, "run": run}
    if threads > numba.config.NUMBA_NUM_THREADS:
        row["check"] = f"FAIL: NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS} < {threads}"
        print(json.dumps(row), flush=True)
        return 1
    row["import_s"] = round(time.perf_counter() - t_imp, 3)

    def set_threads(t):
        numba.set_num_threads(t)

    extra = {}
    tiny = 1000
    check = "ok"
    entries = None

    if workload in ("W_insert", "W_lookup"):
        keys = W.make_keys(n, seed=12345 + 0)
        tiny_keys = W.make_keys(tiny, seed=7)
    fill = None  # kernels (pardict, typed.Dict, chunks, merge), warm-up and timed argument, check
    if workload == "W_insert":
        fill = (
            (W.pd_insert, W.td_insert, W.td_insert_chunks, W.td_merge_int),
            tiny_keys,
            keys,
            lambda d: W.check_int(d, keys),
        )
    elif workload == "W_seed":
        fill = (
            (W.pd_seed, W.td_seed, W.td_seed_chunks, W.td_merge_seed),
            tiny,
            n,
            lambda d: W.check_seed(d, n),
        )
    elif workload == "W_seed_shuffled":
        fill = (
            (W.pd_seed_keys, W.td_seed_keys, None, None),
            W.make_seed_keys(tiny),
            W.make_seed_keys(n),
            lambda d: W.check_seed(d, n),
        )
    if fill is not None:
        kernels, tiny_arg, arg, check_fn = fill
        set_threads(threads)
        d, secs, row["compile_s"], extra = timed_fill(impl, *kernels, tiny_arg, arg, threads)
        entries = len(d)
        set_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        bad = check_fn(d)
        if entries != n:
            check = f"FAIL: len {entries} != {n}"
        elif bad:
            check = f"FAIL: {bad} keys missing or wrong"
        ops = n
    elif workload == "W_lookup":
        q = W.make_queries(n, n)
        expect = int(q.sum())
        tq = W.make_queries(tiny, tiny, seed=3)
        t0 = time.perf_counter()
        if impl in PARDICTS:
            set_threads(min(2, numba.config.NUMBA_NUM_THREADS))
            W.pd_insert(tiny_keys)
            t_pre = time.perf_counter()
            d = W.pd_insert(keys)
            row["prefill_s"] = round(time.perf_counter() - t_pre, 3)
            fn = W.lookup_prange
        elif impl in ("typed_dict", "typed_dict_prange_readonly"):
            W.td_insert(tiny_keys)
            t_pre = time.perf_counter()
            d = W.td_insert(keys)
            row["prefill_s"] = round(time.perf_counter() - t_pre, 3)
            fn = W.lookup_serial if impl == "typed_dict" else W.lookup_prange
        else:
            raise SystemExit(3)
        entries = len(d)
        set_threads(threads)
        c0 = time.perf_counter()
        fn(d, keys, tq)  # compile on a tiny query set (same types)
        row["compile_s"] = round(time.perf_counter() - c0, 3)
        t0 = time.perf_counter()
        s = fn(d, keys, q)
        secs = time.perf_counter() - t0
        if entries != n:
            check = f"FAIL: len {entries} != {n}"
        elif int(s) != expect:
            check = f"FAIL: checksum {int(s)} != {expect}"
        ops = n
    else:
        raise SystemExit(3)

    row.update(
        {
            "ops": ops,
            "seconds": round(secs, 6),
            "mops": round(ops / secs / 1e6, 4),
            "entries": entries,
            "check": check,
        }
    )
    row.update(extra)
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    try:
        row["threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel region ran in this process
        row["threading_layer"] = None
    row["numba_num_threads"] = numba.config.NUMBA_NUM_THREADS
    print(json.dumps(row), flush=True)
    return 0 if check == "ok" else 1


# ================================================================================================
# machine description


def machine_info(python: str) -> dict:
    info = machine.describe(("include", "capi", "python", "bench"))
    code = (
        "import sys, json, numba, numpy, llvmlite\n"
        "d = {'python': sys.version.split()[0], 'numba': numba.__version__, 'numpy': numpy.__version__,"
        " 'llvmlite': llvmlite.__version__}\n"
        "try:\n from importlib.metadata import version; d['tbb'] = version('tbb')\n"
        "except Exception: d['tbb'] = None\n"
        "try:\n import pardict; d['pardict'] = pardict.__version__\n"
        "except Exception as e: d['pardict'] = 'import failed: ' + repr(e)\n"
        "print(json.dumps(d))"
    )
    try:
        info["versions"] = json.loads(machine.sh([python, "-c", code]).splitlines()[-1])
    except Exception:
        info["versions"] = {}
    info["env"] = {k: os.environ[k] for k in sorted(os.environ) if k.startswith("NUMBA_")}
    return info


# ================================================================================================
# driver

# shared with the test suite: prints "LAYER COUNT" for a prange at T threads
_OS_THREADS_PROBE = REPO / "tests" / "python" / "workers" / "os_threads.py"


def probe_os_threads(python: str, layer: str, t: int) -> dict:
    """How many OS threads run a prange of numba.set_num_threads(t) on `layer` (distinct gettid)."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(max(8, t)), NUMBA_THREADING_LAYER=layer)
    try:
        p = subprocess.run(
            [python, str(_OS_THREADS_PROBE), str(t)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        got_layer, k = p.stdout.split()[-2:]
        return {"layer": got_layer, "os_threads": int(k)}
    except Exception as e:  # reported, not fatal: the benchmark itself records the layer it ran on
        return {"layer": None, "os_threads": None, "error": str(e)[:200]}


def run_one(
    python: str, impl: str, w: str, t: int, n: int, run: int, timeout: float, layer: str
) -> dict:
    env = dict(os.environ)
    env["NUMBA_NUM_THREADS"] = str(max(8, t))
    env["NUMBA_THREADING_LAYER"] = layer
    env.pop("PARDICT_JIT_INLINE", None)  # pardict as installed
    if impl == "pardict_inline":
        env["PARDICT_JIT_INLINE"] = "1"
    cmd = [python, str(Path(__file__).resolve()), "--worker", impl, w, str(t), str(n), str(run)]
    t0 = time.monotonic()
    base = {"impl": impl, "workload": w, "threads": t, "n": n, "run": run}
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {
            **base,
            "check": f"FAIL: timeout after {timeout:g} s",
            "wall_s": round(time.monotonic() - t0, 1),
        }
    row = None
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                pass
    if row is None:
        err = (p.stderr.strip().splitlines() or [""])[-1]
        row = {**base, "check": f"FAIL: exit {p.returncode} {err}".strip()}
    elif p.returncode != 0 and row.get("check") == "ok":
        row["check"] = f"FAIL: exit {p.returncode}"
    row["wall_s"] = round(time.monotonic() - t0, 2)
    return row


def fmt(x: float | None) -> str:
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def aggregate(rows: list[dict]) -> dict:
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["impl"], r["workload"], int(r["threads"])), []).append(r)
    out = {}
    for key, rs in cells.items():
        ok = [r for r in rs if r.get("check") == "ok"]
        c = {
            "impl": key[0],
            "workload": key[1],
            "threads": key[2],
            "n": rs[0]["n"],
            "runs": len(ok),
            "failures": len(rs) - len(ok),
        }
        fails = sorted({r.get("check", "?") for r in rs if r.get("check") != "ok"})
        if fails:
            c["failure_messages"] = fails
        if ok:
            m = [r["mops"] for r in ok]
            s = [r["seconds"] for r in ok]
            c.update(
                mops=round(statistics.median(m), 4),
                mops_min=min(m),
                mops_max=max(m),
                seconds=round(statistics.median(s), 6),
                seconds_min=min(s),
                seconds_max=max(s),
            )
            for f in ("fill_s", "merge_s", "peak_rss_mb", "compile_s"):
                v = [r[f] for r in ok if f in r]
                if v:
                    c[f] = round(statistics.median(v), 4)
            c["per_run"] = {int(r["run"]): r["mops"] for r in ok}
        out[key] = c
    return out


def cell_text(c: dict | None, runs: int) -> str:
    if c is None:
        return "–"
    if "mops" not in c:
        return "FAIL"
    s = f"**{fmt(c['mops'])}**"
    if c["runs"] > 1:
        s += f" ({fmt(c['mops_min'])}–{fmt(c['mops_max'])})"
    if c.get("failures"):
        s += f" ({c['failures']} failed)"
    return s


def ratio(cells: dict, a: tuple, b: tuple):
    """(ratio of medians, min per-run ratio, max per-run ratio, runs paired) or None."""
    ca, cb = cells.get(a), cells.get(b)
    if not ca or not cb or "mops" not in ca or "mops" not in cb:
        return None
    pr = [ca["per_run"][k] / cb["per_run"][k] for k in ca["per_run"] if k in cb["per_run"]]
    return ca["mops"] / cb["mops"], (min(pr) if pr else None), (max(pr) if pr else None), len(pr)


SUMMARY = [
    # (label, numerator cell, denominator cell, target or None): issue 22's targets
    (
        "2T inserts: pardict 2T / typed.Dict 1T",
        ("pardict", "W_insert", 2),
        ("typed_dict", "W_insert", 1),
        3.0,
    ),
    (
        "2T lookups: pardict 2T / typed.Dict 1T",
        ("pardict", "W_lookup", 2),
        ("typed_dict", "W_lookup", 1),
        4.0,
    ),
    (
        "2T seed fill: pardict 2T / typed.Dict 1T (range loop)",
        ("pardict", "W_seed", 2),
        ("typed_dict", "W_seed", 1),
        1.5,
    ),
    (
        "1T inserts: pardict 1T / typed.Dict 1T",
        ("pardict", "W_insert", 1),
        ("typed_dict", "W_insert", 1),
        2.0,
    ),
    (
        "1T lookups: pardict 1T / typed.Dict 1T",
        ("pardict", "W_lookup", 1),
        ("typed_dict", "W_lookup", 1),
        2.0,
    ),
    (
        "1T seed fill: pardict 1T / typed.Dict 1T",
        ("pardict", "W_seed", 1),
        ("typed_dict", "W_seed", 1),
        1.0,
    ),
    (
        "8T inserts: pardict 8T / pardict 2T",
        ("pardict", "W_insert", 8),
        ("pardict", "W_insert", 2),
        0.9,
    ),
    (
        "8T lookups: pardict 8T / pardict 2T",
        ("pardict", "W_lookup", 8),
        ("pardict", "W_lookup", 2),
        0.9,
    ),
    (
        "8T seed fill: pardict 8T / pardict 2T",
        ("pardict", "W_seed", 8),
        ("pardict", "W_seed", 2),
        0.9,
    ),
    (
        "2T seed fill, shuffled keys: pardict 2T / typed.Dict 1T",
        ("pardict", "W_seed_shuffled", 2),
        ("typed_dict", "W_seed_shuffled", 1),
        2.0,
    ),
    (
        "typed.Dict 1T seed fill: keys in order / shuffled",
        ("typed_dict", "W_seed", 1),
        ("typed_dict", "W_seed_shuffled", 1),
        None,
    ),
]
# The same ratios for the opt-in inlined path, where it changes pardict's side.
SUMMARY += [
    (label.replace("pardict", "pardict inline", 1), ("pardict_inline", *num[1:]), den, target)
    for label, num, den, target in SUMMARY
    if num[0] == "pardict" and den[0] != "pardict" and applies("pardict_inline", num[1])
]
ADVICE = [
    (
        "2T inserts: pardict / typed.Dict chunks+merge",
        ("pardict", "W_insert", 2),
        ("typed_dict_chunks", "W_insert", 2),
    ),
    (
        "2T lookups: pardict / read-only prange typed.Dict",
        ("pardict", "W_lookup", 2),
        ("typed_dict_prange_readonly", "W_lookup", 2),
    ),
    (
        "2T seed fill: pardict / typed.Dict chunks+merge",
        ("pardict", "W_seed", 2),
        ("typed_dict_chunks", "W_seed", 2),
    ),
    (
        "1T lookups: pardict / read-only prange typed.Dict",
        ("pardict", "W_lookup", 1),
        ("typed_dict_prange_readonly", "W_lookup", 1),
    ),
    (
        "8T inserts: pardict / typed.Dict chunks+merge",
        ("pardict", "W_insert", 8),
        ("typed_dict_chunks", "W_insert", 8),
    ),
    (
        "8T lookups: pardict / read-only prange typed.Dict",
        ("pardict", "W_lookup", 8),
        ("typed_dict_prange_readonly", "W_lookup", 8),
    ),
    (
        "8T seed fill: pardict / typed.Dict chunks+merge",
        ("pardict", "W_seed", 8),
        ("typed_dict_chunks", "W_seed", 8),
    ),
]


def ratio_text(r) -> str:
    if r is None:
        return "–"
    s = f"**{r[0]:.2f}×**"
    if r[3] > 1 and r[1] is not None:
        s += f" ({r[1]:.2f}–{r[2]:.2f})"
    return s


def write_markdown(rows: list[dict], meta: dict, path: Path) -> list[str]:
    cells = aggregate(rows)
    threads = sorted({k[2] for k in cells})
    nproc = int(meta["machine"].get("nproc") or 2)
    p = meta["params"]
    layers = sorted({r.get("threading_layer") for r in rows if r.get("threading_layer")})
    L: list[str] = []
    L.append("# pardict numba benchmark: pardict.Dict vs numba.typed.Dict")
    L.append("")
    L.append(
        f"Generated by `bench/bench_numba.py` on {meta['machine'].get('date', '')}"
        f"{' (**--quick smoke run, not a measurement**)' if p.get('quick') else ''}. "
        f"N = {p['n']:,} for W_insert and W_lookup, N_seed = {p['seed_n']:,} for W_seed and W_seed_shuffled; "
        f"{p['runs']} process(es) per cell, interleaved passes; cells: median Mops/s (min–max over runs). "
        f"numba threading layer: {', '.join(layers) or '?'}; every process has NUMBA_NUM_THREADS=max(8, T) "
        "and calls numba.set_num_threads(T)."
    )
    if p.get("seed_n_note"):
        L.append("")
        L.append(p["seed_n_note"])
    failed = [c for c in cells.values() if c.get("failures")]
    if failed:
        L.append("")
        L.append(
            "**Failed runs:** "
            + "; ".join(
                f"{c['impl']} {c['workload']} T={c['threads']}: {', '.join(c.get('failure_messages', []))}"
                for c in failed
            )
        )
    L.append("")
    L.append("## Summary")
    L.append("")
    L.append(
        "Ratios of median Mops/s from the same invocation; in brackets the range of the per-pass ratios "
        "(run *k* of one cell against run *k* of the other)."
    )
    L.append("")
    L.append("| ratio | value | target | met |")
    L.append("|---|---|---|---|")
    summary_lines = []
    for label, a, b, target in SUMMARY:
        r = ratio(cells, a, b)
        met = "–" if r is None or target is None else ("yes" if r[0] >= target else "**no**")
        tt = f"≥ {target:g}×" if target is not None else "–"
        L.append(f"| {label} | {ratio_text(r)} | {tt} | {met} |")
        summary_lines.append(
            f"{label:58s} {(f'{r[0]:.2f}x') if r else '-':>7s}  target {tt:>6s}  {met}"
        )
    L.append("")
    L.append("Against numba's own advice for parallel use of typed.Dict (same thread count):")
    L.append("")
    L.append("| ratio | value |")
    L.append("|---|---|")
    for label, a, b in ADVICE:
        r = ratio(cells, a, b)
        if r is not None:
            L.append(f"| {label} | {ratio_text(r)} |")
            summary_lines.append(f"{label:58s} {r[0]:6.2f}x")
    L.append("")
    L.append("## Throughput (Mops/s)")
    for w in ALL_WORKLOADS:
        wc = {k: c for k, c in cells.items() if k[1] == w}
        if not wc:
            continue
        nn = p["seed_n"] if w.startswith("W_seed") else p["n"]
        L.append("")
        L.append(f"### {WORKLOAD_TITLE[w].format(n=f'{nn:,}')}")
        L.append("")
        L.append(
            "| impl | "
            + " | ".join(
                f"{t} thread{'s' if t > 1 else ''}" + (" (oversubscribed)" if t > nproc else "")
                for t in threads
            )
            + " |"
        )
        L.append("|---|" + "---|" * len(threads))
        for impl in ALL_IMPLS:
            if not any((impl, w, t) in wc for t in threads):
                continue
            L.append(
                f"| {IMPL_LABEL[impl]} | "
                + " | ".join(cell_text(wc.get((impl, w, t)), p["runs"]) for t in threads)
                + " |"
            )
        ch = [c for k, c in wc.items() if k[0] == "typed_dict_chunks" and "fill_s" in c]
        if ch:
            L.append("")
            L.append(
                "typed.Dict chunks + merge, median seconds: "
                + "; ".join(
                    f"T={c['threads']}: fill {c['fill_s']:.3f} + merge {c['merge_s']:.3f} = {c['seconds']:.3f}"
                    for c in sorted(ch, key=lambda c: c["threads"])
                )
                + "."
            )
    L.append("")
    L.append("## Median seconds and peak RSS")
    L.append("")
    L.append(
        "| workload | impl | threads | seconds (min–max) | peak RSS MB | compile s (untimed) |"
    )
    L.append("|---|---|---|---|---|---|")
    for w in ALL_WORKLOADS:
        for impl in ALL_IMPLS:
            for t in threads:
                c = cells.get((impl, w, t))
                if not c or "seconds" not in c:
                    continue
                L.append(
                    f"| {w} | {impl} | {t} | {c['seconds']:.3f} ({c['seconds_min']:.3f}–{c['seconds_max']:.3f}) "
                    f"| {c.get('peak_rss_mb', '–')} | {c.get('compile_s', '–')} |"
                )
    L.append("")
    L.append("## Method")
    L.append("")
    L.append(
        "- One process per cell and run (`bench_numba.py --worker <impl> <workload> <threads> <N> <run>`), "
        "passes over the whole matrix interleaved. Each process compiles its kernels on a tiny input "
        "(1,000 keys, same argument types) before timing; `time.perf_counter()` is read right around the "
        "jitted call, which makes the dictionary, fills/reads it and returns it (deallocation is untimed)."
    )
    L.append(
        "- Keys: `(permutation(N) + 1) · 0x9E3779B97F4A7C15 mod 2^64` as int64 (distinct, random-looking), "
        "value of key *j* = `float(j)`. W_lookup draws N uniform indices (numpy, fixed seed) and sums "
        "`int64(d[keys[idx]])` (exact, order-independent); the prefill is untimed (pardict from 2 threads, "
        "typed.Dict serially)."
    )
    L.append(
        "- `typed_dict` runs a plain `@njit` range loop on one thread: writing a numba.typed.Dict from prange "
        "corrupts it (see scripts/demo_seed.py). `typed_dict_chunks` is numba's advice for parallel writes: "
        "a typed.List of T typed.Dicts made before a `prange(T)` loop, each iteration filling its own dict "
        "over a contiguous range of indices, then one serial merge into a new typed.Dict (no presizing); "
        "the cell's time is fill + merge (two jitted calls). `typed_dict_prange_readonly` reads a typed.Dict "
        "that nothing writes meanwhile from a prange loop, which is safe."
    )
    L.append(
        "- W_seed: `v` is made before the prange loop, so it reaches the loop body as a view without its "
        "owner (numba passes arrays into the parallel body without their NRT MemInfo). pardict.Dict detects "
        "such an owner-less array and stores a copy of it; each thread makes one copy and shares it among "
        "the entries it stores while the copy still equals `v` (before 7792233: one copy per entry); "
        "typed.Dict would store a dangling view (scripts/demo_seed.py shows it at 1 thread). The serial "
        "typed.Dict loop stores references to the one owned `v`; `typed_dict_chunks` makes one `v` inside "
        "each chunk iteration (owned, shared by that chunk's entries). All store the values [0.1f, 0.2f]."
    )
    L.append(
        "- W_seed_shuffled: W_seed's keys (float(0) … float(N_seed − 1)) in a fixed random order, "
        "from an array made untimed. numba hashes an integral float like the int, so in W_seed's "
        "order the serial typed.Dict writes its hash index in order (it appends its entries in order "
        "whatever the keys); pardict hashes every key to a random group either way. It has no "
        "target: it shows how much of typed.Dict's W_seed rate the seed's key order accounts for."
    )
    L.append(
        "- Checks after every timed call (untimed): `len(d) == N`; W_insert: every key maps to its value "
        "(read-only prange over all keys); W_seed, W_seed_shuffled: every `d[float(i)]` is `[0.1f, 0.2f]`; W_lookup: the "
        "checksum equals the sum of the drawn indices. A failed check marks the cell."
    )
    L.append(
        f"- With more threads than CPUs ({nproc} here) the 8-thread column measures oversubscription, not scaling."
    )
    ost = p.get("os_threads") or {}
    if ost:
        L.append(
            "- OS threads that ran a prange at each thread count on this layer (probe: distinct `gettid()` over a "
            "4,000-iteration prange): "
            + ", ".join(f"T={t}: {v.get('os_threads')}" for t, v in ost.items())
            + ". TBB caps its workers at the CPU count: on numba's first-choice tbb layer an 8-thread prange "
            "on 2 cores runs on 2 OS threads (`TBB Warning: The number of workers is currently limited to 1`), "
            "so the benchmark runs on omp unless told otherwise (`--layer`)."
        )
    L.append("")
    L.append("## Machine")
    L.append("")
    m = meta["machine"]
    v = m.get("versions", {})
    L.append(f"- CPU: {m.get('cpu_model')}; nproc {m.get('nproc')}; memory {m.get('memory')}")
    for line in m.get("lscpu", []):
        L.append(f"  - {line}")
    L.append(f"- {m.get('os')}, kernel {m.get('kernel')}; THP: {m.get('thp_enabled')}")
    L.append(
        f"- Python {v.get('python')}, numba {v.get('numba')}, llvmlite {v.get('llvmlite')}, numpy {v.get('numpy')}, "
        f"tbb (pip) {v.get('tbb')}, pardict {v.get('pardict')}; threading layer {', '.join(layers) or '?'}"
    )
    L.append(
        f"- git {m.get('git')}; load average at start {m.get('loadavg_start')}; NUMBA_* env of the driver: "
        f"{m.get('env') or 'none'}"
    )
    L.append("")
    path.write_text("\n".join(L))
    return summary_lines


def print_table(rows: list[dict]) -> None:
    cells = aggregate(rows)
    threads = sorted({k[2] for k in cells})
    print(
        f"\n{'workload':<15s} {'impl':<28s} " + " ".join(f"{'T=' + str(t):>22s}" for t in threads)
    )
    for w in ALL_WORKLOADS:
        for impl in ALL_IMPLS:
            if not any((impl, w, t) in cells for t in threads):
                continue
            cols = []
            for t in threads:
                c = cells.get((impl, w, t))
                if c is None:
                    cols.append(f"{'-':>22s}")
                elif "mops" not in c:
                    cols.append(f"{'FAIL':>22s}")
                else:
                    rng = f" ({fmt(c['mops_min'])}-{fmt(c['mops_max'])})" if c["runs"] > 1 else ""
                    cols.append(f"{fmt(c['mops']) + rng:>22s}")
            print(f"{w:<15s} {impl:<28s} " + " ".join(cols))
    print("(median Mops/s, min-max over runs)")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        impl, w, t, n, run = (
            sys.argv[2],
            sys.argv[3],
            int(sys.argv[4]),
            int(sys.argv[5]),
            int(sys.argv[6]),
        )
        return worker(impl, w, t, n, run)

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: N = 1M (unless --n), 1 run per cell"
    )
    ap.add_argument(
        "--n", type=int, help="keys for W_insert / W_lookup (default 10,000,000; --quick 1,000,000)"
    )
    ap.add_argument("--seed-n", type=int, help="N for W_seed (default: same as --n)")
    ap.add_argument("--runs", type=int, help="processes per cell (default 3; --quick 1)")
    ap.add_argument("--threads", default="1,2,8", help="numba thread counts (default 1,2,8)")
    ap.add_argument("--impls", default=",".join(ALL_IMPLS))
    ap.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    ap.add_argument(
        "--timeout",
        type=float,
        help="seconds per process (default max(300, 60 + 40 s per 1M keys))",
    )
    ap.add_argument(
        "--layer",
        default="omp",
        choices=["omp", "workqueue", "tbb"],
        help="numba threading layer of every worker (default omp; see the module docstring)",
    )
    ap.add_argument("--python", help="interpreter for the workers (default: repo .venv if present)")
    ap.add_argument("--out", default=str(RESULTS), help="output directory (default bench/results)")
    ap.add_argument("--report-only", action="store_true", help="redo numba.md from OUT/numba.json")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, meta_path, md_path = out / "numba.json", out / "numba_meta.json", out / "numba.md"
    if args.report_only:
        rows = json.loads(json_path.read_text())
        meta = json.loads(meta_path.read_text())
        print_table(rows)
        for line in write_markdown(rows, meta, md_path):
            print(line)
        print(f"\nwrote {md_path}")
        return 0

    n = args.n or (1_000_000 if args.quick else 10_000_000)
    seed_n = args.seed_n or n
    runs = args.runs or (1 if args.quick else 3)
    threads = [int(x) for x in args.threads.split(",") if x]
    impls = [x for x in args.impls.split(",") if x]
    wls = [x for x in args.workloads.split(",") if x]
    for x in impls:
        if x not in ALL_IMPLS:
            sys.exit(f"unknown impl {x}; choose from {ALL_IMPLS}")
    for x in wls:
        if x not in ALL_WORKLOADS:
            sys.exit(f"unknown workload {x}; choose from {ALL_WORKLOADS}")
    python = args.python or (
        str(REPO / ".venv/bin/python") if (REPO / ".venv/bin/python").exists() else sys.executable
    )
    timeout = args.timeout or max(300.0, 60 + 40 * max(n, seed_n) / 1e6)

    configs = [
        (w, impl, t)
        for w in wls
        for impl in impls
        if applies(impl, w)
        for t in impl_threads(impl, threads)
    ]
    meta = {
        "machine": machine_info(python),
        "params": {
            "n": n,
            "seed_n": seed_n,
            "runs": runs,
            "threads": threads,
            "impls": impls,
            "workloads": wls,
            "quick": bool(args.quick),
            "python": python,
            "timeout_s": timeout,
            "layer": args.layer,
            "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        },
    }
    if args.seed_n:
        meta["params"]["seed_n_note"] = f"W_seed uses N_seed = {seed_n:,} (set with --seed-n)."
    elif seed_n == 10_000_000:
        meta["params"]["seed_n_note"] = (
            "W_seed runs at the full N_seed = 10,000,000: measured first at 1M on the 2-core development "
            "machine (busy with other jobs), one W_seed fill took 0.21 s with typed.Dict (serial), 0.28 s with "
            "typed.Dict chunks + merge (2 threads) and 0.78 s with pardict (2 threads), at ≈ 0.3–0.5 GB peak RSS, "
            "so a 10M cell costs seconds and a few GB per process; no need to fall back to 1M."
        )
    meta["params"]["os_threads"] = {
        str(t): probe_os_threads(python, args.layer, t) for t in threads
    }
    print(
        "bench_numba: OS threads per prange: "
        + ", ".join(f"T={t} -> {v['os_threads']}" for t, v in meta["params"]["os_threads"].items()),
        flush=True,
    )
    total = len(configs) * runs
    print(
        f"bench_numba: {len(configs)} cells x {runs} run(s) = {total} processes; N = {n:,}, N_seed = {seed_n:,}; "
        f"python {python}",
        flush=True,
    )
    rows: list[dict] = []
    k = 0
    t_start = time.monotonic()
    for run in range(runs):
        for w, impl, t in configs:
            k += 1
            nn = seed_n if w.startswith("W_seed") else n
            r = run_one(python, impl, w, t, nn, run, timeout, args.layer)
            rows.append(r)
            el = time.monotonic() - t_start
            if r.get("check") == "ok":
                msg = f"{r['seconds']:8.3f} s {r['mops']:8.2f} Mops  ok"
                if "fill_s" in r:
                    msg += f"  (fill {r['fill_s']:.3f} + merge {r['merge_s']:.3f})"
            else:
                msg = r.get("check", "?")
            print(
                f"[{k:3d}/{total} {el:6.0f}s] run {run + 1} {w:15s} {impl:27s} T={t:<2d} {msg}",
                flush=True,
            )
            json_path.write_text(json.dumps(rows, indent=1))  # keep partial results
    meta["machine"]["loadavg_end"] = machine.read("/proc/loadavg")
    meta["machine"]["wall_s"] = round(time.monotonic() - t_start, 1)
    meta["cells"] = [
        {k2: v2 for k2, v2 in c.items() if k2 != "per_run"} for c in aggregate(rows).values()
    ]
    json_path.write_text(json.dumps(rows, indent=1))
    meta_path.write_text(json.dumps(meta, indent=1))
    print_table(rows)
    print()
    for line in write_markdown(rows, meta, md_path):
        print(line)
    print(f"\nwrote {json_path}, {meta_path}, {md_path}")
    return 0 if all(r.get("check") == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
