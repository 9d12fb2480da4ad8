"""What every benchmark prints beside its numbers: the machine it ran on, the package versions, memory.

Benchmarks run as scripts (`python benchmarks/NAME.py`), so this module is imported as `common` from the
script's own folder. Importing it also puts this checkout ahead of any installed `recsys`: the subprocesses the
benchmarks start (`python -m recsys.cli` from the repository root) read the checkout's code, and the numbers a
benchmark computes in its own process (popularity, rankers) must come from the same code, not from an install made
from another clone.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))  # after the script's folder, before site-packages


def write_text_atomic(path: Path, text: str) -> None:
    """A result file whole or not at all: written beside under a temporary name, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def max_time(minutes: float) -> str:
    """A wall-clock cap in minutes as Lightning's `trainer.max_time` (DD:HH:MM:SS, each field two digits:
    "00:00:135:00" is refused)."""
    hours, rest = divmod(round(minutes * 60), 3600)
    days, hours = divmod(hours, 24)
    return f"{days:02d}:{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, or what `platform` knows elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cores() -> int:
    """CPUs this process may run on (containers often report the host's count elsewhere)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages: a shared machine changes every timing, so results carry it."""
    return [round(x, 2) for x in os.getloadavg()]


def machine(**extra: Any) -> dict[str, Any]:
    return {"cpu": cpu_name(), "cores": cores(), "platform": platform.platform(), "load_average": load_average(),
            **extra}  # fmt: skip


def versions(*distributions: str) -> dict[str, str]:
    """Python and each named distribution's installed version ("missing" when it is not installed)."""
    found = {"python": platform.python_version()}
    for name in distributions:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def peak_rss_mib() -> float:
    """This process's peak resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
