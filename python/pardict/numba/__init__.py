"""numba integration of pardict: the DictType, its lowering, boxing and unboxing."""

from . import dictobject, boxing  # noqa: F401  (registers the lowering)
from .types import DictType, check_key_type, check_value_type

__all__ = ["DictType", "check_key_type", "check_value_type"]
