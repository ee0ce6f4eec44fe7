#!/usr/bin/env python3
"""Group-by sum and word count: pardict (bulk add_many, prange + d.add) vs numba typed.Dict, numba's
per-chunk advice, pandas, polars and NumPy; writes bench/results/groupby.{json,md,png}.

  .venv/bin/python bench/bench_groupby.py            # full: 10M rows / 1M keys, 10M tokens
  .venv/bin/python bench/bench_groupby.py --quick    # smoke run: 1M rows / 100k keys, 1M tokens

Tasks (values are integers stored as float64, so every sum is exact in any order and all
implementations must agree bit for bit; each result is checked against NumPy's):
  sum_uniform  10M rows, keys uniform over 1M distinct int64 keys
  sum_zipf     10M rows, keys Zipf(1.0) over 1M distinct int64 keys (rank r has p ~ 1/r)
  word_count   10M string tokens, Zipf(1.0) over a 100k-word vocabulary; count per word
  group_uniform, group_zipf   the rows of each key (the keys of sum_uniform / sum_zipf):
               pardict.group_indices vs pandas `groupby().indices`, polars
               `group_by().agg(pl.col("row"))`, NumPy stable argsort + boundaries and a typed.Dict
               of typed.List loop; every result is checked against NumPy's grouping

`--tasks group_uniform,group_zipf --merge` reruns only those tasks and keeps the other tasks' rows
of the existing groupby.json (the report says which run each table comes from).

Every cell runs `--runs` times (after one untimed warm-up that compiles the numba code) in this
process, in interleaved passes (each pass times every cell of a task once, so ratios can be taken
between runs seconds apart); the table shows the median. numba threads are set per cell with numba.set_num_threads
(NUMBA_NUM_THREADS is raised to 8 before numba is imported); polars uses its own pool (its size
is reported). Input conversion (e.g. building the pandas Series) is outside the timing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "8")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import prange, types  # noqa: E402
from numba.typed import Dict as TypedDict  # noqa: E402
from numba.typed import List as TypedList  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_numba import machine_info  # noqa: E402

import pardict  # noqa: E402

RESULTS = HERE / "results"
I64, F64, U = types.int64, types.float64, types.unicode_type
LIST_I64 = types.ListType(I64)


# ---- data -------------------------------------------------------------------------------------------


def zipf_ranks(n, distinct, rng):
    """n draws of ranks 0..distinct-1 with p(r) ~ 1/(r+1) (Zipf 1.0 over a finite set)."""
    cdf = np.cumsum(1.0 / np.arange(1, distinct + 1))
    cdf /= cdf[-1]
    return np.searchsorted(cdf, rng.random(n), side="right").clip(0, distinct - 1)


def make_sum_data(rows, keys, skew, seed):
    rng = np.random.default_rng(seed)
    ids = rng.choice(2**62, size=keys, replace=False).astype(np.int64)  # arbitrary int64 keys
    ranks = zipf_ranks(rows, keys, rng) if skew else rng.integers(0, keys, rows)
    return ids[ranks], rng.integers(0, 100, rows).astype(np.float64)


def make_tokens(n, vocab, seed):
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = set()
    while len(words) < vocab:
        words.add("".join(rng.choice(letters, rng.integers(3, 11))))
    words = np.array(sorted(words), dtype="<U10")
    rng.shuffle(words)
    return words[zipf_ranks(n, vocab, rng)]


# ---- numba kernels --------------------------------------------------------------------------------


@numba.njit(parallel=True)
def pd_prange_sum(keys, vals):
    d = pardict.Dict.empty(I64, F64)
    for i in prange(keys.size):
        d.add(keys[i], vals[i])
    return d


@numba.njit(parallel=True)
def pd_prange_count(tokens):
    d = pardict.Dict.empty(U, I64)
    for i in prange(tokens.size):
        d.add(tokens[i], 1)
    return d


@numba.njit
def td_sum(keys, vals):
    d = TypedDict.empty(I64, F64)
    for i in range(keys.size):
        k = keys[i]
        d[k] = d.get(k, 0.0) + vals[i]
    return d


@numba.njit
def td_count(tokens):
    d = TypedDict.empty(U, I64)
    for i in range(tokens.size):
        k = str(tokens[i])
        d[k] = d.get(k, 0) + 1
    return d


@numba.njit(parallel=True)
def td_chunks_sum(keys, vals, nch):
    parts = TypedList([TypedDict.empty(I64, F64) for _ in range(nch)])
    n = keys.size
    for c in prange(nch):
        d = parts[np.int64(c)]
        for i in range(c * n // nch, (c + 1) * n // nch):
            k = keys[i]
            d[k] = d.get(k, 0.0) + vals[i]
    out = parts[0]
    for c in range(1, nch):
        for k, v in parts[c].items():
            out[k] = out.get(k, 0.0) + v
    return out


@numba.njit(parallel=True)
def td_chunks_count(tokens, nch):
    parts = TypedList([TypedDict.empty(U, I64) for _ in range(nch)])
    n = tokens.size
    for c in prange(nch):
        d = parts[np.int64(c)]
        for i in range(c * n // nch, (c + 1) * n // nch):
            k = str(tokens[i])
            d[k] = d.get(k, 0) + 1
    out = parts[0]
    for c in range(1, nch):
        for k, v in parts[c].items():
            out[k] = out.get(k, 0) + v
    return out


@numba.njit
def td_group(keys):
    d = TypedDict.empty(I64, LIST_I64)
    for i in range(keys.size):
        k = keys[i]
        rows = d.get(k)
        if rows is None:
            rows = TypedList.empty_list(I64)
            d[k] = rows
        rows.append(i)
    return d


@numba.njit
def typed_lists_to_csr(d):
    ks = np.empty(len(d), np.int64)
    offsets = np.zeros(len(d) + 1, np.int64)
    g = 0
    for k, rows in d.items():
        ks[g] = k
        offsets[g + 1] = offsets[g] + len(rows)
        g += 1
    indices = np.empty(offsets[-1], np.int64)
    g = 0
    for rows in d.values():
        for j in range(len(rows)):
            indices[offsets[g] + j] = rows[j]
        g += 1
    return ks, offsets, indices


@numba.njit
def typed_to_arrays_f(d):
    ks = np.empty(len(d), np.int64)
    vs = np.empty(len(d), np.float64)
    i = 0
    for k, v in d.items():
        ks[i] = k
        vs[i] = v
        i += 1
    return ks, vs


# ---- implementations: each returns (sorted keys, values) for the check ---------------------------


def sorted_pairs(k, v):
    o = np.argsort(k, kind="stable")
    return np.asarray(k)[o], np.asarray(v)[o]


def run_sum(impl, threads, keys, vals, prepared):
    if impl == "pardict_add_many":
        d = pardict.Dict.empty(I64, F64)
        d.add_many(keys, vals, threads=threads)
        return lambda: d.to_arrays()
    if impl == "pardict_prange_add":
        numba.set_num_threads(threads)
        d = pd_prange_sum(keys, vals)
        return lambda: d.to_arrays()
    if impl == "typed_dict":
        d = td_sum(keys, vals)
        return lambda: typed_to_arrays_f(d)
    if impl == "typed_dict_chunks":
        numba.set_num_threads(threads)
        d = td_chunks_sum(keys, vals, threads)
        return lambda: typed_to_arrays_f(d)
    if impl == "pandas":
        s = prepared["pandas"].groupby("k", sort=False)["v"].sum()
        return lambda: (s.index.to_numpy(), s.to_numpy())
    if impl == "polars":
        import polars as pl

        r = prepared["polars"].group_by("k").agg(pl.col("v").sum())
        return lambda: (r["k"].to_numpy(), r["v"].to_numpy())
    if impl == "numpy":
        u, inv = np.unique(keys, return_inverse=True)
        s = np.bincount(inv, weights=vals)
        return lambda: (u, s)
    raise ValueError(impl)


def run_count(impl, threads, tokens, prepared):
    if impl == "pardict_add_many":
        d = pardict.Dict.empty(U, I64)
        d.count_many(tokens, threads=threads)
        return lambda: d.to_arrays()
    if impl == "pardict_prange_add":
        numba.set_num_threads(threads)
        d = pd_prange_count(tokens)
        return lambda: (np.array(list(d.keys())), np.array(list(d.values())))
    if impl == "typed_dict":
        d = td_count(tokens)
        return lambda: (np.array(list(d.keys())), np.array(list(d.values())))
    if impl == "typed_dict_chunks":
        numba.set_num_threads(threads)
        d = td_chunks_count(tokens, threads)
        return lambda: (np.array(list(d.keys())), np.array(list(d.values())))
    if impl == "pandas":
        s = prepared["pandas"].value_counts(sort=False)
        return lambda: (s.index.to_numpy().astype(str), s.to_numpy())
    if impl == "polars":
        r = prepared["polars"].value_counts()
        return lambda: (r[r.columns[0]].to_numpy().astype(str), r["count"].to_numpy())
    if impl == "numpy":
        u, c = np.unique(tokens, return_counts=True)
        return lambda: (u, c)
    raise ValueError(impl)


def csr_by_key(uniques, offsets, indices):
    """A grouping (group keys, CSR offsets, rows) reordered by key: the form every result is
    compared in (the row order inside a group is kept, so it must already be ascending)."""
    uniques, indices = np.asarray(uniques), np.asarray(indices)
    offsets = np.asarray(offsets).astype(np.int64)
    perm = np.argsort(uniques, kind="stable")
    sizes = np.diff(offsets)[perm]
    new_offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    src = np.repeat(offsets[:-1][perm] - new_offsets[:-1], sizes) + np.arange(indices.size)
    return uniques[perm], new_offsets, indices[src]


def numpy_group(keys):
    """NumPy's grouping: a stable argsort, then the boundaries of equal runs."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], sk[1:] != sk[:-1])))
    return sk[starts], np.append(starts, keys.size), order


