"""pardict.dask on a real Dask: a LocalCluster of two worker processes talking TCP on loopback
(and Dask's local schedulers), checked exactly against pandas on the same data."""

import collections
import gc
import os
import signal
import time

import numpy as np
import pytest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")
dd = pytest.importorskip("dask.dataframe")
import dask.array as da  # noqa: E402
import dask.bag as db  # noqa: E402

import pardict  # noqa: E402
import pardict.dask as pdd  # noqa: E402

TIMEOUT = 240  # seconds: a broken graph must fail the test, never hang it


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    c = distributed.Client(cluster, timeout=60)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _words(k):
    return np.array([f"w{x}é" if x % 3 else f"{x}🙂" for x in k])


def _data(n=40_000, nparts=5, seed=0):
    rng = np.random.default_rng(seed)
    k = rng.integers(-3000, 3000, n)
    df = pd.DataFrame(
        {
            "i": k,
            "f": k * 0.25 + 0.125,  # float keys, exactly representable
            "s": _words(k),
            # integers in float64: sums are exact in any order, so pandas' and pardict's agree
            "v": rng.integers(-1000, 1000, n).astype(np.float64),
            "iv": rng.integers(-(10**9), 10**9, n),
        }
    )
    return df, dd.from_pandas(df, npartitions=nparts)


def _series(d):
    return pd.Series(d.to_dict()).sort_index()


def _expect(df, key, op, value="v"):
    g = df.groupby(key)[value]
    return {"add": g.sum(), "min": g.min(), "max": g.max(), "count": g.count()}[op].sort_index()


def _check(d, want, dtype):
    assert isinstance(d, pardict.Dict)
    got = _series(d)
    assert got.index.tolist() == want.index.tolist()
    assert got.tolist() == want.tolist()
    assert got.dtype == dtype


@pytest.mark.parametrize("key", ["i", "f", "s"])
def test_group_by_matches_pandas_on_a_cluster(client, key):
    df, ddf = _data()
    ops = ("add", "min", "max")
    lazies = [pdd.aggregate(ddf[key], ddf.v, op=op) for op in ops]
    lazies += [pdd.aggregate(ddf[key], op="count"), pdd.aggregate(ddf[key], ddf.iv, op="add")]
    results = client.gather(client.compute(lazies), errors="raise")
    for op, d in zip(ops, results, strict=False):
        _check(d, _expect(df, key, op), np.float64)
    _check(results[3], _expect(df, key, "count"), np.int64)
    _check(results[4], _expect(df, key, "add", "iv"), np.int64)


def test_split_out_partitions_the_key_set_exactly(client):
    df, ddf = _data(seed=1)
    for key in ("i", "s"):
        out = pdd.aggregate(ddf[key], ddf.v, op="add", split_out=3, split_every=2)
        assert isinstance(out, dd.DataFrame) and out.npartitions == 3
        parts = dask.compute(*[out.partitions[j] for j in range(3)])
        seen = set()
        for j, part in enumerate(parts):
            assert list(part.columns) == ["key", "value"]
            keys = part.key.tolist()
            assert not seen.intersection(keys) and len(set(keys)) == len(keys)
            seen.update(keys)
            assert pardict.partition_of(np.array(keys), 3).tolist() == [j] * len(keys)
        want = _expect(df, key, "add")
        assert seen == set(want.index)
        got = pd.concat(parts).set_index("key").value.sort_index()
        assert got.tolist() == want.tolist()


