"""The Python side of the C ABI (pardict.numba.abi): its numbers are the header's, every C function
it declares is exported, and an installed numba whose data model differs from what the C side
reads is refused at import."""

import re
from pathlib import Path

import pytest

import pardict
from pardict.numba import abi, datamodel

HEADER = Path(__file__).resolve().parents[2] / "capi" / "pardict_capi.h"


def _header_constants():
    """NAME -> value of every `PARDICT_NAME = value` enumerator in the header."""
    text = HEADER.read_text()
    return {m[1]: int(m[2]) for m in re.finditer(r"\bPARDICT_(\w+)\s*=\s*(-?\d+)", text)}


@pytest.mark.parametrize(
    "enum,prefix",
    [
        (abi.Status, ""),
        (abi.Result, ""),
        (abi.Op, "OP_"),
        (abi.Kind, "KIND_"),
        (abi.NumbaLayout, "NB_"),
    ],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_enums_are_the_headers_numbers(enum, prefix):
    header = _header_constants()
    names = list(enum.__members__)
    assert names
    for name in names:
        assert header[prefix + name] == enum[name], name


def test_every_enumerator_of_the_header_reaches_python():
    exported = {
        prefix + name
        for enum, prefix in (
            (abi.Status, ""),
            (abi.Result, ""),
            (abi.Op, "OP_"),
            (abi.Kind, "KIND_"),
            (abi.NumbaLayout, "NB_"),
        )
        for name in enum.__members__
    }
    assert set(_header_constants()) == exported


def test_every_declared_c_function_is_exported():
    symbols = pardict._ext.symbols()
    missing = [name for name in abi.PROTOTYPES if name not in symbols]
    assert not missing


def test_installed_numba_matches_the_layout_the_c_side_reads():
    datamodel.check_numba_layout()  # what the import already did; raises ImportError otherwise


def test_a_different_data_model_is_an_import_error_naming_the_field():
    expected = datamodel.expected_numba_layout()
    expected[("unicode", "hash")] += 8
    with pytest.raises(ImportError, match=r"unicode\.hash: the C side reads byte 32"):
        datamodel.check_numba_layout(expected)
    expected = datamodel.expected_numba_layout()
    expected[("array", "strides_first")] = 40
    with pytest.raises(ImportError, match="array.strides_first: .* no such field"):
        datamodel.check_numba_layout(expected)