def run_group(impl, threads, keys, prepared):
    """Groups the rows of keys; returns a function giving the result as csr_by_key's triple."""
    if impl == "pardict_group":
        r = pardict.group_indices(keys, threads=threads)
        return lambda: csr_by_key(*r)
    if impl == "pandas":
        idx = prepared["pandas"].groupby("k", sort=False).indices
        return lambda: csr_by_key(
            np.fromiter(idx.keys(), np.int64, len(idx)),
            np.concatenate(([0], np.cumsum([v.size for v in idx.values()]))),
            np.concatenate(list(idx.values())),
        )
    if impl == "polars":
        import polars as pl

        r = prepared["polars"].group_by("k").agg(pl.col("row"))
        return lambda: csr_by_key(
            r["k"].to_numpy(),
            np.concatenate(([0], np.cumsum(r["row"].list.len().to_numpy()))),
            r["row"].explode().to_numpy(),
        )
    if impl == "numpy":
        r = numpy_group(keys)
        return lambda: r
    if impl == "typed_dict":
        d = td_group(keys)
        return lambda: csr_by_key(*typed_lists_to_csr(d))
    raise ValueError(impl)


IMPL_LABEL = {
    "pardict_add_many": "pardict `d.add_many(keys, values)` / `d.count_many(tokens)` (bulk, GIL released)",
    "pardict_prange_add": "pardict `d.add(k, v)` in a prange loop",
    "typed_dict": "numba typed.Dict, serial `d[k] = d.get(k, 0) + v`",
    "typed_dict_chunks": "numba's advice: typed.Dict per chunk in prange + serial merge",
    "pandas": "pandas `groupby().sum()` / `value_counts()`",
    "polars": "polars `group_by().agg(sum)` / `value_counts()`",
    "numpy": "NumPy `np.unique` + `np.bincount` / `np.unique(return_counts=True)`",
}