def test_a_killed_worker_does_not_change_the_result(client):
    # The chunks sleep, so the computation is still running when one worker process dies; the
    # scheduler reruns the tasks it lost on the surviving (and the restarted) worker.
    rng = np.random.default_rng(2)
    n, chunk = 60_000, 5_000
    k = rng.integers(0, 4000, n)
    v = rng.integers(-(10**6), 10**6, n)

    def slow(x):
        time.sleep(0.4)
        return x

    keys = da.from_array(k, chunks=chunk).map_blocks(slow, dtype=k.dtype)
    values = da.from_array(v, chunks=chunk)
    future = client.compute(pdd.aggregate(keys, values, op="add", split_every=3))
    deadline = time.monotonic() + TIMEOUT
    while not any("pardict-add-chunk" in str(t) for t in _done_keys(client)):
        assert time.monotonic() < deadline and not future.done()
        time.sleep(0.05)
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    os.kill(pids[victim], signal.SIGKILL)
    d = future.result(timeout=TIMEOUT)
    want = pd.Series(v).groupby(k).sum().sort_index()
    assert _series(d).tolist() == want.tolist() and _series(d).index.tolist() == want.index.tolist()
    client.wait_for_workers(2, timeout=TIMEOUT)  # the nanny restarted it, for the next tests


def _done_keys(client):
    return client.run_on_scheduler(
        lambda dask_scheduler: [k for k, ts in dask_scheduler.tasks.items() if ts.state == "memory"]
    )


def test_word_count_from_a_bag_and_a_column(client):
    texts = ["the quick brown fox", "jumps over the lazy dog", "  é 日本 the\tdog  ", ""] * 50
    want = collections.Counter(w for t in texts for w in t.split())
    bag = db.from_sequence(texts, npartitions=4)
    column = dd.from_pandas(pd.DataFrame({"t": texts}), npartitions=3).t
    for counts in dask.compute(pdd.word_count(bag), pdd.word_count(column)):
        assert counts.to_dict() == dict(want)
    parts = pdd.word_count(bag, split_out=2).compute()
    assert dict(zip(parts.key, parts.value, strict=True)) == dict(want)


def test_bulk_calls_in_a_worker_task_use_one_thread_unless_told(client):
    # A worker runs one task per thread it was given, each meant to use one core.
    assert client.submit(pdd._task_threads, None, pure=False).result() == 1
    assert client.submit(pdd._task_threads, 3, pure=False).result() == 3
    assert pdd._task_threads(None) is None  # not in a worker: the bulk methods' default


def test_arrow_str_columns_match_pandas_value_counts():
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(8)
    vocab = np.array(
        [f"w{i}" for i in range(1500)] + ["", "é", "日本", "😀", "b" * 50], dtype=object
    )
    words = vocab[rng.zipf(1.3, 30_000) % vocab.size]
    vals = rng.integers(0, 9, words.size).astype(np.float64)
    for typ in (pa.string(), pa.large_string()):
        pdf = pd.DataFrame({"w": pd.Series(words, dtype=pd.ArrowDtype(typ)), "v": vals})
        ddf = dd.from_pandas(pdf, npartitions=4)
        counts = pdd.aggregate(ddf.w, op="count").compute(scheduler="sync")
        want = pdf.w.value_counts()
        assert counts.to_dict() == {str(k): int(v) for k, v in want.items()}
        sums = pdd.aggregate(ddf.w, ddf.v, op="min").compute(scheduler="sync")
        want = pdf.groupby("w").v.min()
        assert sums.to_dict() == {str(k): float(v) for k, v in want.items()}


def test_arrays_on_the_local_schedulers():
    rng = np.random.default_rng(3)
    k = rng.integers(0, 500, 20_000).astype(np.int32)
    v = rng.integers(0, 100, 20_000).astype(np.uint16)
    keys, values = da.from_array(k, chunks=3000), da.from_array(v, chunks=3000)
    want = pd.Series(v.astype(np.int64)).groupby(k).sum().sort_index()
    for scheduler in ("sync", "threads", "processes"):
        d = pdd.aggregate(keys, values, op="add").compute(scheduler=scheduler)
        assert (str(d.key_type), str(d.value_type)) == ("int32", "uint64")  # as pandas' sum
        assert _series(d).tolist() == want.tolist()
    words = da.from_array(_words(k), chunks=4000)
    c = pdd.aggregate(words, op="count").compute(scheduler="threads")
    assert c.to_dict() == dict(collections.Counter(_words(k).tolist()))


