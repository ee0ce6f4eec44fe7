#!/usr/bin/env python3
"""Where the seed program's time goes: its fill (`d[float(i)] = v` in prange, float64 -> float32[:],
from empty) next to the same fill with smaller values, so that the cost of the array value is
split into the cost of its slot size and the cost of its reference count and copy check (issue 22:
"slim the array-value store path; measure first where its extra cost goes").

  impl              values                            slot    what it isolates
  typed_seed        float32[:] (numba.typed.Dict,      -      the reference: the seed's serial loop
                    serial range loop)
  pardict_array     float32[:] (stored as its MemInfo) 16 B   the seed itself
  pardict_array_pre float32[:], presized for N         16 B   growth from empty
  pardict_tuple7    UniTuple(float64, 7)               64 B   slot size (the array's whole struct
                                                              was stored until one-word values)
  pardict_tuple3    UniTuple(float64, 3)               32 B   slot size
  pardict_float     float64                            16 B   the array path without its reference
                                                              count and owner-less copy check

Every cell is one fresh process (compilation on a small input first, then one timed fill of N
keys in order), the cells are run in interleaved passes, and the tables give the median Mops/s,
the min-max over passes, and the ratio to typed_seed's median from the same run.

  .venv/bin/python bench/seed_breakdown.py                 # -> bench/results/seed_breakdown.{json,md}
  .venv/bin/python bench/seed_breakdown.py --n 1000000 --passes 1 --out /tmp/x
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

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

IMPLS = {
    "typed_seed": ("numba.typed.Dict, serial range loop, float32[:] values", "–"),
    # a 1-D array value is stored as its MemInfo (pardict.numba.convert, "Arrays as one word")
    "pardict_array": ("pardict.Dict, prange, float32[:] values (the seed)", "16 B"),
    "pardict_array_pre": ("the same, presized for N keys", "16 B"),
    "pardict_tuple7": ("pardict.Dict, prange, UniTuple(float64, 7) values", "64 B"),
    "pardict_tuple3": ("pardict.Dict, prange, UniTuple(float64, 3) values", "32 B"),
    "pardict_float": ("pardict.Dict, prange, float64 values", "16 B"),
}
THREADS = (1, 2)


# ---- the child: one fill in a fresh process --------------------------------------------------------


def _kernel(impl: str):
    import numpy as np
    from numba import njit, prange, types
    from numba.typed import Dict as TDict

    import pardict

    f64 = types.float64
    if impl == "typed_seed":

        @njit
        def typed_fill(n, pre):
            d = TDict.empty(f64, types.float32[:])
            v = np.array([0.1, 0.2], dtype=np.float32)
            for i in range(n):
                d[float(i)] = v
            return d

        return typed_fill
    if impl.startswith("pardict_array"):

        @njit(parallel=True)
        def array_fill(n, pre):
            d = pardict.Dict.empty(f64, types.float32[:], pre)
            v = np.array([0.1, 0.2], dtype=np.float32)
            for i in prange(n):
                d[float(i)] = v
            return d

        return array_fill
    width = {"pardict_tuple7": 7, "pardict_tuple3": 3, "pardict_float": 1}[impl]
    vty = f64 if width == 1 else types.UniTuple(f64, width)
    value = 0.5 if width == 1 else tuple(0.125 * j for j in range(width))

    @njit(parallel=True)
    def fill(n, pre):
        d = pardict.Dict.empty(f64, vty, pre)
        for i in prange(n):
            d[float(i)] = value
        return d

    return fill


def child(impl: str, threads: int, n: int) -> None:
    import numba

    numba.set_num_threads(threads)
    fill = _kernel(impl)
    fill(1000, 0)
    pre = n if impl.endswith("_pre") else 0
    t0 = time.perf_counter()
    d = fill(n, pre)
    seconds = time.perf_counter() - t0
    if len(d) != n:
        raise SystemExit(f"{impl}: len {len(d)} != {n}")
    for k in (0.0, float(n // 2), float(n - 1)):  # every impl stores one value under every key
        if repr(d[k]) != repr(d[1.0]):
            raise SystemExit(f"{impl}: d[{k}] = {d[k]!r} != {d[1.0]!r}")
    print(json.dumps({"impl": impl, "threads": threads, "n": n, "seconds": seconds}))


# ---- the parent ------------------------------------------------------------------------------------


def cells() -> list[tuple[str, int]]:
    return [(i, t) for t in THREADS for i in IMPLS if not (i == "typed_seed" and t != 1)]


def run(n: int, passes: int) -> list[dict]:
    rows = []
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS=str(max(THREADS)))
    for p in range(passes):
        for impl, t in cells():
            out = subprocess.run(
                [sys.executable, __file__, "--child", impl, str(t), str(n)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            row = json.loads(out.strip().splitlines()[-1])
            row["pass"] = p
            rows.append(row)
            print(f"pass {p} {impl:18s} T={t}: {n / row['seconds'] / 1e6:6.2f} Mops/s", flush=True)
    return rows


def summarise(rows: list[dict], n: int) -> dict:
    out = {}
    for impl, t in cells():
        mops = [n / r["seconds"] / 1e6 for r in rows if r["impl"] == impl and r["threads"] == t]
        out[f"{impl}/{t}"] = {"median": statistics.median(mops), "min": min(mops), "max": max(mops)}
    return out


def markdown(summary: dict, n: int, passes: int, machine: dict) -> str:
    ref = summary["typed_seed/1"]["median"]
    lines = [
        "# Where the seed's fill time goes",
        "",
        f"Generated by `bench/seed_breakdown.py` on {machine.get('date', '')} at {machine.get('git', '')}. "
        f"N = {n:,} keys in order (`d[float(i)] = value`, from empty unless presized), {passes} "
        "fresh process(es) per cell in interleaved passes; median Mops/s (min–max), and the "
        "ratio of the median to typed.Dict's serial seed fill in the same run.",
        "",
        "| impl | slot | "
        + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in THREADS)
        + " |",
        "|---|---|" + "---|" * len(THREADS),
    ]
    for impl, (what, slot) in IMPLS.items():
        cellv = []
        for t in THREADS:
            s = summary.get(f"{impl}/{t}")
            cellv.append(
                f"**{s['median']:.2f}** ({s['min']:.2f}–{s['max']:.2f}), {s['median'] / ref:.2f}×"
                if s
                else "–"
            )
        lines.append(f"| {what} | {slot} | " + " | ".join(cellv) + " |")
    lines += [
        "",
        "Ratios of medians, same run:",
        "",
        "| ratio | " + " | ".join(f"T={t}" for t in THREADS) + " |",
    ]
    lines.append("|---|" + "---|" * len(THREADS))

    def ratio(a: str, b: str) -> str:
        return " | ".join(
            f"{summary[f'{a}/{t}']['median'] / summary[f'{b}/{t}']['median']:.2f}×" for t in THREADS
        )

    lines += [
        "| array path's own cost: float / array (same 16-byte slot) | "
        + ratio("pardict_float", "pardict_array")
        + " |",
        "| growth from empty: presized / from empty (array) | "
        + ratio("pardict_array_pre", "pardict_array")
        + " |",
        "| slot 64 → 32 bytes: tuple3 / tuple7 | "
        + ratio("pardict_tuple3", "pardict_tuple7")
        + " |",
        "| slot 64 → 16 bytes: float / tuple7 | " + ratio("pardict_float", "pardict_tuple7") + " |",
        "",
        "## Machine",
        "",
    ]
    for k, v in machine.items():
        if isinstance(v, list):
            v = "; ".join(" ".join(str(x).split()) for x in v)
        lines.append(f"- {k}: {v}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--child", nargs=3, metavar=("IMPL", "T", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--out", type=Path, default=RESULTS, help="folder of the results (bench/results)"
    )
    a = ap.parse_args()
    if a.child:
        child(a.child[0], int(a.child[1]), int(a.child[2]))
        return
    sys.path.insert(0, str(HERE))
    import machine as machine_mod

    info = machine_mod.describe(("include", "capi", "python"))
    rows = run(a.n, a.passes)
    summary = summarise(rows, a.n)
    md = markdown(summary, a.n, a.passes, info)
    print(md)
    if not a.no_write:
        a.out.mkdir(exist_ok=True)
        (a.out / "seed_breakdown.json").write_text(
            json.dumps(
                {"machine": info, "n": a.n, "passes": a.passes, "rows": rows, "summary": summary},
                indent=1,
            )
            + "\n"
        )
        (a.out / "seed_breakdown.md").write_text(md)


if __name__ == "__main__":
    main()