GROUP_LABEL = {
    "pardict_group": "pardict `group_indices(keys)` (C++ threads, GIL released)",
    "pandas": "pandas `groupby().indices`",
    "polars": 'polars `group_by().agg(pl.col("row"))`',
    "numpy": "NumPy stable `argsort` + run boundaries",
    "typed_dict": "numba typed.Dict of typed.List, serial `d[k].append(i)`",
}
GROUP_PEERS = ("pandas", "polars", "numpy", "typed_dict")


def label(task, impl):
    return (GROUP_LABEL if task.startswith("group_") else IMPL_LABEL)[impl]


def cells(task, thread_list, polars_threads):
    if task.startswith("group_"):
        out = [("pardict_group", t) for t in thread_list]
        return out + [("typed_dict", 1), ("pandas", 1), ("polars", polars_threads), ("numpy", 1)]
    out = [("pardict_add_many", t) for t in thread_list]
    out += [("pardict_prange_add", t) for t in thread_list]
    out += [("typed_dict", 1)]
    out += [("typed_dict_chunks", t) for t in thread_list if t > 1]
    out += [("pandas", 1), ("polars", polars_threads), ("numpy", 1)]
    return out


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--tokens", type=int, default=10_000_000)
    ap.add_argument("--vocab", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", default="1,2,8")
    ap.add_argument("--tasks", default="sum_uniform,sum_zipf,word_count,group_uniform,group_zipf")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of other tasks from the existing groupby.json in --out",
    )
    ap.add_argument("--out", default=str(RESULTS), help="output directory (default bench/results)")
    ap.add_argument(
        "--report",
        action="store_true",
        help="run nothing: rewrite groupby.md and groupby.png from the groupby.json in --out",
    )
    args = ap.parse_args()
    if args.report:
        doc = json.loads((Path(args.out) / "groupby.json").read_text())
        write_md(doc["rows"], doc["machine"], Path(args.out), doc.get("merged"))
        write_png(doc["rows"], Path(args.out))
        return
    if args.quick:
        args.rows, args.keys, args.tokens, args.vocab, args.runs = (
            1_000_000,
            100_000,
            1_000_000,
            20_000,
            1,
        )
    thread_list = [int(t) for t in args.threads.split(",")]

    try:
        import pandas as pd
        import polars as pl
    except ImportError as e:
        raise SystemExit(
            f"bench_groupby needs pandas and polars ({e}); install them with "
            f"`.venv/bin/pip install pandas polars`"
        ) from None

    polars_threads = pl.thread_pool_size()
    rows_out = []
    for task in args.tasks.split(","):
        if task == "word_count":
            tokens = make_tokens(args.tokens, args.vocab, seed=7)
            prepared = {
                "pandas": pd.Series(tokens.astype(object)),
                "polars": pl.Series("w", tokens),
            }
            ref = run_count("numpy", 1, tokens, prepared)()
            n_rows, n_keys = tokens.size, ref[0].size
            run = functools.partial(run_count, tokens=tokens, prepared=prepared)
        elif task.startswith("group_"):
            keys, _ = make_sum_data(args.rows, args.keys, task == "group_zipf", seed=11)
            prepared = {
                "pandas": pd.DataFrame({"k": keys}),
                "polars": pl.DataFrame({"k": keys, "row": np.arange(keys.size)}),
            }
            ref = numpy_group(keys)
            n_rows, n_keys = keys.size, ref[0].size
            run = functools.partial(run_group, keys=keys, prepared=prepared)
        else:
            keys, vals = make_sum_data(args.rows, args.keys, task == "sum_zipf", seed=11)
            prepared = {
                "pandas": pd.DataFrame({"k": keys, "v": vals}),
                "polars": pl.DataFrame({"k": keys, "v": vals}),
            }
            ref = run_sum("numpy", 1, keys, vals, prepared)()
            n_rows, n_keys = keys.size, ref[0].size
            run = functools.partial(run_sum, keys=keys, vals=vals, prepared=prepared)
        grouping = task.startswith("group_")
        if not grouping:
            ref = sorted_pairs(*ref)
        task_cells = cells(task, thread_list, polars_threads)
        for impl, t in task_cells:
            run(impl, t)  # warm-up: compiles (every timed run below is checked)
        # Passes are interleaved: pass k times every cell once, so the k-th runs of two cells are
        # seconds apart and see the same machine state. (This VM's speed drifts by up to 2x over
        # minutes, mostly for memory-bound 2-thread loops; cell after cell, one cell could get a
        # fast phase and the cell it is compared with a slow one.)
        times = {c: [] for c in task_cells}
        for _ in range(args.runs):
            for impl, t in task_cells:
                t0 = time.perf_counter()
                result = run(impl, t)
                times[impl, t].append(time.perf_counter() - t0)
                got = result() if grouping else sorted_pairs(*result())
                del result
                ok = all(np.array_equal(a, b) for a, b in zip(got, ref, strict=True))
                if not ok:
                    raise SystemExit(f"{task} {impl} T={t}: result differs from NumPy's")
        for impl, t in task_cells:
            med = statistics.median(times[impl, t])
            print(
                f"{task:12s} {impl:20s} T={t}  {med:8.3f} s  (runs: "
                f"{', '.join(f'{x:.3f}' for x in times[impl, t])})  ok",
                flush=True,
            )
            rows_out.append(
                {
                    "impl": impl,
                    "task": task,
                    "threads": t,
                    "rows": int(n_rows),
                    "keys": int(n_keys),
                    "seconds": med,
                    "runs": times[impl, t],
                }
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = machine_info(sys.executable)
    merged = None
    if args.merge and (out / "groupby.json").exists():
        old = json.loads((out / "groupby.json").read_text())
        ran = {r["task"] for r in rows_out}
        kept = [r for r in old["rows"] if r["task"] not in ran]
        if kept:
            earlier = old.get("merged") or {"machine": old["machine"]}
            merged = {
                "tasks": list(dict.fromkeys(r["task"] for r in kept)),
                "machine": earlier["machine"],
            }
            rows_out = kept + rows_out
    import pandas
    import polars

    meta["versions"].update(
        {
            "pandas": pandas.__version__,
            "polars": polars.__version__,
            "polars_threads": polars_threads,
        }
    )
    doc = {"machine": meta, "rows": rows_out}
    if merged:
        doc["merged"] = merged
    (out / "groupby.json").write_text(json.dumps(doc, indent=1))
    write_md(rows_out, meta, out, merged)
    write_png(rows_out, out)
    print(f"wrote {out / 'groupby.json'}, groupby.md, groupby.png")


def targets_table(rows):
    """The issue's targets at 2 threads, as ratios from this run (> 1 means pardict is faster):
    the ratio of the medians, and in brackets the range of the per-pass ratios."""

    def cell(task, impl, threads=None):
        for r in rows:
            if (
                r["task"] == task
                and r["impl"] == impl
                and (threads is None or r["threads"] == threads)
            ):
                return r
        return None

    L = [
        "## Targets (2 threads)",
        "",
        "Ratio of the median times (each from the run of its task, see above); in brackets the "
        "lowest and highest ratio of runs made in the same pass (seconds apart).",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]

    def row(label, num, den, goal):
        if num is None or den is None:
            return
        ratio = den["seconds"] / num["seconds"]
        per_pass = [b / a for a, b in zip(num["runs"], den["runs"], strict=False)]
        L.append(
            f"| {label} | {ratio:.2f}× ({min(per_pass):.2f}–{max(per_pass):.2f}) | "
            f"{'yes' if ratio >= goal else '**no**'} |"
        )

    for task in ("sum_uniform", "sum_zipf"):
        bulk = cell(task, "pardict_add_many", 2)
        row(
            f"{task}: add_many 2T faster than polars (polars s / pardict s > 1)",
            bulk,
            cell(task, "polars"),
            1.0 + 1e-9,
        )
        row(f"{task}: add_many 2T faster than pandas", bulk, cell(task, "pandas"), 1.0 + 1e-9)
        row(f"{task}: add_many 2T ≥ 5× the typed.Dict loop", bulk, cell(task, "typed_dict"), 5.0)
        row(
            f"{task}: prange `d.add` 2T ≥ 2.5× the typed.Dict loop",
            cell(task, "pardict_prange_add", 2),
            cell(task, "typed_dict"),
            2.5,
        )
    bulk = cell("word_count", "pardict_add_many", 2)
    row(
        "word_count: count_many 2T faster than pandas",
        bulk,
        cell("word_count", "pandas"),
        1.0 + 1e-9,
    )
    row(
        "word_count: count_many 2T faster than polars",
        bulk,
        cell("word_count", "polars"),
        1.0 + 1e-9,
    )
    row(
        "word_count: prange `d.add` 2T ≥ 2.5× the typed.Dict loop",
        cell("word_count", "pardict_prange_add", 2),
        cell("word_count", "typed_dict"),
        2.5,
    )
    for task in ("group_uniform", "group_zipf"):
        peers = [r for r in (cell(task, p) for p in GROUP_PEERS) if r is not None]
        if peers:
            best = min(peers, key=lambda r: r["seconds"])
            row(
                f"{task}: group_indices 2T ≥ 1.5× the fastest peer ({best['impl']})",
                cell(task, "pardict_group", 2),
                best,
                1.5,
            )
    L.append("")
    return L if len(L) > 7 else []


def _run_line(meta, rows, tasks):
    runs = sorted({len(r["runs"]) for r in rows if r["task"] in tasks})
    load = meta.get("loadavg_start", "?")
    try:
        busy = float(load.split()[0]) > float(meta.get("nproc"))
    except (AttributeError, IndexError, TypeError, ValueError):
        busy = False
    shared = (
        " (more than the CPUs: other jobs were running, so cells with several threads got fewer "
        "free CPUs than threads)"
        if busy
        else ""
    )
    return (
        f"on {meta.get('date')} ({meta.get('cpu_model')}, {meta.get('nproc')} CPUs, "
        f"{meta.get('memory')}, load average at the start {load}{shared}; "
        f"git {meta.get('git')}); {'/'.join(map(str, runs))} run(s) per cell; versions: "
        f"{json.dumps(meta.get('versions'))}"
    )


def write_md(rows, meta, out: Path, merged=None):
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fresh = [t for t in tasks if not merged or t not in merged["tasks"]]
    L = [
        "# pardict group-by benchmark: group-by sum, word count, grouping rows",
        "",
        "Generated by `bench/bench_groupby.py`. Median of the runs of each cell after an untimed "
        "warm-up, in interleaved passes (each pass times every cell of a task once); every run's "
        "result is checked against NumPy's (values are integers in float64, so sums are exact; "
        "groupings are compared group by group, rows in order).",
        "",
        f"* {', '.join(fresh)}: run {_run_line(meta, rows, fresh)}.",
    ]
    if merged:
        L.append(
            f"* {', '.join(merged['tasks'])}: kept from an earlier run (`--merge`), "
            f"{_run_line(merged['machine'], rows, merged['tasks'])}."
        )
    L.append("")
    L += targets_table(rows)
    for task in tasks:
        rs = [r for r in rows if r["task"] == task]
        L += [
            f"## {task}: {rs[0]['rows']:,} rows, {rs[0]['keys']:,} distinct keys",
            "",
            "| impl | threads | seconds | M rows/s | vs typed.Dict (1T) |",
            "|---|---|---|---|---|",
        ]
        base = next(r["seconds"] for r in rs if r["impl"] == "typed_dict")
        for r in rs:
            L.append(
                f"| {label(task, r['impl'])} | {r['threads']} | {r['seconds']:.3f} | "
                f"{r['rows'] / r['seconds'] / 1e6:.1f} | {base / r['seconds']:.2f}× |"
            )
        L.append("")
    L += [
        "Word count's bulk call is `d.count_many(tokens)`: C++ aggregates the tokens per word "
        "on each thread (hashing the NumPy array's UCS4 code points in place), combines each "
        "distinct word into the dict in one atomic step, and hands the words the dict lacks "
        "back to a jitted loop that builds their numba strings and inserts them.",
        "",
        "Grouping's output is the rows of every key: pardict's `group_indices` returns CSR arrays "
        "(uniques, offsets, indices; groups in order of first occurrence, rows ascending), "
        "pandas a dict of index arrays, polars a list column, NumPy the argsort permutation "
        "and the run boundaries (groups in key order), typed.Dict a typed.List per key; turning "
        "each into the compared form is outside the timing. `group_indices` groups each thread's "
        "chunk of rows in a private table, merges the tables in chunk order on the calling "
        "thread and scatters the rows to their group's range (capi/group.cpp).",
        "",
    ]
    (out / "groupby.md").write_text("\n".join(L))


def write_png(rows, out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 5), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=False):
        rs = [r for r in rows if r["task"] == task]
        labels = [f"{r['impl']} ({r['threads']}T)" for r in rs]
        ax.barh(
            labels,
            [r["rows"] / r["seconds"] / 1e6 for r in rs],
            color=["tab:blue" if r["impl"].startswith("pardict") else "tab:gray" for r in rs],
        )
        ax.set_title(f"{task}: {rs[0]['rows']:,} rows, {rs[0]['keys']:,} keys")
        ax.set_xlabel("M rows / s (higher is better)")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(out / "groupby.png", dpi=110)


if __name__ == "__main__":
    main()
