"""Every ```python block of docs/python.md runs as written (each in its own process)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_doc_block_runs(i):
    r = subprocess.run(
        [sys.executable, "-c", BLOCKS[i]], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, f"block {i} of {DOC.name} failed:\n{BLOCKS[i]}\n{r.stderr}"
