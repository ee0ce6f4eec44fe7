#!/usr/bin/env python3
"""The seed scenario: fill a float64 -> float32[:] dictionary from a numba prange loop.

    @njit(parallel=True)
    def seed(n):
        d = Dict.empty(types.float64, types.float32[:])
        v = np.array([0.1, 0.2], dtype=np.float32)
        for i in prange(n):
            d[float(i)] = v
        return d

1. With numba.typed.Dict (not thread-safe), each n in its own subprocess at numba's default thread
   count: how did it end (exit code, signal, last line of stderr), and if it survived, what did it
   return (length vs n, missing keys, wrong values)?
2. With pardict.Dict at 1, 2 and 8 numba threads (a subprocess with NUMBA_NUM_THREADS=8): time
   the fill, then check the length and every key and value exactly. Next to it, numba.typed.Dict
   filled by the same loop with `range` on one thread (its only safe use).

    .venv/bin/python scripts/demo_seed.py                 # n = 100k, 1M (typed.Dict); 1M, 10M (pardict)
    .venv/bin/python scripts/demo_seed.py --quick         # smaller sizes, a few seconds
    .venv/bin/python scripts/demo_seed.py --budget 30     # allow up to ~30 s per 10M pardict fill

Exit code 0 only if every pardict check passed (typed.Dict's outcome is what it is).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED_SRC = """\
@njit(parallel=True)
def seed(n):
    d = {cls}.empty(types.float64, types.float32[:])
    v = np.array([0.1, 0.2], dtype=np.float32)
    for i in prange(n):
        d[float(i)] = v
    return d"""


# ================================================================================================
# children (each prints JSON lines on stdout, flushed, so the parent sees how far it got)


def _emit(**kw):
    print(json.dumps(kw), flush=True)


def _kernels():
    import numpy as np
    from numba import njit, prange, types
    from numba.typed import Dict as TDict

    import pardict

    PDict = pardict.Dict

    @njit(parallel=True)
    def seed_typed(n):
        d = TDict.empty(types.float64, types.float32[:])
        v = np.array([0.1, 0.2], dtype=np.float32)
        for i in prange(n):
            d[float(i)] = v
        return d

    @njit(parallel=True)
    def seed_pardict(n):
        d = PDict.empty(types.float64, types.float32[:])
        v = np.array([0.1, 0.2], dtype=np.float32)
        for i in prange(n):
            d[float(i)] = v
        return d

    @njit
    def seed_typed_serial(n):
        d = TDict.empty(types.float64, types.float32[:])
        v = np.array([0.1, 0.2], dtype=np.float32)
        for i in range(n):
            d[float(i)] = v
        return d

    @njit
    def entry_state(d, i):
        """0 when key float(i) holds [0.1f, 0.2f], 1 when it is missing, 2 when its value differs."""
        k = float(i)
        if k not in d:
            return 1
        a = d[k]
        return 0 if a.size == 2 and a[0] == np.float32(0.1) and a[1] == np.float32(0.2) else 2

    @njit
    def check_serial(d, n):
        """(keys of 0..n-1 missing, values != [0.1f, 0.2f], keys outside 0..n-1)."""
        missing = 0
        wrong = 0
        for i in range(n):
            st = entry_state(d, i)
            missing += st == 1
            wrong += st == 2
        extra = 0
        for k in d.keys():
            if not (k >= 0 and k < n and k == np.floor(k)):
                extra += 1
        return missing, wrong, extra

    @njit(parallel=True)
    def check_parallel(d, n):
        """(missing, wrong) as check_serial, for a dictionary that is safe to read from prange."""
        missing = 0
        wrong = 0
        for i in prange(n):
            st = entry_state(d, i)
            missing += st == 1
            wrong += st == 2
        return missing, wrong

    return seed_typed, seed_pardict, seed_typed_serial, check_serial, check_parallel


def child_typed_prange(n: int) -> int:
    import numba

    seed_typed, _, _, check_serial, _ = _kernels()
    _emit(
        stage="start",
        threads=numba.get_num_threads(),
        layer_env=os.environ.get("NUMBA_THREADING_LAYER"),
    )
    t0 = time.perf_counter()
    d = seed_typed(n)  # includes compilation; nothing here is a measurement
    _emit(
        stage="filled",
        seconds=round(time.perf_counter() - t0, 3),
        threading_layer=numba.threading_layer(),
    )
    length = len(d)
    _emit(stage="len", len=length)
    missing, wrong, extra = check_serial(d, n)
    _emit(stage="checked", len=length, missing=int(missing), wrong=int(wrong), extra=int(extra))
    return 0


def child_pardict(sizes: list[int], threads: list[int], budget: float) -> int:
    import numba

    _, seed_pardict, seed_typed_serial, check_serial, check_parallel = _kernels()
    t0 = time.perf_counter()
    seed_pardict(1000)
    seed_typed_serial(1000)
    check_parallel(seed_pardict(10), 10)
    check_serial(seed_typed_serial(10), 10)
    _emit(
        stage="compiled",
        seconds=round(time.perf_counter() - t0, 2),
        threading_layer=numba.threading_layer(),
        numba_num_threads=numba.config.NUMBA_NUM_THREADS,
    )
    est: dict = {}
    for n in sizes:
        for t in threads:
            if t > numba.config.NUMBA_NUM_THREADS:
                _emit(
                    kind="pardict",
                    n=n,
                    threads=t,
                    skipped=f"NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}",
                )
                continue
            prev = est.get(t)
            if prev is not None and prev[1] * n / prev[0] * 1.2 > budget:
                _emit(
                    kind="pardict",
                    n=n,
                    threads=t,
                    skipped=f"estimated {prev[1] * n / prev[0]:.1f} s from n={prev[0]:,} > budget {budget:g} s",
                )
                continue
            numba.set_num_threads(t)
            t0 = time.perf_counter()
            d = seed_pardict(n)
            secs = time.perf_counter() - t0
            est[t] = (n, secs)
            numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
            length = len(d)
            missing, wrong = check_parallel(d, n)
            ok = (
                length == n and missing == 0 and wrong == 0
            )  # len == n and all n keys present: no extras
            _emit(
                kind="pardict",
                n=n,
                threads=t,
                seconds=round(secs, 4),
                len=length,
                missing=int(missing),
                wrong=int(wrong),
                ok=bool(ok),
            )
            del d
        # the reference: typed.Dict, same fill with range on one thread
        prev = est.get("typed")
        if prev is not None and prev[1] * n / prev[0] * 1.2 > budget:
            _emit(kind="typed_serial", n=n, threads=1, skipped="over budget")
            continue
        t0 = time.perf_counter()
        d = seed_typed_serial(n)
        secs = time.perf_counter() - t0
        est["typed"] = (n, secs)
        length = len(d)
        missing, wrong, extra = check_serial(d, n)
        _emit(
            kind="typed_serial",
            n=n,
            threads=1,
            seconds=round(secs, 4),
            len=length,
            missing=int(missing),
            wrong=int(wrong),
            ok=bool(length == n and missing == 0 and wrong == 0 and extra == 0),
        )
        del d
    return 0


# ================================================================================================
# parent


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except Exception:
        return f"signal {-rc}"


def _child(args: list[str], env: dict, timeout: float):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child"] + args
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc = None
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
    lines = []
    for rec in out.splitlines():
        if rec.startswith("{"):
            try:
                lines.append(json.loads(rec))
            except json.JSONDecodeError:
                pass
    return rc, lines, err, time.monotonic() - t0


def _last_err_line(err: str) -> str:
    lines = [rec.strip() for rec in err.splitlines() if rec.strip()]
    # skip numba's performance/type-safety warnings that can trail a crash message
    for rec in reversed(lines):
        if "Warning" not in rec and not rec.startswith("warnings.warn"):
            return rec[:200]
    return lines[-1][:200] if lines else ""


def report_typed(n: int, timeout: float, numba_threads: int | None = None) -> dict:
    env = dict(os.environ)
    if numba_threads is not None:
        env["NUMBA_NUM_THREADS"] = str(numba_threads)
    rc, lines, err, wall = _child(["typed_prange", str(n)], env, timeout)
    st = {rec["stage"]: rec for rec in lines if "stage" in rec}
    threads = st.get("start", {}).get("threads", "?")
    stage = lines[-1]["stage"] if lines else "before start"
    head = f"   n = {n:>11,}  threads = {threads}: "
    last = _last_err_line(err)
    if rc is None:
        msg = f"HUNG: no result after {timeout:g} s (killed); last stage reached: {stage}"
    elif rc < 0:
        msg = f"killed by {_signal_name(rc)} (exit code {rc}) after {wall:.1f} s, during {_next_stage(stage)}"
    elif rc != 0:
        msg = f"exited with code {rc} after {wall:.1f} s, during {_next_stage(stage)}"
    else:
        c = st.get("checked", {})
        ln = c.get("len", st.get("len", {}).get("len"))
        parts = [
            f"survived; len(d) = {ln:,} (expected {n:,}: "
            + ("right" if ln == n else f"{n - ln:,} lost" if ln < n else f"{ln - n:,} too many")
            + ")"
        ]
        if c:
            parts.append(
                f"missing keys {c['missing']:,}, wrong values {c['wrong']:,}, keys outside 0..n-1 {c['extra']:,}"
            )
        msg = "; ".join(parts)
    print(head + msg)
    if last and (rc is None or rc != 0):
        print(f"   {'':>11}  last line of stderr: {last!r}")
    elif rc == 0 and "checked" in st and (st["checked"]["wrong"] or st["checked"]["missing"]):
        print(
            f"   {'':>11}  the dictionary is wrong although the process did not crash"
            + (
                ": typed.Dict stored views of v without its owner (v reaches the prange body without"
                " its MemInfo), so they dangle once the function returns"
                if st["checked"]["wrong"]
                else ""
            )
        )
    return {"n": n, "rc": rc, "stage": stage, "stderr": last}


def _next_stage(stage: str) -> str:
    return {
        "before start": "import/compile",
        "start": "the prange fill",
        "filled": "len()",
        "len": "the read-back check",
    }.get(stage, stage)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        what = sys.argv[2]
        if what == "typed_prange":
            return child_typed_prange(int(sys.argv[3]))
        if what == "pardict":
            sizes = [int(x) for x in sys.argv[3].split(",")]
            threads = [int(x) for x in sys.argv[4].split(",")]
            return child_pardict(sizes, threads, float(sys.argv[5]))
        raise SystemExit(f"unknown child {what}")

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="typed.Dict at 100k only; pardict at 200k and 1M"
    )
    ap.add_argument(
        "--typed-n",
        default=None,
        help="sizes for the typed.Dict prange runs (default 100000,1000000)",
    )
    ap.add_argument("--n", default=None, help="sizes for pardict (default 1000000,10000000)")
    ap.add_argument(
        "--threads", default="1,2,8", help="numba thread counts for pardict (default 1,2,8)"
    )
    ap.add_argument(
        "--budget",
        type=float,
        default=10.0,
        help="skip a larger pardict size at a thread count when its estimated fill time exceeds this (s)",
    )
    ap.add_argument(
        "--no-one-thread",
        action="store_true",
        help="skip the extra typed.Dict prange run with NUMBA_NUM_THREADS=1",
    )
    ap.add_argument(
        "--timeout", type=float, default=120.0, help="seconds per typed.Dict subprocess"
    )
    args = ap.parse_args()

    typed_ns = [
        int(x) for x in (args.typed_n or ("100000" if args.quick else "100000,1000000")).split(",")
    ]
    sizes = [
        int(x)
        for x in (args.n or ("200000,1000000" if args.quick else "1000000,10000000")).split(",")
    ]
    threads = [int(x) for x in args.threads.split(",")]

    print("The seed program (with Dict = numba.typed.Dict, then pardict.Dict):\n")
    print("    " + SEED_SRC.format(cls="Dict").replace("\n", "\n    "))
    print()
    print(
        f"1. numba.typed.Dict written from prange (one subprocess per n, numba's default thread count"
        f"{', NUMBA_NUM_THREADS=' + os.environ['NUMBA_NUM_THREADS'] if 'NUMBA_NUM_THREADS' in os.environ else ''}):"
    )
    for n in typed_ns:
        report_typed(n, args.timeout)
    if not args.no_one_thread:
        print("   The same with NUMBA_NUM_THREADS=1 (no race: shows what typed.Dict keeps of v):")
        report_typed(typed_ns[0], args.timeout, numba_threads=1)
    print()

    print(
        f"2. pardict.Dict, same program, numba threads {args.threads} (one subprocess, NUMBA_NUM_THREADS=8);"
    )
    print("   checked: len(d) == n and d[float(i)] == [0.1f, 0.2f] for every i in range(n).")
    print(
        "   Reference: numba.typed.Dict, same fill with `range` instead of `prange`, on one thread.\n"
    )
    env = dict(os.environ)
    env["NUMBA_NUM_THREADS"] = str(max(8, max(threads)))
    timeout = 120 + 20 * args.budget * len(sizes) * (len(threads) + 1)
    rc, lines, err, wall = _child(
        ["pardict", ",".join(map(str, sizes)), ",".join(map(str, threads)), str(args.budget)],
        env,
        timeout,
    )
    comp = next((rec for rec in lines if rec.get("stage") == "compiled"), {})
    results = [rec for rec in lines if "kind" in rec]
    ref = {rec["n"]: rec for rec in results if rec["kind"] == "typed_serial" and "seconds" in rec}
    print(
        f"   {'dictionary':<30s} {'n':>11s} {'threads':>7s} {'seconds':>9s} {'Mops/s':>8s} {'vs typed 1T':>11s}  check"
    )
    all_ok = True
    for rec in results:
        name = "pardict.Dict, prange" if rec["kind"] == "pardict" else "typed.Dict, range (serial)"
        if "skipped" in rec:
            print(
                f"   {name:<30s} {rec['n']:>11,} {rec['threads']:>7} {'':>9s} {'':>8s} {'':>11s}  skipped: {rec['skipped']}"
            )
            continue
        mops = rec["n"] / rec["seconds"] / 1e6
        r = ref.get(rec["n"])
        vs = f"{r['seconds'] / rec['seconds']:.2f}x" if r and rec["kind"] == "pardict" else ""
        if rec["ok"]:
            chk = "ok"
        else:
            chk = f"FAIL: len {rec['len']:,}, missing {rec['missing']:,}, wrong {rec['wrong']:,}"
        if rec["kind"] == "pardict":
            all_ok = all_ok and rec["ok"]
        print(
            f"   {name:<30s} {rec['n']:>11,} {rec['threads']:>7} {rec['seconds']:>9.3f} {mops:>8.2f} {vs:>11s}  {chk}"
        )
    n_pardict = sum(1 for rec in results if rec["kind"] == "pardict" and "seconds" in rec)
    if rc != 0 or n_pardict == 0:
        all_ok = False
        how = (
            "timed out"
            if rc is None
            else f"killed by {_signal_name(rc)}"
            if rc < 0
            else f"exit code {rc}"
        )
        print(
            f"\n   pardict subprocess failed ({how}); last line of stderr: {_last_err_line(err)!r}"
        )
    print()
    if comp:
        print(
            f"   (compile/warm-up {comp['seconds']} s, untimed; threading layer {comp['threading_layer']}; "
            f"'vs typed 1T' = typed.Dict serial seconds / pardict seconds at the same n)"
        )
    print(
        "   Note: an array made before a prange loop reaches the loop body without its owner, so pardict "
        "stores a copy of v (one per thread, shared by the entries that thread stores); typed.Dict in "
        "the serial loop shares the one array v."
    )
    print()
    print_first_use()
    print()
    print("pardict checks: " + ("all passed" if all_ok else "FAILED"))
    return 0 if all_ok else 1


def print_first_use():
    """First use in a fresh process (bench/bench_first_use.py, one warm process per case)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from bench_first_use import run_once

    print("First use in a fresh process: import, Dict.empty(int64, float64), d[k] = v, d[k], len,")
    print("items() — seconds beyond `import numba` (bytecode caches warm):")
    for case in ("pardict int64->float64", "typed.Dict int64->float64"):
        run_once(case)  # writes the bytecode caches
        r = run_once(case)
        print(f"   {case:<28} {r['import'] + r['ops']:.3f} s")


if __name__ == "__main__":
    sys.exit(main())
