"""pardict: a thread-safe typed dictionary for numba's prange and nogil code.

``pardict.Dict`` is a drop-in for ``numba.typed.Dict`` that may be read and written from every
thread of a ``prange`` loop, from ``nogil`` functions run by several Python threads, and from the
interpreter, at once. See docs/python.md and docs/concurrency.md.
"""

from . import _ext


def _register_symbols():
    # Jitted code (and code numba loads from its cache) calls the C ABI by symbol name; the names
    # must resolve before any such code is linked, so this runs at import.
    import llvmlite.binding as ll
    from numba.core.runtime import _nrt_python

    for name, address in _ext.symbols().items():
        ll.add_symbol(name, address)
    from numba.core import config

    helpers = _nrt_python.c_helpers
    _ext.set_release(helpers["MemInfo_release"])
    # Strings made in C++ are allocated as numba allocates its own (numba.core.runtime.context).
    alloc = "MemInfo_alloc_safe" if config.DEBUG_NRT else "MemInfo_alloc"
    _ext.set_nrt(
        helpers["MemInfo_alloc_dtor"],
        helpers[alloc],
        helpers["MemInfo_data"],
        helpers["MemInfo_release"],
    )


_register_symbols()

from numba.core import config as _numba_config  # noqa: E402

from .numba import DictType  # noqa: E402
from .numba.group import group_indices  # noqa: E402

if not getattr(_numba_config, "DISABLE_JIT", False):
    from .dict import Dict, partition_of
    from .numba.atomic import update
else:  # jitted code runs as Python: Dict is a dict with pardict's methods (see _nojit.py)
    from ._nojit import Dict, update  # type: ignore[assignment]
    from .dict import partition_of

__all__ = ["Dict", "DictType", "group_indices", "live_dicts", "live_refs", "partition_of", "update"]
__version__ = _ext.__version__


def live_dicts() -> int:
    """How many pardict tables are alive in this process (for leak checks)."""
    return _ext.live_dicts()


def live_refs() -> int:
    """How many numba runtime references pardict tables and iterators hold (for leak checks)."""
    return _ext.live_refs()