def test_named_tasks_persist_and_progress():
    from dask.diagnostics import ProgressBar

    df, ddf = _data(n=5000, nparts=4)
    lazy = pdd.aggregate(ddf.i, ddf.v, op="max", split_every=2)
    names = {dask.utils.key_split(k) for k in dict(lazy.__dask_graph__())}
    assert {"pardict-max-chunk", "pardict-max-combine"} <= names
    with ProgressBar(out=open(os.devnull, "w")):  # noqa: SIM115
        kept = lazy.persist(scheduler="threads")
    assert _series(kept.compute()).tolist() == _expect(df, "i", "max").tolist()


def test_no_tables_leak_on_the_client(client):
    df, ddf = _data(n=5000, nparts=3)
    gc.collect()
    before = pardict.live_dicts()
    d = pdd.aggregate(ddf.s, op="count").compute()
    assert len(d) == df.s.nunique() and pardict.live_dicts() == before + 1
    frame = pdd.aggregate(ddf.i, ddf.v, split_out=2).compute()
    assert len(frame) == df.i.nunique()
    local = pdd.aggregate(ddf.i, ddf.v).compute(scheduler="threads")  # partials built here
    del d, local
    gc.collect()
    assert pardict.live_dicts() == before


# ---- bad input: a clear error, before running or from the failing partition ------------------------


def test_misaligned_or_unsupported_inputs_fail_before_running():
    k = da.arange(100, chunks=10)
    with pytest.raises(ValueError, match="partition 0 has 10 keys and 20 values"):
        pdd.aggregate(k[:30], da.ones(30, chunks=(20, 5, 5)))
    with pytest.raises(ValueError, match="10 partitions of keys, 5 of values"):
        pdd.aggregate(k, da.ones(50, chunks=10))
    with pytest.raises(TypeError, match="values must be numbers or bools"):
        pdd.aggregate(k, da.from_array(np.array(["x"] * 100), chunks=10))
    with pytest.raises(TypeError, match="complex128 are not supported"):
        pdd.aggregate(k, da.ones(100, chunks=10, dtype=complex))
    with pytest.raises(TypeError, match="pass one column"):
        pdd.aggregate(dd.from_pandas(pd.DataFrame({"a": [1]}), npartitions=1), None, op="count")
    with pytest.raises(TypeError, match="must be a dask array"):
        pdd.aggregate(np.arange(3), np.arange(3))
    with pytest.raises(ValueError, match="takes no values"):
        pdd.aggregate(k, k, op="count")
    with pytest.raises(ValueError, match="needs values"):
        pdd.aggregate(k, op="add")
    with pytest.raises(ValueError, match="unknown op"):
        pdd.aggregate(k, k, op="mean")
    with pytest.raises(ValueError, match="split_every must be at least 2"):
        pdd.aggregate(k, k, split_every=1)
    with pytest.raises(TypeError, match="numeric values, not bools"):
        pdd.aggregate(k, k > 3, op="min")
    with pytest.raises(ValueError, match="must be a 1-d dask array"):
        pdd.aggregate(da.ones((4, 4), chunks=2), op="count")


