"""Every ```python block of docs/python.md and docs/dask.md runs as written (each in its own
process)."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCKS = {
    name: re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(), flags=re.S)
    for name in ("python.md", "dask.md")
}
CASES = [(name, i) for name, blocks in BLOCKS.items() for i in range(len(blocks))]


def test_the_docs_have_examples():
    assert len(BLOCKS["python.md"]) >= 2 and len(BLOCKS["dask.md"]) >= 1


@pytest.mark.parametrize("name, i", CASES)
def test_doc_block_runs(name, i):
    if name == "dask.md" and importlib.util.find_spec("distributed") is None:
        pytest.skip("pardict[dask] is not installed")
    r = subprocess.run(
        [sys.executable, "-c", BLOCKS[name][i]], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, f"block {i} of {name} failed:\n{BLOCKS[name][i]}\n{r.stderr}"
