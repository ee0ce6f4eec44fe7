"""numba integration of pardict: the DictType, its lowering, boxing and unboxing.

Modules, each building on the ones before it: types (the numba types), abi (the C ABI: its
numbers, a check of numba's data model, one intrinsic per C function), convert (casting rules,
owned copies of borrowed arrays), dictobject (the mapping API), atomic (add/min/max, update),
bulk (the *_many operations, merge, from_arrays), split (Dict.split and its process-independent
key hash), boxing (typeof, box, unbox, constructors); group (group_indices: rows grouped by key,
no dict).
"""

from . import atomic, boxing, bulk, dictobject, group, split  # noqa: F401  (registers the lowering)
from .types import DictType, check_key_type, check_value_type

__all__ = ["DictType", "check_key_type", "check_value_type"]
