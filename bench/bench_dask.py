#!/usr/bin/env python3
"""pardict.dask vs dask.dataframe on one LocalCluster, and the pickle wire format's throughput;
writes bench/results/dask.{json,md,png}.

  .venv/bin/python bench/bench_dask.py            # full: 50M rows / ~1M keys, 50M tokens (~15 min)
  .venv/bin/python bench/bench_dask.py --quick    # smoke run: 400k rows, 1 run

One LocalCluster (2 worker processes x 1 thread, TCP on loopback, no dashboard) serves every
contender. The data is generated on the workers (dd.from_map, seeded per partition) and persisted
before anything is timed; every contender reads the same persisted partitions.

Tasks (values are integers stored as float64, so sums are exact in any order and every
contender's result must equal the reference bit for bit; each run is checked):
  sum_uniform  group-by sum, --rows rows, keys uniform over --keys arbitrary int64 ids
  sum_zipf     the same with Zipf(1.0)-distributed keys (rank r has p ~ 1/r)
  word_count   count per word of a str column of --tokens tokens (Arrow strings, as pandas 3 and
               dask.dataframe store them), Zipf(1.0) over a --vocab-word vocabulary

Contenders (all results are computed to the client):
  pardict.dask.aggregate(ddf.k, ddf.v, op="add") / aggregate(ddf.w, op="count")  -> pardict.Dict
  the same with split_out=2                                                  -> pandas DataFrame
  ddf.groupby("k").v.sum() / ddf.w.value_counts()      (dask.dataframe's defaults) -> pandas Series
  the same with split_out=2

Each cell runs once untimed first: worker processes compile pardict's jitted helpers on first use
(a few seconds per worker, once), and that first run's time is reported separately. Then --runs
interleaved passes (each pass times every cell of a task once); the tables show medians. Bytes
between processes: the loopback interface's byte counter over the run (all of the cluster's TCP
traffic: partials between workers, results to the client, scheduler messages; the container's
network namespace is otherwise idle) and, for the tree reductions, the worker-to-worker transfer
bytes Dask records (P2P shuffles, which dask.dataframe's split_out uses, move data outside them).

Pickle: a --pickle-n entry int64 -> float64 dict pickled with protocol 5 out of band (as Dask
and multiprocessing send it) and in band, and unpickled; GB/s of the raw key + value bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import machine  # noqa: E402

RESULTS = HERE / "results"


# ---- data, generated on the workers ------------------------------------------------------------


def zipf_ranks(n, distinct, rng):
    """n draws of ranks 0..distinct-1 with p(r) ~ 1/(r+1) (as bench_groupby.py)."""
    cdf = np.cumsum(1.0 / np.arange(1, distinct + 1))
    cdf /= cdf[-1]
    return np.searchsorted(cdf, rng.random(n), side="right").clip(0, distinct - 1)


def key_ids(ranks):
    """Arbitrary-looking distinct int64 ids for ranks (an odd multiplier is a bijection of
    2^64, so distinct ranks give distinct ids)."""
    return (ranks.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)).view(np.int64)


def sum_partition(i, rows, keys, skew, seed):
    import pandas as pd

    rng = np.random.default_rng([seed, i])
    ranks = zipf_ranks(rows, keys, rng) if skew else rng.integers(0, keys, rows)
    return pd.DataFrame({"k": key_ids(ranks), "v": rng.integers(0, 100, rows).astype(np.float64)})


def vocabulary(n, seed):
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters, rng.integers(3, 11))))
    out = np.array(sorted(words))
    rng.shuffle(out)
    return out


def word_partition(i, rows, vocab, seed):
    import pandas as pd

    words = vocabulary(vocab, seed)
    rng = np.random.default_rng([seed, i])
    return pd.DataFrame({"w": pd.Series(words[zipf_ranks(rows, vocab, rng)], dtype="str")})


# ---- contenders ---------------------------------------------------------------------------------

LABELS = {
    "pardict": "pardict.dask `aggregate(ddf.k, ddf.v)` / `aggregate(ddf.w, op='count')` → Dict",
    "pardict_split2": "pardict.dask, `split_out=2` → DataFrame",
    "dask": "dask.dataframe `groupby('k').v.sum()` / `w.value_counts()` (defaults)",
    "dask_split2": "dask.dataframe, `split_out=2`",
}


def lazy(impl, task, ddf):
    import pardict.dask as pdd

    if task == "word_count":
        if impl == "pardict":
            return pdd.aggregate(ddf.w, op="count")
        if impl == "pardict_split2":
            return pdd.aggregate(ddf.w, op="count", split_out=2)
        if impl == "dask":
            return ddf.w.value_counts()
        return ddf.w.value_counts(split_out=2)
    if impl == "pardict":
        return pdd.aggregate(ddf.k, ddf.v, op="add")
    if impl == "pardict_split2":
        return pdd.aggregate(ddf.k, ddf.v, op="add", split_out=2)
    if impl == "dask":
        return ddf.groupby("k").v.sum()
    return ddf.groupby("k").v.sum(split_out=2)


def as_sorted(result):
    """(keys, values) sorted by key, from whatever a contender computed."""
    import pandas as pd

    if isinstance(result, pd.DataFrame):
        k, v = result["key"].to_numpy(), result["value"].to_numpy()
    elif isinstance(result, pd.Series):
        k, v = result.index.to_numpy(), result.to_numpy()
    else:
        k, v = result.to_arrays()
    k = k.astype(str) if k.dtype.kind in "OU" else k
    order = np.argsort(k, kind="stable")
    return k[order], np.asarray(v)[order].astype(np.float64)


def loopback_bytes():
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            return int(rest.split()[0])
    return 0


def clear_transfer_logs(dask_worker):
    dask_worker.transfer_incoming_log.clear()


def transfer_bytes(dask_worker):
    return sum(int(x.get("total", 0)) for x in dask_worker.transfer_incoming_log)


def warm_worker(task):
    """Runs pardict.dask's whole pipeline for the task's types on tiny data in this process (a
    worker, through client.run), so that every jitted helper it will need is compiled before
    anything is timed: a timed run must not pay the compilation on the worker that happens to get
    a combine task first."""
    import dask.dataframe as dd
    import pandas as pd

    import pardict.dask as pdd

    if task == "word_count":
        frame = pd.DataFrame({"w": pd.Series(["a", "b", "a", "c"] * 10, dtype="str")})
        lazies = [lambda f, s=s: pdd.aggregate(f.w, op="count", split_out=s) for s in (1, 2)]
    else:
        frame = sum_partition(0, 1000, 50, False, 1)
        lazies = [lambda f, s=s: pdd.aggregate(f.k, f.v, op="add", split_out=s) for s in (1, 2)]
    ddf = dd.from_pandas(frame, npartitions=4)
    for make in lazies:
        make(ddf).compute(scheduler="sync")
    return True


def run_cell(client, impl, task, ddf):
    client.run(clear_transfer_logs)
    lo0 = loopback_bytes()
    t0 = time.perf_counter()
    result = client.compute(lazy(impl, task, ddf)).result()
    seconds = time.perf_counter() - t0
    lo1 = loopback_bytes()
    moved = sum(client.run(transfer_bytes).values())
    return result, seconds, lo1 - lo0, moved


# ---- pickle ----------------------------------------------------------------------------------------


def bench_pickle(n, runs):
    import pardict
    from pardict import _ext

    rng = np.random.default_rng(5)
    keys = key_ids(rng.permutation(n))
    d = pardict.Dict.from_arrays(keys, rng.random(n))
    raw = 16 * n
    out = {"entries": n, "raw_bytes": raw, "crc32c_implementation": _ext.crc32c_implementation()}
    times: dict[str, list[float]] = {
        "dump_oob": [],
        "load_oob": [],
        "dump_inband": [],
        "load_inband": [],
    }
    for run in range(runs + 1):  # the first pass warms up (page faults of fresh memory)
        bufs: list = []
        t0 = time.perf_counter()
        head = pickle.dumps(d, protocol=5, buffer_callback=bufs.append)
        t1 = time.perf_counter()
        r = pickle.loads(head, buffers=bufs)
        t2 = time.perf_counter()
        size_oob = len(head) + sum(b.raw().nbytes for b in bufs)
        assert len(r) == n
        del r, bufs
        t3 = time.perf_counter()
        blob = pickle.dumps(d, protocol=5)
        t4 = time.perf_counter()
        r = pickle.loads(blob)
        t5 = time.perf_counter()
        assert len(r) == n
        size_inband = len(blob)
        del r, blob
        if run:
            times["dump_oob"].append(t1 - t0)
            times["load_oob"].append(t2 - t1)
            times["dump_inband"].append(t4 - t3)
            times["load_inband"].append(t5 - t4)
    for k, ts in times.items():
        out[k] = {"seconds": statistics.median(ts), "gbps": raw / statistics.median(ts) / 1e9}
    out["size_oob"] = size_oob
    out["size_inband"] = size_inband
    out["size_ratio"] = size_oob / raw
    big = np.ones(raw, dtype=np.uint8)
    for name, fn in (("crc32c", _ext.crc32c), ("crc32c_software", _ext.crc32c_software)):
        fn(big)
        t0 = time.perf_counter()
        fn(big)
        out[name + "_gbps"] = raw / (time.perf_counter() - t0) / 1e9
    return out


# ---- driver ------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rows", type=int, default=50_000_000)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--tokens", type=int, default=50_000_000)
    ap.add_argument("--vocab", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pickle-n", type=int, default=10_000_000)
    ap.add_argument("--tasks", default="sum_uniform,sum_zipf,word_count")
    ap.add_argument("--impls", default="pardict,pardict_split2,dask,dask_split2")
    ap.add_argument("--out", default=str(RESULTS), help="output directory (default bench/results)")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.keys, args.tokens, args.vocab = 400_000, 20_000, 400_000, 5_000
        args.partitions, args.runs, args.pickle_n = 4, 1, 200_000

    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster, wait

    meta = machine.describe(("include", "capi", "python", "bench"))
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = Client(cluster)
    rows_out = []
    try:
        for task in args.tasks.split(","):
            if task == "word_count":
                per = args.tokens // args.partitions
                ddf = dd.from_map(
                    word_partition,
                    range(args.partitions),
                    rows=per,
                    vocab=args.vocab,
                    seed=7,
                    meta=word_partition(0, 0, 3, 7),
                )
            else:
                per = args.rows // args.partitions
                ddf = dd.from_map(
                    sum_partition,
                    range(args.partitions),
                    rows=per,
                    keys=args.keys,
                    skew=task == "sum_zipf",
                    seed=11,
                    meta=sum_partition(0, 0, 1, False, 11),
                )
            ddf = ddf.persist()
            wait(ddf)
            n_rows = per * args.partitions
            impls = args.impls.split(",")
            client.run(warm_worker, task)
            ref = None
            first = {}
            for impl in impls:  # warm-up, and the reference result
                result, seconds, _, _ = run_cell(client, impl, task, ddf)
                first[impl] = seconds
                got = as_sorted(result)
                if ref is None:
                    ref = got
                elif not (np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])):
                    raise SystemExit(f"{task}: {impl}'s result differs from {impls[0]}'s")
                del result
            times = {i: [] for i in impls}
            lo = {i: [] for i in impls}
            moved = {i: [] for i in impls}
            for _ in range(args.runs):
                for impl in impls:
                    result, seconds, lob, mv = run_cell(client, impl, task, ddf)
                    got = as_sorted(result)
                    del result
                    if not (np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])):
                        raise SystemExit(f"{task}: {impl}'s result differs from the reference")
                    times[impl].append(seconds)
                    lo[impl].append(lob)
                    moved[impl].append(mv)
            for impl in impls:
                med = statistics.median(times[impl])
                print(
                    f"{task:12s} {impl:15s} {med:7.3f} s  first {first[impl]:6.2f} s  "
                    f"runs {', '.join(f'{x:.3f}' for x in times[impl])}  "
                    f"loopback {statistics.median(lo[impl]) / 1e6:.0f} MB  ok",
                    flush=True,
                )
                rows_out.append(
                    {
                        "task": task,
                        "impl": impl,
                        "rows": int(n_rows),
                        "keys": int(ref[0].size),
                        "partitions": args.partitions,
                        "seconds": med,
                        "runs": times[impl],
                        "first_run_seconds": first[impl],
                        "loopback_bytes": statistics.median(lo[impl]),
                        "worker_transfer_bytes": statistics.median(moved[impl]),
                    }
                )
            client.cancel(ddf)
            del ddf
    finally:
        client.close()
        cluster.close()
    pickle_info = bench_pickle(args.pickle_n, max(args.runs, 3))
    print(json.dumps(pickle_info, indent=1), flush=True)

    import distributed
    import numba
    import pandas
    import pyarrow

    import pardict

    meta["versions"] = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numba": numba.__version__,
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "pardict": pardict.__version__,
    }
    meta["env"] = {k: os.environ[k] for k in sorted(os.environ) if k.startswith("NUMBA_")}
    meta["cluster"] = (
        "LocalCluster(n_workers=2, threads_per_worker=1, processes=True, TCP on 127.0.0.1)"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"machine": meta, "args": vars(args), "rows": rows_out, "pickle": pickle_info}
    (out / "dask.json").write_text(json.dumps(doc, indent=1))
    write_md(doc, out)
    write_png(doc, out)
    print(f"wrote {out / 'dask.json'}, dask.md, dask.png")


def _cell(rows, task, impl):
    return next((r for r in rows if r["task"] == task and r["impl"] == impl), None)


def write_md(doc, out: Path):
    meta, rows, pk, args = doc["machine"], doc["rows"], doc["pickle"], doc["args"]
    L = [
        "# pardict.dask benchmark: group-by sum and word count on a Dask cluster",
        "",
        f"Generated by `bench/bench_dask.py` on {meta.get('date')} ({meta.get('cpu_model')}, "
        f"{meta.get('nproc')} CPUs, {meta.get('memory')}, load at start "
        f"{meta.get('loadavg_start')}; git {meta.get('git')}). Cluster: {meta.get('cluster')}, "
        f"shared by every contender; data generated on the workers and persisted before timing, "
        f"{args['partitions']} partitions. Median of {args['runs']} interleaved runs per cell "
        f"after an untimed first run; every run's result is checked against the first "
        f"contender's, bit for bit. Versions: {json.dumps(meta.get('versions'))}.",
        "",
        "## Targets (this run)",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for task in ("sum_uniform", "sum_zipf", "word_count"):
        p = _cell(rows, task, "pardict")
        for impl in ("dask", "dask_split2"):
            d = _cell(rows, task, impl)
            if p is None or d is None:
                continue
            ratio = d["seconds"] / p["seconds"]
            per_pass = [b / a for a, b in zip(p["runs"], d["runs"], strict=False)]
            L.append(
                f"| {task}: pardict.dask ≥ 2× faster than {LABELS[impl]} | {ratio:.2f}× "
                f"({min(per_pass):.2f}–{max(per_pass):.2f} per pass) | "
                f"{'yes' if ratio >= 2 else '**no**'} |"
            )
    for name in ("dump_oob", "load_oob"):
        g = pk[name]["gbps"]
        what = "pickle" if name.startswith("dump") else "unpickle"
        L.append(
            f"| {what} of a {pk['entries']:,}-entry int64→float64 dict ≥ 1 GB/s (protocol 5, "
            f"out of band) | {g:.2f} GB/s | {'yes' if g >= 1 else '**no**'} |"
        )
    L.append(
        f"| pickled size ≤ 1.1× the raw key + value bytes | {pk['size_ratio']:.4f}× | "
        f"{'yes' if pk['size_ratio'] <= 1.1 else '**no**'} |"
    )
    L.append("")
    for task in dict.fromkeys(r["task"] for r in rows):
        rs = [r for r in rows if r["task"] == task]
        base = _cell(rows, task, "dask")
        L += [
            f"## {task}: {rs[0]['rows']:,} rows, {rs[0]['keys']:,} distinct keys",
            "",
            "| contender | seconds | M rows/s | dask.dataframe default s / this s | first run s "
            "(worker compile) | loopback MB | worker-to-worker MB (Dask's transfer log) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rs:
            speed = base["seconds"] / r["seconds"] if base else float("nan")
            L.append(
                f"| {LABELS[r['impl']]} | {r['seconds']:.2f} | {r['rows'] / r['seconds'] / 1e6:.1f} "
                f"| {speed:.2f}× | {r['first_run_seconds']:.1f} | {r['loopback_bytes'] / 1e6:.0f} "
                f"| {r['worker_transfer_bytes'] / 1e6:.0f} |"
            )
        L.append("")
    L += [
        f"## Pickle: {pk['entries']:,}-entry int64 → float64 dict ({pk['raw_bytes'] / 1e6:.0f} MB "
        "of keys and values)",
        "",
        "| | seconds | GB/s |",
        "|---|---|---|",
    ]
    for name, label in (
        ("dump_oob", "`pickle.dumps(d, protocol=5, buffer_callback=...)` (out of band)"),
        ("load_oob", "`pickle.loads(data, buffers=...)`"),
        ("dump_inband", "`pickle.dumps(d, protocol=5)` (in band)"),
        ("load_inband", "`pickle.loads(data)` (in band)"),
    ):
        L.append(f"| {label} | {pk[name]['seconds']:.3f} | {pk[name]['gbps']:.2f} |")
    L += [
        "",
        f"Pickled size: {pk['size_oob']:,} bytes out of band, {pk['size_inband']:,} in band "
        f"({pk['size_ratio']:.4f}× the raw bytes). CRC-32C ({pk['crc32c_implementation']}): "
        f"{pk['crc32c_gbps']:.1f} GB/s; the portable fallback {pk['crc32c_software_gbps']:.1f} "
        "GB/s.",
        "",
    ]
    (out / "dask.md").write_text("\n".join(L))


def write_png(doc, out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["rows"]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=False):
        rs = [r for r in rows if r["task"] == task]
        ax.barh(
            [r["impl"] for r in rs],
            [r["rows"] / r["seconds"] / 1e6 for r in rs],
            color=["tab:blue" if r["impl"].startswith("pardict") else "tab:gray" for r in rs],
        )
        ax.set_title(f"{task}: {rs[0]['rows'] / 1e6:.0f}M rows, {rs[0]['keys']:,} keys")
        ax.set_xlabel("M rows / s (higher is better)")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(out / "dask.png", dpi=110)


if __name__ == "__main__":
    main()
