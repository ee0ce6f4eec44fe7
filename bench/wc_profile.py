#!/usr/bin/env python3
"""Where pardict.dask's word count spends its time on a 2-worker LocalCluster (as bench_dask.py's
word_count): per-task-kind worker seconds from the task stream, and the wall time, for the Arrow
direct path and the older NumPy unicode conversion (pardict.dask._ARROW_DIRECT).

  .venv/bin/python bench/wc_profile.py [--tokens 50000000] [--partitions 8] [--runs 2]
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dask import word_partition  # noqa: E402


def _set_direct(flag):
    import pardict.dask

    pardict.dask._ARROW_DIRECT = flag
    return flag


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=50_000_000)
    ap.add_argument("--vocab", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--paths", default="direct,numpy", help="direct (Arrow buffers), numpy")
    ap.add_argument(
        "--threads", default="none", help="comma list of threads= values (none: default)"
    )
    args = ap.parse_args()
    import dask.dataframe as dd
    from distributed import Client, LocalCluster, get_task_stream, wait

    import pardict.dask as pdd

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = Client(cluster)
    try:
        per = args.tokens // args.partitions
        ddf = dd.from_map(
            word_partition,
            range(args.partitions),
            rows=per,
            vocab=args.vocab,
            seed=7,
            meta=word_partition(0, 0, 3, 7),
        ).persist()
        wait(ddf)
        want = client.compute(ddf.w.value_counts()).result()
        configs = [
            (p == "direct", None if t == "none" else int(t))
            for p in args.paths.split(",")
            for t in args.threads.split(",")
        ]
        for direct, threads in configs:
            client.run(_set_direct, direct)
            for run in range(args.runs + 1):
                with get_task_stream(client) as ts:
                    t0 = time.perf_counter()
                    d = pdd.aggregate(ddf.w, op="count", threads=threads).compute()
                    wall = time.perf_counter() - t0
                assert d.to_dict() == want.to_dict()
                by = collections.defaultdict(float)
                xfer = 0.0
                for t in ts.data:
                    kind = t["key"][0] if isinstance(t["key"], tuple) else t["key"]
                    kind = re.sub(r"-[0-9a-f]{8,}$", "", str(kind))
                    for s in t["startstops"]:
                        if s["action"] == "compute":
                            by[kind] += s["stop"] - s["start"]
                        elif s["action"] == "transfer":
                            xfer += s["stop"] - s["start"]
                parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(by.items()))
                label = "first" if run == 0 else f"run {run}"
                print(
                    f"direct={direct} threads={threads} {label}: wall {wall:.2f} s; worker compute s: {parts}; "
                    f"transfer {xfer:.2f}",
                    flush=True,
                )
        t0 = time.perf_counter()
        client.compute(ddf.w.value_counts()).result()
        print(f"dask.dataframe value_counts: wall {time.perf_counter() - t0:.2f} s")
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
