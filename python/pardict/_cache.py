"""numba's on-disk cache for pardict's own jitted helpers, keyed by the whole package.

numba keys a cached function by its own source file (and numba's version). A helper in
_helpers.py compiles in code from every module of pardict.numba and calls the compiled C ABI by
name, so a cache entry is valid only for the exact package it was made with: the locators here
stamp entries with a fingerprint of pardict's version, all its Python sources and its compiled
module. An upgrade of pardict or numba therefore never loads a stale entry. Where entries live
follows numba's own rules (NUMBA_CACHE_DIR, else the package's __pycache__ when writable, else the
user-wide cache directory), so a read-only install caches per user.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import secrets
from pathlib import Path
from typing import Any

import numba
from numba.core import caching

_PACKAGE = Path(__file__).resolve().parent


@functools.cache
def fingerprint() -> str:
    """pardict's version, the bytes of its Python sources, its compiled module's size and time."""
    from . import _ext

    h = hashlib.sha256(f"{_ext.__version__} numba {numba.__version__}".encode())
    for path in sorted(_PACKAGE.rglob("*.py")):
        h.update(path.relative_to(_PACKAGE).as_posix().encode())
        h.update(path.read_bytes())
    st = os.stat(_ext.__file__)
    h.update(f"{st.st_size} {st.st_mtime_ns}".encode())
    return h.hexdigest()


def _in_package(py_file: str) -> bool:
    try:
        return Path(py_file).resolve().is_relative_to(_PACKAGE)
    except OSError:
        return False


def _package_keyed(locator_class: Any) -> Any:
    """numba's `locator_class`, for pardict's files only, stamping entries with fingerprint()."""

    class PardictLocator(locator_class):
        def get_source_stamp(self):
            return fingerprint()

        @classmethod
        def from_function(cls, py_func, py_file):
            if not _in_package(py_file):
                return None
            return super().from_function(py_func, py_file)

    PardictLocator.__name__ = PardictLocator.__qualname__ = f"Pardict{locator_class.__name__}"
    return PardictLocator


_LOCATORS = [
    _package_keyed(caching.UserProvidedCacheLocator),
    _package_keyed(caching.InTreeCacheLocator),
    _package_keyed(caching.UserWideCacheLocator),
]


def _spread_unique_ids() -> None:
    """Start numba's function-id counter at a random point of a 2**62 range.

    numba names every compiled function by its qualified name, its argument types and an id from
    a per-process counter that starts at 1 (the `v<id>` ABI tag), and links the functions of the
    libraries it loads from its cache by those names, sharing one body per name (numba issue
    10486, open). Two processes that compile in the same order give the same ids to different
    functions that share a name and argument types: pardict's bulk methods are such functions
    (one closure per op, e.g. set_many's assign and add_many's add). A third process that loaded
    both from the cache ran one body for both: set_many added after an add_many had run
    (tests/python/test_cache.py). With every process starting at its own random point, ids from
    different processes do not meet (two processes of 10**6 compilations each overlap with
    probability ~1e-12). Functions compiled before pardict was imported keep their small ids;
    none of them is in pardict's cached helpers. Left alone if something else has already
    replaced numba's counter."""
    from numba.core import bytecode

    ident = bytecode.FunctionIdentity
    if type(ident._unique_ids) is itertools.count and not _spread[0]:
        ident._unique_ids = itertools.count(secrets.randbits(62) | 1 << 61)
        _spread[0] = True


_spread = [False]


def install() -> None:
    """Put pardict's locators first (idempotent); other files still get numba's own. Spread
    numba's function ids (see _spread_unique_ids)."""
    _spread_unique_ids()
    classes = caching.CacheImpl._locator_classes
    for loc in reversed(_LOCATORS):
        if loc not in classes:
            classes.insert(0, loc)
