"""The machine description every benchmark driver writes next to its results.

One place for what all drivers report (CPU, cores, memory, kernel, OS, transparent huge pages,
load at the start, date, the commit and whether the benchmarked sources differ from it); each
driver adds what only it knows (library versions, compiler, packages of its peers).
Standard library only: run_cpp.py runs under any python3.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

LSCPU_KEYS = (
    "Architecture",
    "CPU(s)",
    "On-line",
    "Thread(s) per core",
    "Core(s) per",
    "Socket(s)",
    "Vendor ID",
    "Model name",
    "CPU family",
    "Model:",
    "Hypervisor",
    "Virtualization type",
    "L1d",
    "L2",
    "L3",
    "NUMA node(s)",
    "BogoMIPS",
    "CPU max MHz",
)


def sh(cmd: list[str], timeout: float = 30) -> str:
    """stdout of cmd, stripped; "" if it cannot run."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout.strip()
    except Exception:
        return ""


def read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except Exception:
        return ""


def _field(text: str, name: str) -> str:
    return next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(name)), ""
    )


def describe(sources: tuple[str, ...]) -> dict:
    """The common description. `sources`: the repository folders whose uncommitted changes would
    make the results differ from the recorded commit."""
    info: dict = {}
    cpuinfo = read("/proc/cpuinfo")
    info["cpu_model"] = _field(cpuinfo, "model name") or platform.processor()
    info["avx512f"] = "avx512f" in _field(cpuinfo, "flags").split()
    info["lscpu"] = [
        line.strip() for line in sh(["lscpu"]).splitlines() if line.strip().startswith(LSCPU_KEYS)
    ]
    info["nproc"] = sh(["nproc"]) or str(os.cpu_count())
    info["cpu_count"] = os.cpu_count()
    mem = read("/proc/meminfo")
    info["memory"] = _field(mem, "MemTotal")
    info["swap"] = _field(mem, "SwapTotal")
    info["kernel"] = platform.release()
    deb = read("/etc/debian_version")
    info["os"] = f"Debian {deb}" if deb else platform.platform()
    info["thp_enabled"] = read("/sys/kernel/mm/transparent_hugepage/enabled")
    info["thp_defrag"] = read("/sys/kernel/mm/transparent_hugepage/defrag")
    info["loadavg_start"] = read("/proc/loadavg")
    info["date"] = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    info["git"] = sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) or "no commit"
    if sh(["git", "-C", str(REPO), "status", "--porcelain", "--", *sources]):
        info["git"] += f" (+ uncommitted changes in {', '.join(s + '/' for s in sources)})"
    return info
