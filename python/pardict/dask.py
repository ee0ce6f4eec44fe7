"""pardict on Dask: group-by aggregation and word count over data larger than one machine.

    import pardict.dask as pdd

    sums = pdd.aggregate(ddf.key, ddf.value, op="add")    # lazy (a dask Delayed)
    d = sums.compute()                                    # a pardict.Dict {key: sum}
    parts = pdd.aggregate(ddf.key, ddf.value, split_out=8)  # a dask DataFrame of (key, value)
    counts = pdd.word_count(dask.bag.read_text("*.txt")).compute()

How it runs (docs/dask.md has the whole story):

1. chunk: every partition of the input becomes a pardict.Dict on the worker that holds it, in one
   bulk call (add_many, min_many, max_many, count_many, set_many: C++ threads, GIL released).
2. combine: the partial dicts are merged in a tree of fan-in `split_every` (Dict.merge: numeric
   dicts merge in C++ in parallel). Dicts travel between workers as pickle protocol 5 with their
   keys and values as out-of-band buffers (pardict/_wire.py), which Dask sends as raw frames.
3. With split_out > 1, each partial is first split by key hash (Dict.split) into split_out parts
   and part j of every partial is merged in its own tree: no worker ever holds the whole key set.
   The result is a dask DataFrame with split_out partitions of (key, value), the partition of a
   key given by pardict.partition_of(key, split_out).

Works with every Dask scheduler (distributed LocalCluster or a real cluster, threads, processes,
synchronous). Each worker process compiles pardict's jitted helpers on first use (a few seconds,
once per process). Importing pardict does not import Dask; this module needs `pardict[dask]`.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Sequence
from typing import Any

import dask.array as da
import dask.bag as db
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed, delayed
from dask.sizeof import sizeof
from numba.core import types

from . import _ext
from .dict import Dict, _np_dtype

__all__ = ["aggregate", "word_count", "OPS"]

OPS = ("add", "min", "max", "count", "assign")
"""The aggregations: add (group-by sum), min, max, count (occurrences of each key), assign (some
value of each key: the last one of the last partition holding it, when one thread builds each
partial)."""

_MERGE_OP = {"add": "add", "min": "min", "max": "max", "count": "add", "assign": "assign"}
_BULK = {"add": "add_many", "min": "min_many", "max": "max_many", "assign": "set_many"}
# Arrow str keys are combined from their UTF-8 buffers (Dict._combine_arrow); False: converted to
# NumPy unicode arrays first, as before (kept to measure the difference: bench/wc_profile.py).
_ARROW_DIRECT = True
_STR_BATCH_BYTES = 64 << 20  # NumPy unicode rows converted at once (UCS4: 4 bytes per character)


# ---- the input: partitions of keys (and values) ------------------------------------------------


class _Input:
    """One input collection as a list of per-partition Delayed objects, with what is known of
    its dtype and partition sizes before computing anything."""

    def __init__(self, obj: Any, what: str) -> None:
        self.what = what
        self.kind: str
        self.dtype: np.dtype | None = None  # None: str or unknown until computed
        self.is_str = False
        self.sizes: tuple[float, ...] | None = None  # None or NaN entries: unknown
        self.divisions: tuple | None = None
        if isinstance(obj, da.Array):
            if obj.ndim != 1:
                raise ValueError(f"{what} must be a 1-d dask array, got shape {obj.shape}")
            self.kind = "array"
            self.sizes = tuple(obj.chunks[0])
            self._set_dtype(obj.dtype)
            self.parts = list(obj.to_delayed().ravel())
        elif isinstance(obj, db.Bag):
            self.kind = "bag"
            self.parts = list(obj.to_delayed())
        elif _is_dask_frame(obj, "DataFrame"):
            raise TypeError(
                f"{what} is a dask DataFrame; pass one column (a Series), e.g. ddf['key']"
            )
        elif _is_dask_frame(obj, "Series"):
            self.kind = "series"
            self._set_dtype(obj.dtype)
            if obj.known_divisions:
                self.divisions = tuple(obj.divisions)
            self.parts = list(obj.to_delayed())
        else:
            raise TypeError(
                f"{what} must be a dask array, a dask dataframe column (Series) or a dask bag, "
                f"got {type(obj).__module__}.{type(obj).__qualname__}"
            )
        self.token = tokenize(obj)

    def _set_dtype(self, dt: Any) -> None:
        dt = _numpy_dtype(dt)
        if dt is None or dt.kind in "OUS":
            self.is_str = True
        elif dt.kind in "biuf":
            self.dtype = dt
        else:
            raise TypeError(
                f"pardict.dask: {self.what} of dtype {dt} are not supported (numeric, bool or str)"
            )

    @property
    def npartitions(self) -> int:
        return len(self.parts)


def _is_dask_frame(obj: Any, name: str) -> bool:
    dd = sys.modules.get("dask.dataframe")  # a dask collection of it exists only if imported
    return dd is not None and isinstance(obj, getattr(dd, name))


def _numpy_dtype(dt: Any) -> np.dtype | None:
    """A NumPy dtype for a dask collection's declared dtype (pandas extension dtypes map to
    their NumPy equivalent; str dtypes to None)."""
    if isinstance(dt, np.dtype):
        return dt
    kind = getattr(dt, "kind", None)
    if kind in ("O", "U", "S") or str(dt) in ("str", "string") or str(dt).startswith("string"):
        return None
    numpy_dtype = getattr(dt, "numpy_dtype", None)  # pandas' nullable Int64, Float64, boolean
    if isinstance(numpy_dtype, np.dtype):
        return numpy_dtype
    try:
        return np.dtype(dt)
    except TypeError:
        raise TypeError(f"pardict.dask: unsupported dtype {dt}") from None


def _check_aligned(keys: _Input, values: _Input) -> None:
    if keys.npartitions != values.npartitions:
        raise ValueError(
            f"pardict.dask: keys and values are not aligned: {keys.npartitions} partitions of "
            f"keys, {values.npartitions} of values (rechunk/repartition one like the other)"
        )
    if keys.sizes is not None and values.sizes is not None:
        for i, (a, b) in enumerate(zip(keys.sizes, values.sizes, strict=True)):
            if a == a and b == b and a != b:  # NaN: unknown until computed
                raise ValueError(
                    f"pardict.dask: keys and values are not aligned: partition {i} has {int(a)} "
                    f"keys and {int(b)} values (rechunk the values like the keys: "
                    f"values.rechunk(keys.chunks))"
                )
    if keys.divisions is not None and values.divisions is not None:
        if keys.divisions != values.divisions:
            raise ValueError(
                "pardict.dask: keys and values are not aligned: their divisions differ "
                "(repartition the values like the keys)"
            )


# ---- per-partition conversion (runs on the workers) ----------------------------------------------


def _as_numeric(part: Any, expected: np.dtype, what: str, index: int) -> np.ndarray:
    """A partition of numeric keys or values as a 1-d NumPy array of the declared dtype."""
    if isinstance(part, list):  # a bag partition
        part = np.asarray(part)
    if not isinstance(part, np.ndarray) and hasattr(part, "to_numpy"):  # pandas
        actual = _numpy_dtype(part.dtype)
        if actual != expected:
            raise _dtype_differs(what, index, part.dtype, expected)
        try:
            part = part.to_numpy(dtype=expected)
        except (TypeError, ValueError):
            raise ValueError(
                f"pardict.dask: partition {index} of the {what} has missing values (fill or "
                f"drop them first)"
            ) from None
    arr = np.asarray(part)
    if arr.ndim != 1:
        raise ValueError(f"pardict.dask: partition {index} of the {what} has shape {arr.shape}")
    if arr.dtype != expected:
        raise _dtype_differs(what, index, arr.dtype, expected)
    return arr


def _dtype_differs(what: str, index: int, actual: Any, expected: Any) -> TypeError:
    return TypeError(
        f"pardict.dask: partition {index} of the {what} has dtype {actual}, but the collection "
        f"declares {expected} (the dtype differs between partitions); cast every partition to "
        f"one dtype, e.g. .astype({str(expected)!r})"
    )


def _str_batches(part: Any, what: str, index: int, split: bool, sep: str | None):
    """A partition of str keys as NumPy unicode arrays (batches of bounded size). With split,
    each element is a text whose words (str.split(sep)) are the keys."""
    arrow = _arrow_strings(part)
    if arrow is not None:
        if split:
            arrow = _arrow_words(arrow, sep)
        for chunk in arrow:
            yield from _arrow_to_unicode(chunk, what, index)
        return
    if isinstance(part, np.ndarray) and part.dtype.kind == "U" and not split:
        if part.ndim != 1:
            raise ValueError(
                f"pardict.dask: partition {index} of the {what} has shape {part.shape}"
            )
        yield np.ascontiguousarray(part)
        return
    items = part.tolist() if hasattr(part, "tolist") else list(part)
    at = next((i for i, x in enumerate(items) if not isinstance(x, str)), -1)
    if at >= 0:
        bad = items[at]
        raise TypeError(
            f"pardict.dask: partition {index} of the {what} holds a {type(bad).__name__} "
            f"({bad!r}) where str keys are expected: the dtype differs between partitions, or "
            f"there are missing values"
        )
    if split:
        items = [w for text in items for w in text.split(sep)]
    rows = 1 << 20
    for at in range(0, len(items), rows):
        yield np.array(items[at : at + rows], dtype=str)
    if not items:
        yield np.zeros(0, dtype="<U1")


def _arrow_strings(part: Any):
    """The pyarrow chunks of a pandas Series backed by Arrow strings, else None."""
    array = getattr(part, "array", None)
    to_arrow = getattr(array, "__arrow_array__", None)
    if to_arrow is None or "pyarrow" not in sys.modules:
        return None
    import pyarrow as pa

    arrow = to_arrow()
    chunks = arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]
    if not all(pa.types.is_string(c.type) or pa.types.is_large_string(c.type) for c in chunks):
        if all(getattr(pa.types, "is_string_view", lambda t: False)(c.type) for c in chunks):
            return [c.cast(pa.large_string()) for c in chunks]
        return None
    return chunks


def _zero_padded(c):
    """A copy of a (large_)string array without nulls whose data buffer has 64 zero bytes past its
    last string. pyarrow's utf8_split_whitespace (26.0.1 included; scikit-hep/awkward#4151 traced
    it in earlier versions) reads one byte past the data buffer's end while scanning a last string
    that ends in whitespace, and splits a " " word off it when that byte is non-ASCII. Arrow's own
    buffers are padded, but a column that Dask received from another process sits in an
    exactly-sized frame, and whatever follows it in memory decides the words (a wrong word, " "
    counted once, in about one run in three of tests/python/test_dask.py)."""
    import pyarrow as pa

    if c.null_count or len(c) == 0:
        return c
    _, offsets, data = c.buffers()
    large = c.type.equals(pa.large_string())
    offs = np.frombuffer(offsets, np.int64 if large else np.int32)[c.offset : c.offset + len(c) + 1]
    lo, hi = int(offs[0]), int(offs[-1])
    raw = np.zeros(hi - lo + 64, np.uint8)
    if data is not None:
        raw[: hi - lo] = np.frombuffer(data, np.uint8)[lo:hi]
    return pa.Array.from_buffers(
        c.type, len(c), [None, pa.py_buffer(offs - offs[0]), pa.py_buffer(raw)]
    )


def _arrow_words(chunks, sep):
    import pyarrow.compute as pc

    out = []
    for c in chunks:
        if sep is None:
            words = pc.utf8_split_whitespace(_zero_padded(c)).flatten()
            # as str.split(): no empty words (Arrow yields them around leading/trailing space)
            out.append(pc.filter(words, pc.not_equal(words, "")))
        else:
            out.append(pc.split_pattern(c, sep).flatten())
    return out


def _arrow_to_unicode(chunk, what: str, index: int):
    """An Arrow (large_)string array as NumPy unicode arrays: UTF-8 decoded in C++ (no Python
    object per row), in batches whose width x rows stays bounded."""
    if chunk.null_count:
        raise ValueError(
            f"pardict.dask: partition {index} of the {what} has {chunk.null_count} missing "
            f"values (dropna() them first)"
        )
    n = len(chunk)
    if n == 0:
        yield np.zeros(0, dtype="<U1")
        return
    _, offsets, data = chunk.buffers()
    offset_bytes = 8 if chunk.type.equals(_large_string()) else 4
    data = data if data is not None else b""
    first = chunk.offset
    rows = max(1, min(n, 1 << 20))
    at = 0
    while at < n:
        m = min(rows, n - at)
        width = _ext.utf8_max_length(data, offsets, offset_bytes, first + at, m)
        if width < 0:
            raise ValueError(f"pardict.dask: partition {index} of the {what}: bad Arrow offsets")
        if m > 1 and max(width, 1) * 4 * m > _STR_BATCH_BYTES:  # a long string: smaller batches
            rows = max(1, _STR_BATCH_BYTES // (4 * max(width, 1)))
            continue
        out = np.empty(m, dtype=f"<U{max(width, 1)}")
        _ext.utf8_to_ucs4(data, offsets, offset_bytes, first + at, m, out, max(width, 1))
        yield out
        at += m


def _large_string():
    import pyarrow as pa

    return pa.large_string()


# ---- the tasks --------------------------------------------------------------------------------------


class _Spec:
    """What every chunk task needs: the op and the declared dtypes (plain data: it is pickled
    into the graph)."""

    def __init__(
        self,
        op: str,
        key_dtype: np.dtype | None,
        value_dtype: np.dtype | None,
        threads: int | None,
        split: bool = False,
        sep: str | None = None,
    ) -> None:
        self.op = op
        self.key_dtype = key_dtype  # None: str keys
        self.value_dtype = value_dtype  # None: count (no values)
        self.threads = threads
        self.split = split
        self.sep = sep
        # Chunks of Arrow str keys hand on _Words, not Dicts (set by _build)
        self.words = False

    def key_type(self) -> types.Type:
        if self.key_dtype is None:
            return types.unicode_type
        return _numba_type(self.key_dtype)

    def value_type(self) -> types.Type:
        return _numba_type(_stored_dtype(self.op, self.value_dtype))


def _numba_type(dt: np.dtype) -> types.Type:
    from numba.np.numpy_support import from_dtype

    return from_dtype(dt)


def _stored_dtype(op: str, value_dtype: np.dtype | None) -> np.dtype:
    """The dict's value dtype: counts are int64; sums of bools and signed integers int64, of
    unsigned integers uint64 (as pandas' sum); floats, and min/max/assign, keep their dtype."""
    if op == "count" or value_dtype is None:
        return np.dtype(np.int64)
    if op == "add" and value_dtype.kind in "bi":
        return np.dtype(np.int64)
    if op == "add" and value_dtype.kind == "u":
        return np.dtype(np.uint64)
    return value_dtype


def _task_threads(threads: int | None) -> int | None:
    """The C++ threads of a bulk call inside a task: `threads` when given; on a distributed
    worker, 1, since the worker runs one task per thread it was given (threads_per_worker /
    --nthreads) and each of those threads is meant to use one core: more per call would time-slice
    with the other task threads and worker processes (measured: bench/wc_profile.py --threads);
    elsewhere (the threaded or synchronous scheduler) None, the bulk methods' default."""
    if threads is not None:
        return threads
    worker = sys.modules.get("distributed")
    if worker is not None:
        try:
            worker.get_worker()
        except ValueError:  # not inside a distributed worker's task
            return None
        return 1
    return None


def _chunk(keys_part: Any, values_part: Any, spec: _Spec, index: int) -> Dict | _Words:
    """One partition as a pardict.Dict (a task: runs on a worker)."""
    d = Dict.empty(spec.key_type(), spec.value_type())
    threads = _task_threads(spec.threads)
    direct = _ARROW_DIRECT and spec.key_dtype is None and spec.op != "assign"
    arrow = _arrow_strings(keys_part) if direct else None
    if arrow is not None:
        if spec.split:
            arrow = _arrow_words(arrow, spec.sep)
        return _chunk_arrow(d, arrow, values_part, spec, index, threads)
    if spec.key_dtype is None:
        key_batches = list(_str_batches(keys_part, "keys", index, spec.split, spec.sep))
    else:
        key_batches = [_as_numeric(keys_part, spec.key_dtype, "keys", index)]
    if spec.op == "count":
        for keys in key_batches:
            d.count_many(keys, threads=threads)
        return d
    values = _aligned_values(values_part, spec, index, sum(k.size for k in key_batches))
    bulk = getattr(d, _BULK[spec.op])
    at = 0
    for keys in key_batches:
        bulk(keys, values[at : at + keys.size], threads=threads)
        at += keys.size
    return d


def _aligned_values(values_part: Any, spec: _Spec, index: int, n_keys: int) -> np.ndarray:
    """A partition's values as the stored dtype of spec.op, checked to be as many as its keys."""
    assert spec.value_dtype is not None
    values = _as_numeric(values_part, spec.value_dtype, "values", index)
    if n_keys != values.size:
        raise ValueError(
            f"pardict.dask: keys and values are not aligned: partition {index} has {n_keys} "
            f"keys and {values.size} values"
        )
    stored = _stored_dtype(spec.op, spec.value_dtype)
    return values if values.dtype == stored else values.astype(stored)


def _chunk_arrow(
    d: Dict, chunks, values_part: Any, spec: _Spec, index: int, threads: int | None
) -> Dict | _Words:
    """A partition of Arrow str keys combined straight from the UTF-8 buffers (no NumPy unicode
    array, so no numba specialisation per string width): into d, or as _Words (spec.words)."""
    for c in chunks:
        if c.null_count:
            raise ValueError(
                f"pardict.dask: partition {index} of the keys has {c.null_count} missing "
                f"values (dropna() them first)"
            )
    if spec.op == "count":
        values = None
    else:
        values = _aligned_values(values_part, spec, index, sum(len(c) for c in chunks))
    if spec.words:
        return _Words.aggregate(chunks, values, spec.op, spec.value_type(), threads)
    at = 0
    for c in chunks:
        d._combine_arrow(c, None if values is None else values[at : at + len(c)], spec.op, threads)
        at += len(c)
    return d


class _Words:
    """A partial aggregate of str keys that is not a Dict yet: its distinct words as the buffers
    of an Arrow large_string array (UTF-8 bytes, int64 offsets) and their aggregates (a NumPy
    array of the stored dtype).

    Chunks of Arrow str keys and the inner combines of the tree (split_out == 1) pass these, and
    only the root makes the Dict. A Dict of str keys holds a numba string per key (an NRT
    allocation each): making those for every partial, pickling them as code points, making them
    again on the receiving worker and merging key by key through pointers to them cost more than
    counting the rows (bench/wc_profile.py: of a 6.25M-word, 100K-distinct partition, ~0.04 s
    to make the strings, ~0.03 s to unpickle, ~0.03 s per merge). Words are three flat arrays
    that pickle out of band, and partials combine by aggregating their words again in C++
    (Dict._aggregate_arrow: per-worker tables keyed by the UTF-8 bytes)."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray, values: np.ndarray) -> None:
        self.data = data  # uint8
        self.offsets = offsets  # int64, len(values) + 1, from 0
        self.values = values

    def __len__(self) -> int:
        return self.values.size

    def arrow(self):
        import pyarrow as pa

        return pa.LargeStringArray.from_buffers(
            len(self), pa.py_buffer(self.offsets), pa.py_buffer(self.data)
        )

    @classmethod
    def aggregate(
        cls, chunks, values: np.ndarray | None, op: str, value_type: types.Type, threads
    ) -> _Words:
        """The words of Arrow (large_)string chunks without nulls and their aggregates by op
        (values aligned with the chunks' rows; None for count)."""
        import pyarrow as pa

        d = Dict.empty(types.unicode_type, value_type)
        dt = _np_dtype(value_type)
        vc = d._dict_type.layouts[3]
        words, aggregates, at = [], [], 0
        for c in chunks:
            part = None if values is None else values[at : at + len(c)]
            at += len(c)
            if len(c) == 0:
                continue
            rows, blobs, merge_op = d._aggregate_arrow(c, part, op, threads)
            words.append(c.take(pa.array(rows)).cast(pa.large_string()))
            aggregates.append(
                blobs.reshape(rows.size, vc)[:, : dt.itemsize].copy().view(dt).ravel()
            )
        if not words:
            return cls(np.zeros(0, np.uint8), np.zeros(1, np.int64), np.zeros(0, dt))
        if len(words) > 1:  # a word may be in several chunks: aggregate the chunks' words again
            return cls.aggregate(
                [pa.concat_arrays(words)], np.concatenate(aggregates), merge_op, value_type, threads
            )
        return cls.of_arrow(words[0], aggregates[0])

    @classmethod
    def of_arrow(cls, w, values: np.ndarray) -> _Words:
        """Words from a pyarrow large_string array without nulls (values aligned with it)."""
        _, offsets, data = w.buffers()
        offsets = np.frombuffer(offsets, np.int64)[w.offset : w.offset + len(w) + 1]
        data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        return cls(data[offsets[0] : offsets[-1]], offsets - offsets[0], values)

    def unicode(self) -> np.ndarray:
        """The words as a NumPy unicode array (decoded in C++)."""
        n = len(self)
        width = max(1, _ext.utf8_max_length(self.data, self.offsets, 8, 0, n) if n else 1)
        out = np.empty(n, dtype=f"<U{width}")
        if n:
            _ext.utf8_to_ucs4(self.data, self.offsets, 8, 0, n, out, width)
        return out

    def split(self, n: int) -> tuple[_Words, ...]:
        """The words in n parts, word k in part pardict.partition_of(k, n) (as Dict.split)."""
        import pyarrow as pa

        from .dict import partition_of

        parts = partition_of(self.unicode(), n)
        words = self.arrow()
        out = []
        for j in range(n):
            rows = np.flatnonzero(parts == j)
            out.append(_Words.of_arrow(words.take(pa.array(rows)), self.values[rows]))
        return tuple(out)

    @classmethod
    def concat(cls, parts: Sequence[_Words]) -> _Words:
        """The words of every part, one after another (a word may appear several times)."""
        if len(parts) == 1:
            return parts[0]
        sizes = np.cumsum([0] + [p.data.size for p in parts[:-1]])
        offsets = np.concatenate(
            [parts[0].offsets[:1]]
            + [p.offsets[1:] + at for p, at in zip(parts, sizes, strict=True)]
        )
        return cls(
            np.concatenate([p.data for p in parts]),
            offsets,
            np.concatenate([p.values for p in parts]),
        )

    @classmethod
    def combine(cls, parts: Sequence[_Words], op: str, threads) -> _Words:
        """The words of the parts, each once, with their aggregates combined by op's merge."""
        every = cls.concat(parts)
        return cls.aggregate(
            [every.arrow()], every.values, _MERGE_OP[op], _numba_type(every.values.dtype), threads
        )

    def into(self, d: Dict, op: str, threads) -> None:
        """These words combined into d (a Dict of str keys and this dtype of values)."""
        d._combine_arrow(self.arrow(), self.values, _MERGE_OP[op], threads)


def _combine(parts: Sequence[Dict | _Words], op: str, threads: int | None, final: bool) -> Any:
    """The partials merged into a new one (the inputs stay as they are: Dask may hold them for
    another task, or run this task again after a failure): _Words while every input is one,
    unless final (the root of a tree whose result is the Dict), else a Dict."""
    threads = _task_threads(threads)
    words = [p for p in parts if isinstance(p, _Words)]
    dicts = [p for p in parts if not isinstance(p, _Words)]
    if not dicts and not final:
        return _Words.combine(words, op, threads) if len(words) > 1 else words[0]
    if dicts:
        largest = max(range(len(dicts)), key=lambda i: len(dicts[i]))
        out = dicts[largest].copy()
        for i, p in enumerate(dicts):
            if i != largest:
                out.merge(p, _MERGE_OP[op], threads=threads)
    else:
        vt = _numba_type(words[0].values.dtype)
        out = Dict.empty(types.unicode_type, vt, n_keys=max(len(w) for w in words))
    if words:  # all words at once: one pass aggregates them and inserts those out lacks
        _Words.concat(words).into(out, op, threads)
    return out


def _split(d: Dict | _Words, n: int) -> tuple[Dict | _Words, ...]:
    return d.split(n) if isinstance(d, _Words) else tuple(d.split(n))


def _frame(d: Dict | _Words, spec: _Spec):
    """A finished part as a pandas DataFrame of (key, value)."""
    import pandas as pd

    if isinstance(d, _Words):
        return pd.DataFrame({"key": d.unicode(), "value": d.values})
    if not d._typed:
        return _meta(spec)
    keys, values = d.to_arrays()
    return pd.DataFrame({"key": keys, "value": values})


def _meta(spec: _Spec):
    import pandas as pd

    kdt = np.dtype("<U1") if spec.key_dtype is None else spec.key_dtype
    vdt = _stored_dtype(spec.op, spec.value_dtype)
    return pd.DataFrame({"key": np.zeros(0, dtype=kdt), "value": np.zeros(0, dtype=vdt)})


def _empty(spec: _Spec) -> Dict:
    return Dict.empty(spec.key_type(), spec.value_type())


# ---- the graph -------------------------------------------------------------------------------------


def _tree(
    parts: list[Delayed], split_every: int, prefix: str, op: str, threads: Any, make_dict: bool
) -> Delayed:
    """The parts merged in a tree of fan-in split_every; keys (prefix, level, i). With make_dict
    (the parts may be _Words and the result must be a Dict), the root is a combine even of one
    part."""
    level = 0
    while len(parts) > 1 or (make_dict and level == 0):
        level += 1
        final = make_dict and len(parts) <= split_every
        parts = [
            delayed(_combine, pure=True)(
                parts[i : i + split_every], op, threads, final, dask_key_name=(prefix, level, i)
            )
            for i in range(0, len(parts), split_every)
        ]
    return parts[0]


def _check_counts(split_every: Any, split_out: Any) -> tuple[int, int]:
    for name, value, low in (("split_every", split_every, 2), ("split_out", split_out, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"pardict.dask: {name} must be an int, got {value!r}")
        if value < low:
            raise ValueError(f"pardict.dask: {name} must be at least {low}, got {value}")
    return int(split_every), int(split_out)


def _build(
    keys: _Input,
    values: _Input | None,
    spec: _Spec,
    split_every: int,
    split_out: int,
    token: str,
) -> Any:
    name = f"pardict-{spec.op}" + ("-words" if spec.split else "")
    spec.words = spec.key_dtype is None and spec.op != "assign" and _ARROW_DIRECT
    chunk_name = f"{name}-chunk-{token}"
    chunks = [
        delayed(_chunk, pure=True)(
            k,
            values.parts[i] if values is not None else None,
            spec,
            i,
            dask_key_name=(chunk_name, i),
        )
        for i, k in enumerate(keys.parts)
    ]
    if not chunks:
        chunks = [delayed(_empty, pure=True)(spec, dask_key_name=(chunk_name, 0))]
    if split_out == 1:
        return _tree(
            chunks, split_every, f"{name}-combine-{token}", spec.op, spec.threads, spec.words
        )
    split_name = f"{name}-split-{token}"
    splits = [
        delayed(_split, pure=True)(c, split_out, dask_key_name=(split_name, i))
        for i, c in enumerate(chunks)
    ]
    frames = []
    for j in range(split_out):
        column = [
            delayed(operator.getitem, pure=True)(s, j, dask_key_name=(f"{name}-part-{token}", i, j))
            for i, s in enumerate(splits)
        ]
        merged = _tree(
            column, split_every, f"{name}-combine-{token}-{j}", spec.op, spec.threads, False
        )
        frames.append(
            delayed(_frame, pure=True)(merged, spec, dask_key_name=(f"{name}-frame-{token}", j))
        )
    import dask.dataframe as dd

    return dd.from_delayed(frames, meta=_meta(spec), verify_meta=False)


def aggregate(
    keys: Any,
    values: Any = None,
    op: str = "add",
    split_every: int = 8,
    split_out: int = 1,
    threads: int | None = None,
) -> Any:
    """Group-by aggregation of a dask collection with pardict dicts.

    keys: a 1-d dask array, a dask dataframe column (Series) or a dask bag of numbers, bools or
    str; values: aligned with keys (same partitions and lengths), numbers or bools; None for
    op="count". op: "add" (sum), "min", "max", "count" (occurrences of each key) or "assign"
    (some value of each key). Each partition becomes a pardict.Dict on its worker, and the partial
    dicts are merged in a tree of fan-in split_every. threads: the C++ threads of each bulk call
    (default: 1 on a distributed worker, whose task threads each stand for a core; numba's thread
    count under the local schedulers; the C side never runs more than the process's CPUs).

    Returns, with split_out == 1, a dask Delayed whose .compute() is the pardict.Dict
    {key: aggregate}; with split_out > 1, a dask DataFrame of split_out partitions with columns
    "key" and "value", key k in partition pardict.partition_of(k, split_out) (the key set is never
    on one worker). Sums of bools and signed integers are int64, of unsigned integers uint64,
    counts int64; float sums, min, max and assign keep the values' dtype.

    Differences from pandas' groupby: a NaN key is one group (pandas drops NaN keys); NaN values
    propagate in sums and a NaN stored first stays in min/max (pandas skips NaN values).

    Bad input is an error before anything runs when the collections' metadata shows it
    (misaligned partitions, unsupported dtypes), else when the partition is computed (a
    partition's dtype differs from the declared one, lengths differ, missing values).
    """
    if op not in OPS:
        raise ValueError(f"pardict.dask: unknown op {op!r}; use one of {', '.join(OPS)}")
    split_every, split_out = _check_counts(split_every, split_out)
    k = _Input(keys, "keys")
    if op == "count":
        if values is not None:
            raise ValueError("pardict.dask: op='count' counts keys and takes no values")
        v = None
    else:
        if values is None:
            raise ValueError(f"pardict.dask: op={op!r} needs values aligned with the keys")
        v = _Input(values, "values")
        if v.is_str or v.dtype is None:
            raise TypeError(
                f"pardict.dask: values must be numbers or bools (op={op!r}); got str or object"
            )
        if op in ("min", "max") and v.dtype.kind == "b":
            raise TypeError(f"pardict.dask: op={op!r} needs numeric values, not bools")
        if v.kind == "bag":
            raise TypeError("pardict.dask: values cannot be a bag (use a dask array or column)")
        _check_aligned(k, v)
    if k.kind == "bag" and op != "count":
        raise TypeError("pardict.dask: a bag of keys is supported with op='count' only")
    # a bag's elements are not typed before they are computed: str keys (numbers: use a dask
    # array or dataframe column)
    key_dtype = None if (k.is_str or k.kind == "bag") else k.dtype
    spec = _Spec(op, key_dtype, v.dtype if v is not None else None, threads)
    token = tokenize(k.token, v.token if v is not None else None, op, split_every, split_out)
    return _build(k, v, spec, split_every, split_out, token)


def word_count(
    texts: Any,
    sep: str | None = None,
    split_every: int = 8,
    split_out: int = 1,
    threads: int | None = None,
) -> Any:
    """How often each word occurs in a dask bag of str, or a dask dataframe str column (Series):
    each element is split into words with str.split(sep) (whitespace by default; Arrow string
    columns are split by pyarrow.compute, without a Python object per word), and the words are
    counted with pardict dicts as aggregate(op="count") does. Returns what aggregate returns."""
    split_every, split_out = _check_counts(split_every, split_out)
    k = _Input(texts, "texts")
    if not (k.is_str or k.kind == "bag"):
        raise TypeError(f"pardict.dask.word_count: texts must be str, got dtype {k.dtype}")
    spec = _Spec("count", None, None, threads, split=True, sep=sep)
    token = tokenize(k.token, "words", sep, split_every, split_out)
    return _build(k, None, spec, split_every, split_out, token)


# Dask's memory accounting (spilling, scheduling by size) asks sizeof() of every result: a Dict
# is a handle to a C++ table whose size Python cannot see.
@sizeof.register(_Words)
def _sizeof_words(w: _Words) -> int:
    return int(w.data.nbytes + w.offsets.nbytes + w.values.nbytes) + 256


@sizeof.register(Dict)
def _sizeof_dict(d: Dict) -> int:
    if not d._typed:
        return 64
    _, _, kc, vc = d._numba_type_.layouts
    per_entry = kc + vc + 2  # slots at load <= 0.8, plus metadata
    if d.key_type == types.unicode_type:
        per_entry += 32  # the strings themselves, on average
    return int(len(d) * per_entry / 0.8) + 256