def test_bad_partitions_fail_at_compute_time_naming_them(client):
    good = da.from_array(np.arange(10), chunks=5)
    # declared int64, but the second partition computes to int32
    odd = da.from_delayed(dask.delayed(np.arange)(5, dtype=np.int32), shape=(5,), dtype=np.int64)
    keys = da.concatenate([good[:5], odd])
    with pytest.raises(TypeError, match="partition 1 of the keys has dtype int32"):
        pdd.aggregate(keys, op="count").compute(scheduler="sync")
    with pytest.raises(TypeError, match="partition 1 of the keys has dtype int32"):
        client.compute(pdd.aggregate(keys, op="count")).result(timeout=TIMEOUT)
    # unknown partition lengths that turn out to differ
    s1 = dd.from_pandas(pd.Series(np.arange(10)), npartitions=2).clear_divisions()
    s2 = dd.from_pandas(pd.Series(np.arange(12.0)), npartitions=2).clear_divisions()
    with pytest.raises(ValueError, match=r"not aligned: partition \d has 5 keys and 6 values"):
        pdd.aggregate(s1, s2).compute(scheduler="sync")
    # missing values among str keys, in object columns (Dask keeps them with convert-string off)
    with dask.config.set({"dataframe.convert-string": False}):
        s = dd.from_pandas(pd.Series(["a", None, "b", "c"], dtype=object), npartitions=2)
        with pytest.raises(TypeError, match="partition 0 of the keys holds a NoneType"):
            pdd.aggregate(s, op="count").compute(scheduler="sync")
    arrow = dd.from_pandas(pd.Series(["a", None, "b", "c"], dtype="str"), npartitions=2)
    with pytest.raises(ValueError, match="partition 0 of the keys has 1 missing values"):
        pdd.aggregate(arrow, op="count").compute(scheduler="sync")


def test_importing_pardict_does_not_import_dask():
    import subprocess
    import sys

    code = "import sys, pardict; assert 'dask' not in sys.modules, sorted(sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]


