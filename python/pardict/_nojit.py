"""pardict.Dict when numba's JIT is disabled (NUMBA_DISABLE_JIT=1, how numba users debug).

Jitted functions then run as plain Python, and numba.typed.Dict is a plain dict; pardict.Dict is
this dict subclass with every method of the real one, so a program runs unchanged. Compound steps
(add/min/max, setdefault, insert, update) hold one lock per dict, so they stay atomic under
interpreter threads. Keys and values are not cast to the declared types (as with typed.Dict's
plain dict under NUMBA_DISABLE_JIT).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

_COMBINE: dict[str, Callable[[Any, Any], Any]] = {
    "assign": lambda old, x: x,
    "add": lambda old, x: old + x,
    "min": lambda old, x: x if x < old else old,
    "max": lambda old, x: x if old < x else old,
}


def _combine(op: str, old: Any, x: Any) -> Any:
    if isinstance(old, tuple):
        return tuple(_COMBINE[op](a, b) for a, b in zip(old, x, strict=True))
    if isinstance(old, np.ndarray):  # arrays combine in place, as the jitted add/min/max do
        if op == "add":
            old += x
        elif op != "assign":
            np.copyto(old, x, where=(x < old) if op == "min" else (old < x))
        else:
            return x
        return old
    return _COMBINE[op](old, x)


class Dict(dict):
    """pardict.Dict under NUMBA_DISABLE_JIT: a dict with pardict's methods."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.RLock()
        self.key_type: Any = None
        self.value_type: Any = None

    @classmethod
    def empty(cls, key_type: Any, value_type: Any, n_keys: int = 0) -> Dict:
        d = cls()
        d.key_type, d.value_type = key_type, value_type
        return d

    # ---- atomic steps ----------------------------------------------------------------------------

    def _step(self, op: str, key: Any, value: Any) -> Any:
        with self._lock:
            if key in self:
                self[key] = _combine(op, self[key], value)
            else:
                self[key] = value.copy() if isinstance(value, np.ndarray) else value
            return self[key]

    def add(self, key: Any, value: Any) -> Any:
        return self._step("add", key, value)

    def min(self, key: Any, value: Any) -> Any:
        return self._step("min", key, value)

    def max(self, key: Any, value: Any) -> Any:
        return self._step("max", key, value)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            return super().setdefault(key, default)

    def insert(self, key: Any, value: Any) -> bool:
        with self._lock:
            if key in self:
                return False
            self[key] = value
            return True

    def reserve(self, n: int) -> None:
        pass

    def copy(self) -> Dict:
        out = type(self)(self)
        out.key_type, out.value_type = self.key_type, self.value_type
        return out

    # ---- bulk ----------------------------------------------------------------------------------

    def _many(self, op: str, keys: Iterable, values: Iterable) -> int:
        keys, values = list(np.asarray(keys).tolist()), list(np.asarray(values).tolist())
        if len(keys) != len(values):
            raise ValueError("keys and values differ in length")
        new = 0
        for k, v in zip(keys, values, strict=True):
            new += k not in self
            self._step(op, k, v)
        return new

    def set_many(self, keys: Iterable, values: Iterable, threads: int | None = None) -> int:
        return self._many("assign", keys, values)

    def add_many(self, keys: Iterable, values: Iterable, threads: int | None = None) -> int:
        return self._many("add", keys, values)

    def min_many(self, keys: Iterable, values: Iterable, threads: int | None = None) -> int:
        return self._many("min", keys, values)

    def max_many(self, keys: Iterable, values: Iterable, threads: int | None = None) -> int:
        return self._many("max", keys, values)

    def count_many(self, keys: Iterable, threads: int | None = None) -> int:
        keys = np.asarray(keys)
        return self._many("add", keys, np.ones(keys.size, dtype=np.int64))

    def get_many(self, keys: Iterable, default: Any = 0, threads: int | None = None) -> np.ndarray:
        return np.array([self.get(k, default) for k in np.asarray(keys).tolist()])

    def contains_many(self, keys: Iterable, threads: int | None = None) -> np.ndarray:
        return np.array([k in self for k in np.asarray(keys).tolist()], dtype=np.bool_)

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(list(self.keys())), np.array(list(self.values()))

    def merge(self, other: Mapping, op: str = "assign", threads: int | None = None) -> int:
        if op not in _COMBINE:
            raise ValueError(f"unknown op {op!r}: use 'assign', 'add', 'min' or 'max'")
        return self._many(op, list(other.keys()), list(other.values()))

    def to_dict(self) -> dict:
        return dict(self)

    def to_typed(self) -> dict:
        return dict(self)

    @classmethod
    def from_arrays(cls, keys: Iterable, values: Iterable, threads: int | None = None) -> Dict:
        d = cls()
        d.set_many(keys, values)
        return d

    @classmethod
    def from_typed(cls, td: Mapping) -> Dict:
        return cls(td)

    @classmethod
    def from_dict(cls, mapping: Mapping, key_type: Any = None, value_type: Any = None) -> Dict:
        return cls(mapping)


def update(d: Dict, key: Any, fn: Callable[[Any], Any], default: Any) -> Any:
    """pardict.update under NUMBA_DISABLE_JIT: fn(d[key]) (or fn(default)) stored atomically."""
    with d._lock:
        v = fn(d[key] if key in d else default)
        d[key] = v
        return v
