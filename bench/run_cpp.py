#!/usr/bin/env python3
"""Run the pardict_bench matrix and write bench/results/cpp.{json,md,png}.

Builds nothing: it runs an existing pardict_bench binary (see bench/README.md for the build).
One process per (map, workload, threads, repetition); the repetitions are interleaved passes over the
whole matrix so that slow drift of the machine spreads over all cells. Cells report the median and
min/max over the repetitions.

  python3 bench/run_cpp.py --quick                      # smoke run: N = 1M, 1 repetition
  python3 bench/run_cpp.py                              # full matrix: N = 10M, 3 repetitions
  python3 bench/run_cpp.py --maps pardict,absl_sharded --workloads W1,W3 --threads 2
  python3 bench/run_cpp.py --report-only                # redo json/md/png from results/raw/cpp_raw.jsonl

Standard library only; the chart uses matplotlib if this interpreter or the repo's .venv has it, and
falls back to an SVG chart (results/cpp.svg) otherwise.
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

ALL_MAPS = [
    "pardict",
    "pardict_bulk",
    "boost",
    "boost_bulk",
    "tbb_hm",
    "tbb_um",
    "cuckoo",
    "absl_sharded",
    "std_mutex",
    "plain",
    "raw_read",
]
EXTRA_MAPS = ["plain_touched"]  # accepted by --maps, not run by default
PEERS = ["boost", "boost_bulk", "tbb_hm", "tbb_um", "cuckoo", "absl_sharded", "std_mutex"]
OURS = ["pardict", "pardict_bulk"]
LIMITS = ["plain", "plain_touched", "raw_read"]
ALL_WORKLOADS = ["W1", "W2", "W3", "W4", "W5", "W6", "W7i", "W7l", "W8r", "W8s"]

MAP_LABEL = {
    "pardict": "pardict::concurrent_map (single-key API)",
    "pardict_bulk": "pardict::concurrent_map, bulk API (*_many)",
    "boost": "boost::concurrent_flat_map (single-key API)",
    "boost_bulk": "boost::concurrent_flat_map, bulk cvisit",
    "tbb_hm": "tbb::concurrent_hash_map",
    "tbb_um": "tbb::concurrent_unordered_map",
    "cuckoo": "libcuckoo cuckoohash_map",
    "absl_sharded": "absl::flat_hash_map x64 shards + std::shared_mutex",
    "std_mutex": "std::unordered_map + one std::mutex",
    "plain": "limit: plain per-thread table (write-first)",
    "plain_touched": "limit: plain per-thread table, pre-touched",
    "raw_read": "limit: raw random 8-byte loads (5N loads)",
}
WORKLOAD_TITLE = {
    "W1": "W1 insert N distinct keys, no reserve",
    "W2": "W2 insert N distinct keys after reserve(N)",
    "W3": "W3 N successful lookups (uniform random present keys), map of N",
    "W4": "W4 N unsuccessful lookups (absent keys), map of N",
    "W5": "W5 N ops on a map of N: 90% find / 10% insert_or_assign, keys uniform in [0, 2N)",
    "W6": "W6 count occurrences: 2N increments over Zipf(1.0) keys from 2^20 ranks",
    "W7i": "W7i insert N keys with std::array<float,4> values, no reserve",
    "W7l": "W7l N successful lookups with std::array<float,4> values",
    "W8r": "W8r insert N keys in another map's iteration order, no reserve",
    "W8s": "W8s insert the keys of W8r shuffled, no reserve",
}
INSERTS = {"W1", "W2", "W7i"}


def applies(m: str, w: str) -> bool:
    if m == "pardict_bulk":
        return w != "W5"
    if m == "boost_bulk":
        return w in ("W3", "W4", "W7l")  # boost's only bulk operation is visitation
    if m == "raw_read":
        return w in ("W3", "W7l")  # W4's array is W3's; the W3 number is its reference
    if m == "plain_touched":
        return w in INSERTS or w == "W6"
    if m == "plain":
        return w not in ("W8r", "W8s")  # per-thread tables: no other map's order to take
    return True


# ------------------------------------------------------------------------------------------------
# binary


def find_binary(explicit: str | None) -> Path:
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            sys.exit(f"run_cpp.py: no binary at {p}")
        return p.resolve()
    cands = [
        REPO / "build/bench/bench/pardict_bench",
        REPO / "build/bench/pardict_bench",
        REPO / "build/bench-only/pardict_bench",
    ]
    cands += (
        sorted((REPO / "build").glob("*/bench/pardict_bench")) if (REPO / "build").is_dir() else []
    )
    cands += sorted((REPO / "build").glob("*/pardict_bench")) if (REPO / "build").is_dir() else []
    found = [c for c in cands if c.is_file() and os.access(c, os.X_OK)]
    if not found:
        sys.exit(
            "run_cpp.py: pardict_bench not found; build it first:\n"
            "  cmake -S . -B build/bench -DPARDICT_BUILD_BENCH=ON -DCMAKE_BUILD_TYPE=Release\n"
            "  cmake --build build/bench -j2\n"
            "or pass --bin PATH"
        )
    return max(found, key=lambda p: p.stat().st_mtime).resolve()


def binary_info(binary: Path) -> dict:
    out = subprocess.run([str(binary), "--list"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        sys.exit(f"run_cpp.py: {binary} --list failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


# ------------------------------------------------------------------------------------------------
# machine description


def machine_info(binary_meta: dict) -> dict:
    info = machine.describe(("include", "bench"))
    cxx = machine.sh(["c++", "--version"]).splitlines()
    info["compiler"] = cxx[0] if cxx else ""
    info["binary_compiler"] = binary_meta.get("compiler", "")
    info["tbb"] = binary_meta.get("tbb", "")
    info["boost"] = binary_meta.get("boost", "")
    pk = machine.sh(
        [
            "dpkg-query",
            "-W",
            "-f",
            "${Package} ${Version}\\n",
            "libtbb-dev",
            "libcuckoo-dev",
            "libabsl-dev",
        ]
    )
    info["packages"] = [line for line in pk.splitlines() if line.strip()]
    if info["boost"]:
        info["packages"].append(f"boost-headers (PyPI, in .venv) {info['boost']}")
    return info


# ------------------------------------------------------------------------------------------------
# running


def run_one(
    binary: Path, m: str, w: str, t: int, n: int, inner_reps: int, timeout: float, env: dict
) -> list[dict]:
    cmd = [str(binary), m, w, str(t), str(n), str(inner_reps)]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return [
            {
                "map": m,
                "workload": w,
                "threads": t,
                "n": n,
                "check": f"FAIL: timeout after {timeout:g} s",
                "wall_s": time.monotonic() - t0,
            }
        ]
    rows = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            r["wall_s"] = round(time.monotonic() - t0, 3)
            rows.append(r)
    if p.returncode == 3:
        return [{"map": m, "workload": w, "threads": t, "n": n, "check": "n/a"}]
    if p.returncode != 0 or not rows:
        err = (p.stderr.strip().splitlines() or [""])[-1]
        reason = f"FAIL: exit {p.returncode} {err}".strip()
        if rows:
            for r in rows:
                if r.get("check") == "ok":
                    r["check"] = reason
        else:
            rows = [{"map": m, "workload": w, "threads": t, "n": n, "check": reason}]
    return rows


def run_matrix(args, binary: Path, built: list[str]) -> list[dict]:
    maps = [m for m in args.maps if m in built]
    configs = [
        (w, m, t) for w in args.workloads for m in maps for t in args.threads if applies(m, w)
    ]
    total = len(configs) * args.reps
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw_path = RESULTS / "raw" / "cpp_raw.jsonl"
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    raw_path.write_text("")
    env = dict(os.environ)
    if args.block:
        env["PARDICT_BENCH_BLOCK"] = str(args.block)
    rows: list[dict] = []
    k = 0
    t_start = time.monotonic()
    for rep in range(args.reps):
        for w, m, t in configs:
            k += 1
            res = run_one(binary, m, w, t, args.n, args.inner_reps, args.timeout, env)
            for r in res:
                r["pass"] = rep
            rows.extend(res)
            with raw_path.open("a") as f:
                for r in res:
                    f.write(json.dumps(r) + "\n")
            ok = [r for r in res if r.get("check") == "ok"]
            msg = " ".join(f"{r['mops']:.2f}" for r in ok) if ok else res[0].get("check", "?")
            el = time.monotonic() - t_start
            print(
                f"[{k}/{total} {el:6.0f}s] pass {rep + 1} {m:13s} {w:4s} T={t:<2d} {msg}",
                file=sys.stderr,
                flush=True,
            )
    return rows


# ------------------------------------------------------------------------------------------------
# aggregation


def aggregate(raw: list[dict]) -> list[dict]:
    cells: dict = {}
    for r in raw:
        if r.get("check") == "n/a":
            continue
        key = (r["map"], r["workload"], int(r["threads"]), int(r["n"]))
        cells.setdefault(key, []).append(r)
    out = []
    for (m, w, t, n), rs in sorted(cells.items()):
        ok = [r for r in rs if r.get("check") == "ok"]
        fails = [r["check"] for r in rs if r.get("check") != "ok"]
        row = {
            "map": m,
            "workload": w,
            "threads": t,
            "n": n,
            "runs": len(ok),
            "failures": len(fails),
        }
        if fails:
            row["failure_messages"] = sorted(set(fails))
        if ok:
            mops = [r["mops"] for r in ok]
            row["mops"] = round(statistics.median(mops), 4)
            row["mops_min"] = round(min(mops), 4)
            row["mops_max"] = round(max(mops), 4)
            row["ops"] = ok[0].get("ops")
            # memory: repetition 0 of each process (later in-process reps reuse freed memory)
            bpe = [
                r["bytes_per_entry"] for r in ok if r.get("rep", 0) == 0 and "bytes_per_entry" in r
            ]
            if bpe:
                row["bytes_per_entry"] = round(statistics.median(bpe), 2)
                row["bytes_per_entry_min"] = round(min(bpe), 2)
                row["bytes_per_entry_max"] = round(max(bpe), 2)
            for fld in ("seconds", "sys_s", "minflt", "entries"):
                vals = [r[fld] for r in ok if fld in r]
                if vals:
                    med = statistics.median(vals)
                    row[fld] = int(med) if float(med).is_integer() else round(med, 6)
        out.append(row)
    return out


# ------------------------------------------------------------------------------------------------
# report


def fmt(x: float | None, nd: int = 1) -> str:
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.{nd}f}"


def cell_text(row: dict | None, reps: bool) -> str:
    if row is None:
        return "–"
    if "mops" not in row:
        return "FAIL"
    s = f"**{fmt(row['mops'])}**"
    if reps and row.get("runs", 0) > 1:
        s += f" ({fmt(row['mops_min'])}–{fmt(row['mops_max'])})"
    if row.get("failures"):
        s += f" ({row['failures']} failed)"
    return s


def pick_ref_threads(threads: list[int], nproc: int) -> int:
    if 2 in threads:
        return 2
    fit = [t for t in threads if t <= nproc]
    return max(fit) if fit else threads[0]


def write_markdown(rows: list[dict], meta: dict, path: Path) -> None:
    idx = {(r["map"], r["workload"], r["threads"]): r for r in rows}
    maps_present = [m for m in ALL_MAPS + EXTRA_MAPS if any(r["map"] == m for r in rows)]
    wl_present = [w for w in ALL_WORKLOADS if any(r["workload"] == w for r in rows)]
    threads = sorted({r["threads"] for r in rows})
    ns = sorted({r["n"] for r in rows})
    nproc = int(meta["machine"].get("nproc") or 2)
    tref = pick_ref_threads(threads, nproc)
    tmax = max(threads)
    reps = meta.get("reps", 1)
    L: list[str] = []
    L.append("# pardict C++ benchmark: pardict::concurrent_map vs peer concurrent maps")
    L.append("")
    L.append(
        f"Generated by `bench/run_cpp.py` on {meta['machine'].get('date', '')}. "
        f"N = {', '.join(f'{n:,}' for n in ns)}; int64 → int64 unless noted; "
        f"{reps} process(es) per cell, interleaved passes; cells: median Mops/s (min–max)."
    )
    L.append(
        f"Threads are pinned to CPU (t mod {nproc}); more threads than CPUs measure oversubscription, "
        "not scaling. Mops/s = operations / (time from barrier release to the last thread's finish)."
    )
    failed = [r for r in rows if r.get("failures")]
    if failed:
        L.append("")
        L.append(
            "**Failed runs:** "
            + "; ".join(
                f"{r['map']} {r['workload']} T={r['threads']}: {', '.join(r.get('failure_messages', []))}"
                for r in failed
            )
        )
    L.append("")

    # --- summary ratios at the reference thread count
    L.append(f"## Summary at {tref} threads")
    L.append("")
    L.append(
        "Ratios of medians. *best peer* = fastest of "
        + ", ".join(PEERS)
        + " in that cell; *limit* = the plain per-thread table (first touch inside the timed phase for inserts),"
        " *raw* = independent random 8-byte loads over an array of the plain table's size (W3, W7l; W4 uses W3's)."
    )
    L.append("")
    L.append(
        "| workload | best peer (Mops) | pardict | pardict_bulk | pardict / best peer | pardict_bulk / best peer "
        "| limit (Mops) | pardict / limit | pardict_bulk / limit | raw (Mops) | pardict_bulk / raw |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for w in wl_present:
        peers = [
            (idx[(m, w, tref)]["mops"], m) for m in PEERS if "mops" in idx.get((m, w, tref), {})
        ]
        best = max(peers) if peers else None
        p1 = idx.get(("pardict", w, tref), {}).get("mops")
        pb = idx.get(("pardict_bulk", w, tref), {}).get("mops")
        lim = idx.get(("plain", w, tref), {}).get("mops")
        raww = "W3" if w == "W4" else w
        raw = idx.get(("raw_read", raww, tref), {}).get("mops")

        def ratio(a, b):
            return f"{a / b:.2f}×" if a and b else "–"

        L.append(
            f"| {w} | {fmt(best[0]) + ' ' + best[1] if best else '–'} | {fmt(p1)} | {fmt(pb)} | "
            f"{ratio(p1, best[0] if best else None)} | {ratio(pb, best[0] if best else None)} | {fmt(lim)} | "
            f"{ratio(p1, lim)} | {ratio(pb, lim)} | {fmt(raw)} | {ratio(pb, raw)} |"
        )
    L.append("")

    # --- against boost::concurrent_flat_map, the strongest peer, at every thread count
    if any(r["map"] in ("boost", "boost_bulk") for r in rows):
        L.append("## pardict vs boost::concurrent_flat_map")
        L.append("")
        L.append(
            "Ratios of medians, same run: pardict / boost (single-key vs single-key) and "
            "pardict_bulk / boost_bulk (`find_many` vs bulk `cvisit`, lookups only). Above 1 = pardict faster."
        )
        L.append("")
        L.append(
            "| workload | "
            + " | ".join(f"pardict / boost T={t}" for t in threads)
            + " | "
            + " | ".join(f"bulk / boost_bulk T={t}" for t in threads)
            + " |"
        )
        L.append("|---|" + "---|" * (2 * len(threads)))
        for w in wl_present:

            def vs(a: str, b: str, t: int) -> str:
                x = idx.get((a, w, t), {}).get("mops")
                y = idx.get((b, w, t), {}).get("mops")
                return f"{x / y:.2f}" if x and y else "–"

            L.append(
                f"| {w} | "
                + " | ".join(vs("pardict", "boost", t) for t in threads)
                + " | "
                + " | ".join(vs("pardict_bulk", "boost_bulk", t) for t in threads)
                + " |"
            )
        L.append("")

    # --- per workload tables
    L.append("## Throughput per workload (Mops/s)")
    for w in wl_present:
        L.append("")
        L.append(f"### {WORKLOAD_TITLE.get(w, w)}")
        L.append("")
        L.append(
            "| map | "
            + " | ".join(
                f"{t} thread{'s' if t > 1 else ''}" + (" (oversubscribed)" if t > nproc else "")
                for t in threads
            )
            + " |"
        )
        L.append("|---|" + "---|" * len(threads))
        for m in maps_present:
            if not any((m, w, t) in idx for t in threads):
                continue
            L.append(
                f"| {MAP_LABEL.get(m, m)} | "
                + " | ".join(cell_text(idx.get((m, w, t)), True) for t in threads)
                + " |"
            )
    L.append("")

    # --- oversubscription / scaling
    if tmax != tref:
        L.append(f"## {tmax}-thread / {tref}-thread throughput")
        L.append("")
        L.append(
            f"Median Mops at {tmax} threads divided by median at {tref} threads "
            "(1.00 = holds up under oversubscription; below 1 = loses throughput)."
        )
        L.append("")
        L.append("| map | " + " | ".join(wl_present) + " |")
        L.append("|---|" + "---|" * len(wl_present))
        for m in maps_present:
            cells = []
            for w in wl_present:
                a = idx.get((m, w, tmax), {}).get("mops")
                b = idx.get((m, w, tref), {}).get("mops")
                c = f"{a / b:.2f}" if a and b else "–"
                cells.append(f"**{c}**" if m in OURS and c != "–" else c)
            L.append(f"| {m} | " + " | ".join(cells) + " |")
        L.append("")
    if 1 in threads and tref != 1:
        L.append(f"## {tref}-thread / 1-thread throughput")
        L.append("")
        L.append("| map | " + " | ".join(wl_present) + " |")
        L.append("|---|" + "---|" * len(wl_present))
        for m in maps_present:
            cells = []
            for w in wl_present:
                a = idx.get((m, w, tref), {}).get("mops")
                b = idx.get((m, w, 1), {}).get("mops")
                cells.append(f"{a / b:.2f}" if a and b else "–")
            L.append(f"| {m} | " + " | ".join(cells) + " |")
        L.append("")

    # --- memory
    L.append("## Peak memory, bytes per entry")
    L.append("")
    L.append(
        "(peak RSS during build + timed phase − RSS right before the map existed) / entries in the map. "
        "Peak = the kernel's VmHWM, reset via /proc/self/clear_refs before the map is built "
        "(falls back to getrusage ru_maxrss where that is not possible). Includes allocator overhead and "
        "the old+new arrays of the last growth step. Lookup workloads include the untimed 2-thread prefill. "
        "The plain table is sized for a load of ≤0.5 on purpose; its W6 tables are per thread."
    )
    L.append("")
    mem_cols = [(w, t) for w in wl_present for t in threads if w in INSERTS] + [
        (w, tref) for w in wl_present if w not in INSERTS and w != "W4"
    ]
    if mem_cols:
        L.append("| map | " + " | ".join(f"{w} T={t}" for w, t in mem_cols) + " |")
        L.append("|---|" + "---|" * len(mem_cols))
        for m in maps_present:
            if m == "raw_read":
                continue
            vals = [idx.get((m, w, t), {}).get("bytes_per_entry") for w, t in mem_cols]
            if all(v is None for v in vals):
                continue
            L.append(f"| {m} | " + " | ".join(fmt(v) for v in vals) + " |")
    L.append("")

    # --- method
    L.append("## Method")
    L.append("")
    L.append(
        "- One process per cell and repetition: `pardict_bench <map> <workload> <threads> <N>`; "
        "the repetitions are separate processes run as interleaved passes over the matrix."
    )
    L.append(
        "- Keys: a bijective splitmix64-style finaliser of a counter (the same keys for every map); "
        "thread t handles indices i ≡ t (mod T), also for random draws. Per-thread splitmix64 + Lemire "
        "reduction inside the timed loop, the same for every map."
    )
    L.append(
        "- Timed: from the release of a spin-then-yield start barrier to the last thread's finish "
        "(steady_clock). Construction, prefill (2 threads, single-key inserts) and checks are untimed."
    )
    L.append(
        "- Every run checks its result (sizes, found counts, returned values, the full key/value set after "
        "inserts and W5, W6 total and every per-key count against a serial count); a wrong result fails the cell."
    )
    L.append(
        "- pardict_bulk: `insert_or_assign_many` (W1, W2, W7i), `find_many` (W3, W4, W7l), "
        "`upsert_many(add)` (W6) in blocks of "
        f"{meta.get('block') or 512} keys per call; W5 has no bulk form."
    )
    L.append(
        "- boost: `try_emplace`, `cvisit`, `insert_or_assign`, `try_emplace_or_visit`; boost_bulk: bulk "
        "`cvisit(first, last, f)` over the same blocks as pardict_bulk (W3, W4, W7l); its visitor is not told "
        "which key it visits, so its values are checked as a sum against the expected sum. Headers: PyPI "
        "`boost-headers` (Debian's Boost 1.81 predates concurrent_flat_map)."
    )
    L.append(
        "- Peers use their default hash (identity `std::hash` for TBB, libcuckoo, std: harmless only "
        "because the keys are pre-mixed). tbb_hm lookups take a `const_accessor`; tbb_um maps to "
        "`std::atomic<int64_t>` for the int64 workloads; absl_sharded = 64 × {std::shared_mutex, "
        "absl::flat_hash_map}, shard = top 6 bits of key·0xD6E8FEB86659FD93."
    )
    L.append(
        "- W6 runs 2N increments (20M at N = 10M) over Zipf(1.0) on 2^20 ranks, inverse-CDF sampled "
        "with a fixed seed; the plain limit uses private per-thread tables and does not merge them."
    )
    L.append("")

    # --- machine
    mi = meta["machine"]
    L.append("## Machine")
    L.append("")
    L.append(
        f"- CPU: {mi.get('cpu_model', '?')}; nproc = {mi.get('nproc')}; AVX-512: {'yes' if mi.get('avx512f') else 'no'}"
    )
    for line in mi.get("lscpu", []):
        L.append(f"  - {line}")
    L.append(f"- Memory: {mi.get('memory')} (swap {mi.get('swap')})")
    L.append(f"- Kernel: {mi.get('kernel')}; OS: {mi.get('os')}")
    L.append(f"- THP: enabled `{mi.get('thp_enabled')}`, defrag `{mi.get('thp_defrag')}`")
    L.append(
        f"- Compiler: {mi.get('compiler')} (binary built with GCC {mi.get('binary_compiler')}), "
        "-O3 -march=native -DNDEBUG"
    )
    if mi.get("packages"):
        L.append(f"- Peer packages: {'; '.join(mi['packages'])}")
    L.append(f"- Binary: `{meta.get('binary')}`; repo: {mi.get('git')}")
    L.append(
        f"- Load average at start: {mi.get('loadavg_start')}; at end: {meta.get('loadavg_end', '?')}"
    )
    L.append(f"- Date: {mi.get('date')}; matrix wall time: {meta.get('wall_s', 0):.0f} s")
    L.append("")
    path.write_text("\n".join(L))


# ------------------------------------------------------------------------------------------------
# chart


def chart_data(rows: list[dict], tref: int):
    idx = {(r["map"], r["workload"], r["threads"]): r.get("mops") for r in rows}
    wls = [
        w for w in ALL_WORKLOADS if any(r["workload"] == w and r["threads"] == tref for r in rows)
    ]
    maps = [
        m
        for m in ALL_MAPS + EXTRA_MAPS
        if any(r["map"] == m and r["threads"] == tref for r in rows)
    ]
    return wls, maps, idx


COLORS = {
    "pardict": "#d62728",
    "pardict_bulk": "#ff7f0e",
    "boost": "#bcbd22",
    "boost_bulk": "#dbdb8d",
    "tbb_hm": "#1f77b4",
    "tbb_um": "#aec7e8",
    "cuckoo": "#2ca02c",
    "absl_sharded": "#9467bd",
    "std_mutex": "#8c564b",
    "plain": "#7f7f7f",
    "plain_touched": "#c7c7c7",
    "raw_read": "#17becf",
}


def plot_matplotlib(rows: list[dict], tref: int, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return False
    wls, maps, idx = chart_data(rows, tref)
    if not wls:
        return False
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(wls)), 5))
    width = 0.85 / max(1, len(maps))
    for j, m in enumerate(maps):
        xs, ys = [], []
        for i, w in enumerate(wls):
            v = idx.get((m, w, tref))
            if v:
                xs.append(i - 0.425 + width * (j + 0.5))
                ys.append(v)
        ax.bar(
            xs,
            ys,
            width,
            label=m,
            color=COLORS.get(m),
            edgecolor="black" if m in OURS else None,
            linewidth=0.6,
        )
    ax.set_xticks(range(len(wls)))
    ax.set_xticklabels(wls)
    ax.set_yscale("log")
    ax.set_ylabel("Mops/s (log scale)")
    ns = sorted({r["n"] for r in rows})
    ax.set_title(
        f"pardict_bench, {tref} threads, N = {', '.join(f'{n:,}' for n in ns)}: median Mops/s per workload"
    )
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_svg(rows: list[dict], tref: int, path: Path) -> bool:
    import math

    wls, maps, idx = chart_data(rows, tref)
    vals = [v for v in idx.values() if v]
    if not wls or not vals:
        return False
    lo = 10 ** math.floor(math.log10(max(min(vals), 1e-3)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    W, H, left, right, top, bottom = 160 * len(wls) + 260, 440, 60, 220, 40, 40
    pw, ph = W - left - right, H - top - bottom

    def y(v):
        return top + ph * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    s = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="13">pardict_bench, {tref} threads: median Mops/s per workload '
        "(log scale)</text>",
    ]
    d = lo
    while d <= hi * 1.0001:
        yy = y(d)
        s.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>')
        s.append(f'<text x="{left - 5}" y="{yy + 4:.1f}" text-anchor="end">{d:g}</text>')
        d *= 10
    gw = pw / len(wls)
    bw = gw * 0.85 / max(1, len(maps))
    for i, w in enumerate(wls):
        s.append(
            f'<text x="{left + gw * (i + 0.5):.1f}" y="{top + ph + 18}" text-anchor="middle">{w}</text>'
        )
        for j, m in enumerate(maps):
            v = idx.get((m, w, tref))
            if not v:
                continue
            x0 = left + gw * i + gw * 0.075 + bw * j
            y0 = y(max(v, lo))
            stroke = ' stroke="black" stroke-width="0.8"' if m in OURS else ""
            s.append(
                f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{bw:.1f}" height="{top + ph - y0:.1f}" '
                f'fill="{COLORS.get(m, "#999")}"{stroke}><title>{m} {w}: {v:.2f} Mops/s</title></rect>'
            )
    for j, m in enumerate(maps):
        yy = top + 14 * j
        s.append(
            f'<rect x="{left + pw + 15}" y="{yy}" width="10" height="10" fill="{COLORS.get(m, "#999")}"/>'
        )
        s.append(f'<text x="{left + pw + 30}" y="{yy + 9}">{m}</text>')
    s.append("</svg>")
    path.write_text("\n".join(s))
    return True


def make_chart(rows: list[dict], tref: int) -> str:
    png = RESULTS / "cpp.png"
    for stale in (png, RESULTS / "cpp.svg"):
        stale.unlink(missing_ok=True)
    if plot_matplotlib(rows, tref, png):
        return str(png)
    # matplotlib elsewhere: $PARDICT_BENCH_PYTHON, the repo's .venv, the system Python
    cands = [
        os.environ.get("PARDICT_BENCH_PYTHON", ""),
        str(REPO / ".venv/bin/python"),
        "/usr/bin/python3",
    ]
    me = os.path.abspath(sys.executable)  # venv interpreters are symlinks: compare unresolved paths
    for py in cands:
        if not py or not Path(py).exists() or os.path.abspath(py) == me:
            continue
        try:
            r = subprocess.run(
                [
                    py,
                    str(Path(__file__).resolve()),
                    "--chart-only",
                    "--out",
                    str(RESULTS),
                    "--chart-threads",
                    str(tref),
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
        except Exception:
            continue
        if r.returncode == 0 and png.exists():
            return f"{png} (drawn by {py})"
    svg = RESULTS / "cpp.svg"
    if plot_svg(rows, tref, svg):
        return f"{svg} (matplotlib not available, SVG instead of PNG)"
    return "no chart"


# ------------------------------------------------------------------------------------------------


def parse_list(s: str, allowed: list[str], what: str) -> list[str]:
    items = [x.strip() for x in s.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad:
        sys.exit(f"run_cpp.py: unknown {what}: {', '.join(bad)} (known: {', '.join(allowed)})")
    return items


def main() -> None:
    global RESULTS
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--bin", help="path to pardict_bench (default: newest build/*/bench/pardict_bench)"
    )
    ap.add_argument(
        "--n", type=int, default=None, help="keys per run (default 10,000,000; --quick: 1,000,000)"
    )
    ap.add_argument("--maps", default=",".join(ALL_MAPS), help="comma list (also: plain_touched)")
    ap.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    ap.add_argument("--threads", default="1,2,8")
    ap.add_argument(
        "--reps", type=int, default=None, help="processes per cell (default 3; --quick: 1)"
    )
    ap.add_argument(
        "--inner-reps",
        type=int,
        default=1,
        help="repetitions inside each process (lookups reuse one prefilled map); default 1",
    )
    ap.add_argument(
        "--block", type=int, default=None, help="keys per bulk call for pardict_bulk (default 512)"
    )
    ap.add_argument(
        "--timeout", type=float, default=None, help="seconds per process (default scales with N)"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: N = 1M, 1 repetition")
    ap.add_argument("--out", default=str(RESULTS), help="results directory (default bench/results)")
    ap.add_argument(
        "--report-only", action="store_true", help="rebuild cpp.json/md/png from raw/cpp_raw.jsonl"
    )
    ap.add_argument("--chart-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--chart-threads", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    RESULTS = Path(args.out).resolve()

    if args.chart_only:  # used to re-run the chart in the repo's .venv
        rows = json.loads((RESULTS / "cpp.json").read_text())
        sys.exit(0 if plot_matplotlib(rows, args.chart_threads, RESULTS / "cpp.png") else 1)

    args.n = args.n or (1_000_000 if args.quick else 10_000_000)
    args.reps = args.reps or (1 if args.quick else 3)
    args.maps = parse_list(args.maps, ALL_MAPS + EXTRA_MAPS, "map")
    args.workloads = parse_list(args.workloads, ALL_WORKLOADS, "workload")
    args.threads = sorted({int(x) for x in args.threads.split(",") if x.strip()})
    if args.timeout is None:
        args.timeout = max(120.0, 60.0 + 30.0 * args.n / 1e6)

    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        raw = [
            json.loads(line)
            for line in (RESULTS / "raw" / "cpp_raw.jsonl").read_text().splitlines()
            if line.strip()
        ]
        old = {}
        if (RESULTS / "cpp_meta.json").exists():
            old = json.loads((RESULTS / "cpp_meta.json").read_text())
        meta = old or {"machine": machine_info({}), "reps": None}
        binary = meta.get("binary", "")
    else:
        binary = find_binary(args.bin)
        info = binary_info(binary)
        built = info["maps"]
        missing = [m for m in args.maps if m not in built]
        if missing:
            print(
                f"run_cpp.py: not built into {binary}, skipped: {', '.join(missing)}",
                file=sys.stderr,
            )
        meta = {
            "machine": machine_info(info),
            "binary": str(binary),
            "n": args.n,
            "reps": args.reps,
            "inner_reps": args.inner_reps,
            "threads": args.threads,
            "block": args.block,
            "maps_skipped_not_built": missing,
            "timeout_s": args.timeout,
        }
        print(
            f"run_cpp.py: {binary}\n  maps {args.maps}\n  workloads {args.workloads} threads {args.threads} "
            f"N={args.n:,} reps={args.reps}",
            file=sys.stderr,
        )
        t0 = time.monotonic()
        raw = run_matrix(args, binary, built)
        meta["wall_s"] = time.monotonic() - t0
        meta["loadavg_end"] = machine.read("/proc/loadavg")

    rows = aggregate(raw)
    if meta.get("reps") is None:
        meta["reps"] = max((r.get("runs", 0) + r.get("failures", 0) for r in rows), default=1)
    (RESULTS / "cpp.json").write_text(json.dumps(rows, indent=1) + "\n")
    (RESULTS / "cpp_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    threads = sorted({r["threads"] for r in rows}) or [2]
    nproc = int(meta["machine"].get("nproc") or 2)
    tref = pick_ref_threads(threads, nproc)
    write_markdown(rows, meta, RESULTS / "cpp.md")
    chart = make_chart(rows, tref)
    nfail = sum(r.get("failures", 0) for r in rows)
    print(
        f"run_cpp.py: wrote {RESULTS / 'cpp.json'}, {RESULTS / 'cpp.md'}, {chart}; "
        f"{len(rows)} cells, {nfail} failed runs",
        file=sys.stderr,
    )
    sys.exit(1 if nfail else 0)


if __name__ == "__main__":
    main()
