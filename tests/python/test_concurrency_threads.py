"""pardict.Dict shared by Python threads: nogil jitted code and interpreter operations at once.

Threads start together on a threading.Barrier; every result is checked exactly against what the
threads did. A thread that does not finish within JOIN_TIMEOUT fails the test (hang).
"""

import gc
import threading

import numpy as np
import pytest
from numba import njit
from numba.core import types

import pardict

T = 4
JOIN_TIMEOUT = 120


def run_threads(target, nthreads=T, args=()):
    """Run target(tid, *args) in nthreads threads started together; re-raise the first error."""
    barrier = threading.Barrier(nthreads)
    errors = []

    def body(tid):
        try:
            barrier.wait(timeout=JOIN_TIMEOUT)
            target(tid, *args)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((tid, e))

    threads = [threading.Thread(target=body, args=(tid,)) for tid in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    hung = [t for t in threads if t.is_alive()]
    assert not hung, f"{len(hung)} threads still running after {JOIN_TIMEOUT} s (hang)"
    if errors:
        tid, e = errors[0]
        raise AssertionError(f"thread {tid} raised {e!r} ({len(errors)} threads raised)") from e


@pytest.fixture
def no_leaks():
    gc.collect()
    d0, r0 = pardict.live_dicts(), pardict.live_refs()
    yield
    gc.collect()
    assert (pardict.live_dicts(), pardict.live_refs()) == (d0, r0), "tables or references leaked"


# ---- (a) nogil jitted code from several Python threads -------------------------------------------


@njit(nogil=True)
def nogil_work(d, tid, n, m, wins, sd_got):
    """Own keys: insert, read, pop half. Shared keys 0..m-1: insert (count wins). Shared keys
    m..2m-1: setdefault (record what each call returned). Returns the number of wrong reads."""
    base = (tid + 1) * 1_000_000
    offer = tid * n
    bad = 0
    for j in range(n):
        d[base + j] = base + 2 * j
        k = j % m
        if d.insert(k, offer + j):
            wins[tid, j] = 1
        sd_got[tid, j] = d.setdefault(m + k, offer + j)
    for j in range(n):
        if (
            (base + j) not in d
            or d.get(base + j, -1) != base + 2 * j
            or d[base + j] != base + 2 * j
        ):
            bad += 1
    for j in range(0, n, 2):
        if d.pop(base + j) != base + 2 * j:
            bad += 1
    for j in range(0, n, 2):
        if (base + j) in d or d.pop(base + j, -7) != -7:
            bad += 1
    return bad


def test_nogil_njit_from_threads(no_leaks):
    n, m = 20_000, 37
    d = pardict.Dict.empty(types.int64, types.int64)
    wins = np.zeros((T, n), np.uint8)
    sd_got = np.full((T, n), -1, np.int64)
    bad = np.zeros(T, np.int64)
    nogil_work(
        pardict.Dict.empty(types.int64, types.int64),
        0,
        10,
        3,
        np.zeros((1, 10), np.uint8),
        np.zeros((1, 10), np.int64),
    )  # compile outside

    def work(tid):
        bad[tid] = nogil_work(d, tid, n, m, wins, sd_got)

    run_threads(work)
    assert bad.tolist() == [0] * T
    assert len(d) == T * (n // 2) + 2 * m
    # Exactly one insert per shared key succeeded, and the key holds the winner's value.
    offers = np.arange(T)[:, None] * n + np.arange(n)[None, :]
    keys = np.arange(n)[None, :] % m
    for k in range(m):
        winners = offers[(keys == k).repeat(T, 0) & (wins == 1)]
        assert winners.size == 1, f"key {k}: {winners.size} inserts succeeded"
        assert d[k] == winners[0]
    # Every setdefault call returned the one stored value, offered by some caller of that key.
    for k in range(m):
        stored = d[m + k]
        mask = (keys == k).repeat(T, 0)
        assert (sd_got[mask] == stored).all(), f"key {m + k}: setdefault results disagree"
        assert stored in set(offers[mask].tolist())
    for tid in range(T):
        base = (tid + 1) * 1_000_000
        for j in (1, 3, n - 1):
            assert d[base + j] == base + 2 * j
        assert base not in d


# ---- (b) interpreter operations from several Python threads ---------------------------------------


def test_interpreter_threads(no_leaks):
    n, m = 1500, 11
    d = pardict.Dict.empty(types.int64, types.int64)
    wins = [[] for _ in range(T)]
    got = [[] for _ in range(T)]
    bad = [[] for _ in range(T)]

    def work(tid):
        base = (tid + 1) * 100_000
        for j in range(n):
            d[base + j] = j
            if d.insert(j % m, tid * n + j):
                wins[tid].append((j % m, tid * n + j))
            got[tid].append((j % m, d.setdefault(m + j % m, tid * n + j)))
            if d[base + j] != j or d.get(base + j) != j or (base + j) not in d:
                bad[tid].append(("read", j))
        for j in range(0, n, 2):
            v = d.pop(base + j)
            if v != j:
                bad[tid].append(("pop", j, v))
        for j in range(1, n, 4):
            del d[base + j]
            if (base + j) in d or d.get(base + j) is not None:
                bad[tid].append(("del", j))

    run_threads(work)
    assert bad == [[]] * T
    n_left = n - len(range(0, n, 2)) - len(range(1, n, 4))
    assert len(d) == T * n_left + 2 * m
    all_wins = sorted(w for ws in wins for w in ws)
    assert [k for k, _ in all_wins] == list(range(m)), "not exactly one winning insert per key"
    for k, v in all_wins:
        assert d[k] == v
    for k in range(m):
        stored = d[m + k]
        seen = {v for g in got for kk, v in g if kk == k}
        assert seen == {stored}, f"setdefault on key {m + k} returned {seen}, stored {stored}"
    expect = {}
    for tid in range(T):
        base = (tid + 1) * 100_000
        for j in range(n):
            if j % 2 == 1 and j % 4 != 1:
                expect[base + j] = j
    own = {k: v for k, v in d.items() if k >= 2 * m}
    assert own == expect


# ---- (c) iteration in one thread while others write -----------------------------------------------


@njit(nogil=True)
def churn_writer(d, lo, n, rounds):
    for _r in range(rounds):
        for k in range(lo, lo + n):
            d[k] = -k
        for k in range(lo, lo + n):
            d.pop(k)


@njit(nogil=True)
def nogil_iterate(d, p, hi):
    """Iterate keys; returns (count, duplicates, invalid, prepopulated keys missed)."""
    seen = np.zeros(hi, np.uint8)
    count = dups = invalid = 0
    for k, v in d.items():
        count += 1
        if k < 0 or k >= hi or (k < p and v != k) or (k >= p and v != -k):
            invalid += 1
            continue
        if seen[k]:
            dups += 1
        seen[k] = 1
    missed = 0
    for k in range(p):
        if not seen[k]:
            missed += 1
    return count, dups, invalid, missed


def test_iteration_while_other_threads_write(no_leaks):
    p, n = 3000, 2000
    hi = p + (T - 1) * n
    d = pardict.Dict.empty(types.int64, types.int64)
    for k in range(0, p):
        d[k] = k
    results = []
    churn_writer(pardict.Dict.empty(types.int64, types.int64), 0, 2, 1)  # compile outside
    nogil_iterate(d, p, hi)

    def work(tid):
        if tid == 0:  # the reader: interpreter loops and jitted loops, repeatedly
            for _ in range(20):
                ks = list(d)
                items = list(d.items())
                results.append(
                    (
                        "interp",
                        len(ks),
                        len(set(ks)),
                        len(items),
                        len(dict(items)),
                        set(range(p)) <= set(ks),
                        all((v == k) if k < p else (v == -k) for k, v in items),
                        all(0 <= k < hi for k in ks),
                    )
                )
                results.append(("njit",) + tuple(nogil_iterate(d, p, hi)))
        else:
            churn_writer(d, p + (tid - 1) * n, n, 30)

    run_threads(work)
    assert len(d) == p
    for r in results:
        if r[0] == "interp":
            _, nk, nuniq, nit, nituniq, all_pre, vals_ok, keys_ok = r
            assert nk == nuniq and nit == nituniq, "duplicate elements in an iteration"
            assert p <= nk <= hi and p <= nit <= hi
            assert all_pre and vals_ok and keys_ok
        else:
            _, count, dups, invalid, missed = r
            assert (dups, invalid, missed) == (0, 0, 0)
            assert p <= count <= hi


def test_same_thread_mutation_during_iteration_raises(no_leaks):
    d = pardict.Dict.empty(types.int64, types.int64)
    for k in range(10):
        d[k] = k
    with pytest.raises(RuntimeError):
        for k in d:
            d[100 + k] = 0
    with pytest.raises(RuntimeError):
        for k in d.keys():
            del d[k]
    # replacing a value of an existing key is not a key change
    for _k in list(d):
        pass
    for k in d:
        d[k] = 5


# ---- (d) array values replaced by some threads while others read them -----------------------------


@njit(nogil=True)
def replace_arrays(d, tid, n, m):
    for j in range(n):
        d[j % m] = np.full(8, float(tid * n + j))


@njit(nogil=True)
def read_arrays(d, n, m):
    """Count reads that saw a torn or unknown array."""
    bad = 0
    for j in range(n):
        a = d[j % m]
        x = a[0]
        if a.shape[0] != 8:
            bad += 1
            continue
        for i in range(8):
            if a[i] != x:
                bad += 1
                break
    return bad


def test_array_values_replaced_while_read(no_leaks):
    n, m = 20_000, 3
    d = pardict.Dict.empty(types.int64, types.float64[:])
    for k in range(m):
        d[k] = np.full(8, -1.0)
    bad = np.zeros(T, np.int64)
    refs0 = pardict.live_refs()
    # Threads leave together: a thread that exited early would hand its epoch slot, and with it
    # its stripe of remembered views, to a writer that starts later.
    all_done = threading.Barrier(T)

    def work(tid, d=d):  # d bound here: the test deletes its own name for d at the end
        try:
            if tid % 2:
                bad[tid] = read_arrays(d, n, m)
            else:
                replace_arrays(d, tid, n, m)
                for j in range(200):  # interpreter readers and writers as well
                    a = d[j % m]
                    if not (a == a[0]).all():
                        bad[tid] += 1
                    d[j % m] = np.full(8, float(10**9 + j))
        finally:
            all_done.wait(timeout=JOIN_TIMEOUT)

    run_threads(work)
    assert bad.tolist() == [0] * T
    assert len(d) == m
    # every replaced array was released; each writer thread's last view MemInfo stays remembered
    # for its next store (pardict.numba.convert, "Arrays as one word"), in its own stripe
    writers = len(range(0, T, 2))
    assert pardict.live_refs() == refs0 + writers, "replaced arrays were not released"
    for k in range(m):
        a = d[k]
        assert (a == a[0]).all()
    del d, a


# ---- fork while another thread grows the dict ----------------------------------------------------


@njit(nogil=True)
def grow_until(d, lo, stop):
    """Insert fresh keys from lo on until stop[0] is set; returns how many."""
    i = lo
    while stop[0] == 0:
        d[i] = i
        i += 1
    return i - lo


def _wait_child(pid, timeout):
    """The child's exit status, or None if it had to be killed after timeout seconds."""
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


@pytest.mark.parametrize("bulk", [False, True], ids=["njit-loop", "set_many"])
def test_fork_while_a_thread_grows_the_dict(bulk):
    """os.fork() while another thread inserts into the same dict (a nogil jitted loop, or bulk
    set_many calls): the child writes to the inherited dict, reads it back and exits; it must
    never hang (it used to block forever in a futex in 1-2 forks out of 10)."""
    import os
    import time
    import warnings

    d = pardict.Dict.empty(types.int64, types.int64)
    stop = np.zeros(1, dtype=np.int64)
    grow_until(pardict.Dict.empty(types.int64, types.int64), 0, np.ones(1, dtype=np.int64))

    def writer():
        if not bulk:
            grow_until(d, 1 << 40, stop)
            return
        lo = 1 << 41
        while stop[0] == 0:
            keys = np.arange(lo, lo + 50_000, dtype=np.int64)
            d.set_many(keys, keys)
            lo += 50_000

    th = threading.Thread(target=writer)
    th.start()
    try:
        for rnd in range(20):
            time.sleep(0.01 + 0.005 * rnd)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
                pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    n0 = len(d)
                    for k in range(1000):
                        d[-1 - k] = k
                    ok = len(d) == n0 + 1000 and all(d[-1 - k] == k for k in range(1000))
                    code = 0 if ok else 2
                finally:
                    os._exit(code)
            rc = _wait_child(pid, 60)
            assert rc is not None, f"fork {rnd}: the child hung"
            assert rc == 0, f"fork {rnd}: the child exited with {rc}"
    finally:
        stop[0] = 1
        th.join(JOIN_TIMEOUT)
    assert not th.is_alive()
    assert len(d) > 0