def test_a_cluster_started_with_the_dask_commands(tmp_path):
    # `dask scheduler` and `dask worker` as separate processes, as on a real cluster.
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scheduler_cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    address = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "cluster.log", "w")  # noqa: SIM115
    scheduler = subprocess.Popen(
        [*scheduler_cmd, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2"]
        + ["--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with distributed.Client(address, timeout=60) as c:
            c.wait_for_workers(2, timeout=TIMEOUT)
            rng = np.random.default_rng(4)
            k = rng.integers(0, 300, 30_000)
            keys = da.from_array(k, chunks=7_000)
            d = c.compute(pdd.aggregate(keys, op="count")).result(timeout=TIMEOUT)
            assert d.to_dict() == dict(collections.Counter(k.tolist()))
    finally:
        for p in (worker, scheduler):
            p.terminate()
        for p in (worker, scheduler):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=30)
        log.close()


def test_str_partials_travel_as_words_then_one_dict(client):
    # Chunks of Arrow str keys and the inner combines hand on pardict.dask._Words (flat UTF-8
    # buffers); the root makes the Dict. Partitions of Python str objects stay Dicts, and the two
    # kinds mix in one tree.
    rng = np.random.default_rng(11)
    vocab = np.array([f"w{i}" for i in range(700)] + ["", "é", "日本語", "🙂" * 9, "x" * 40])
    nparts = 13
    words = [vocab[rng.zipf(1.2, 2000 + 37 * i) % vocab.size] for i in range(nparts)]
    values = [rng.integers(-50, 50, w.size) for w in words]
    pdf = pd.DataFrame({"w": np.concatenate(words), "v": np.concatenate(values)})
    for mixed in (False, True):

        def make(i, words, values, mixed=mixed):
            # partition i: Arrow strings, or (mixed, odd i) Python str objects
            dtype = object if mixed and i % 2 else "string[pyarrow]"
            return pd.DataFrame({"w": pd.Series(words[i], dtype=dtype), "v": values[i]})

        # (Dask converts object columns to Arrow strings unless told not to)
        with dask.config.set({"dataframe.convert-string": not mixed}):
            ddf = dd.from_map(
                make,
                range(nparts),
                words=words,
                values=values,
                meta=pd.DataFrame(
                    {"w": pd.Series([], dtype="string[pyarrow]"), "v": np.zeros(0, int)}
                ),
            )
            spec = pdd._Spec("count", None, None, None)
            spec.words = True
            chunks = [dask.delayed(pdd._chunk)(p, None, spec, 0) for p in ddf.w.to_delayed()]
            kinds = {type(c).__name__ for c in dask.compute(*chunks)}
            assert kinds == ({"Dict", "_Words"} if mixed else {"_Words"})
            for split_every in (2, 8, 16):
                for op in ("count", "add", "min", "max"):
                    args = (ddf.w,) if op == "count" else (ddf.w, ddf.v)
                    d = pdd.aggregate(*args, op=op, split_every=split_every).compute()
                    want = _expect(pdf, "w", op)
                    assert isinstance(d, pardict.Dict) and len(d) == len(want)
                    assert d.to_dict() == {str(k): int(x) for k, x in want.items()}, (mixed, op)
                    # split_out: the parts' words are split (or the parts' dicts, mixed)
                    out = pdd.aggregate(*args, op=op, split_every=split_every, split_out=3)
                    parts = dask.compute(*[out.partitions[j] for j in range(3)])
                    for j, part in enumerate(parts):
                        assert pardict.partition_of(part.key.to_numpy(str), 3).tolist() == [
                            j
                        ] * len(part)
                    got = pd.concat(parts).set_index("key").value
                    assert got.to_dict() == {str(k): int(x) for k, x in want.items()}
    # one partition: the root still turns its words into a Dict
    one = dd.from_pandas(pd.DataFrame({"w": pd.Series(words[0], dtype="string[pyarrow]")}), 1)
    d = pdd.aggregate(one.w, op="count").compute()
    assert d.to_dict() == dict(collections.Counter(words[0].tolist()))


def test_words_of_a_multi_chunk_partition_and_their_combines():
    pa = pytest.importorskip("pyarrow")
    w = np.array(["a", "bb", "a", "ccc", "é", "bb", "a", ""])
    chunked = pa.chunked_array([w[:3].tolist(), w[3:6].tolist(), [], w[6:].tolist()])
    part = pd.Series(pd.arrays.ArrowExtensionArray(chunked))
    spec = pdd._Spec("count", None, None, None)
    spec.words = True
    words = pdd._chunk(part, None, spec, 0)
    assert isinstance(words, pdd._Words) and len(words) == 5  # each word once across chunks
    assert sorted(words.arrow().to_pylist()) == sorted(set(w.tolist()))
    inner = pdd._combine([words, words], "count", None, False)
    assert isinstance(inner, pdd._Words) and len(inner) == 5
    root = pdd._combine([inner, words], "count", None, True)
    assert root.to_dict() == {k: 3 * c for k, c in collections.Counter(w.tolist()).items()}
    # pickled words travel as flat out-of-band buffers
    import pickle

    bufs = []
    back = pickle.loads(pickle.dumps(inner, protocol=5, buffer_callback=bufs.append), buffers=bufs)
    assert len(bufs) >= 3 and back.arrow().to_pylist() == inner.arrow().to_pylist()


def test_word_count_of_texts_in_an_exactly_sized_buffer():
    # pyarrow's utf8_split_whitespace reads one byte past the data buffer while scanning a last
    # text that ends in whitespace, and splits a " " word off it when that byte is non-ASCII;
    # Dask hands a worker columns in exactly-sized frames, so the next byte is whatever follows.
    pa = pytest.importorskip("pyarrow")
    text = "  é 日本 the\tdog  "
    raw = np.frombuffer(text.encode() + b"\xe6" + b"Q" * 16, np.uint8)
    n = len(text.encode())
    for typ, dt in ((pa.large_string(), np.int64), (pa.string(), np.int32)):
        offsets = pa.py_buffer(np.array([0, n], dt))
        arr = pa.Array.from_buffers(typ, 1, [None, offsets, pa.py_buffer(raw[:n])])
        assert [w.to_pylist() for w in pdd._arrow_words([arr], None)] == [text.split()]
