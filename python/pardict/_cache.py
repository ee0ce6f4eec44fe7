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
import os
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


def install() -> None:
    """Put pardict's locators first (idempotent); other files still get numba's own."""
    classes = caching.CacheImpl._locator_classes
    for loc in reversed(_LOCATORS):
        if loc not in classes:
            classes.insert(0, loc)
