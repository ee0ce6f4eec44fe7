"""The main job (README's first command): scripts/demo_seed.py at small sizes.

The demo runs the seed program with numba.typed.Dict (in a subprocess, where it usually aborts)
and with pardict.Dict, checks every pardict entry and prints timings. Whether typed.Dict crashes
is up to the scheduler, so only the report of it is checked; pardict's checks must all pass.
"""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_reports_both_dictionaries():
    p = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "demo_seed.py"),
            "--typed-n",
            "100000",
            "--n",
            "20000",
            "--threads",
            "1,2",
            "--no-one-thread",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    out = p.stdout
    # typed.Dict: one report line for n = 100,000 (a crash with its signal, or what it kept)
    assert re.search(r"^\s+n =\s+100,000\s+threads = \d+: ", out, re.M), out
    rows = re.findall(
        r"^\s+pardict\.Dict, prange\s+20,000\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+(\S+)", out, re.M
    )
    assert sorted(rows) == [("1", "ok"), ("2", "ok")], out
    assert re.search(r"^\s+typed\.Dict, range \(serial\)\s+20,000\s+1\s+.*ok$", out, re.M), out
    assert out.rstrip().endswith("pardict checks: all passed"), out
