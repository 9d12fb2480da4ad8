"""RecBole 1.2.1 in its own virtual environment, so its old pins never touch the project's interpreter.

RecBole uses numpy aliases that numpy 2 removed, so it needs numpy 1.26.4, pandas 2.1.4 and scipy 1.11.4,
none of which may leak into the main environment. Torch is installed first, from the same 2.13.0 release
the project uses (pip finds the local CPU wheel), so speed comparisons run on identical kernels.

Usage from another benchmark: `python = recbole_python()` then run a script with that interpreter.
`python benchmarks/recbole_env.py` creates the environment and prints the interpreter's path.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VENV_DIR = Path(__file__).resolve().parent / ".venv-recbole"
TORCH_PIN = "torch==2.13.0"
RECBOLE_PINS = ("recbole==1.2.1", "numpy==1.26.4", "pandas==2.1.4", "scipy==1.11.4")
_READY_MARKER = ".recsys-ready"


def _pins_text() -> str:
    return "\n".join((TORCH_PIN, *RECBOLE_PINS)) + "\n"


def _run(cmd: list[str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {done.returncode}; see {log}")


def recbole_python(venv: Path = VENV_DIR, base_python: str = sys.executable) -> Path:
    """The venv's interpreter, creating and filling the venv first if it is missing or half-built.

    Idempotent: a marker file holding the pins is written only after every install succeeded, so an
    interrupted build is detected and redone, and a finished one costs nothing.
    """
    python = venv / "bin" / "python"
    marker = venv / _READY_MARKER
    if python.exists() and marker.exists() and marker.read_text() == _pins_text():
        return python
    venv.mkdir(parents=True, exist_ok=True)
    log = venv / "install.log"
    if not python.exists():
        _run([base_python, "-m", "venv", str(venv)], log)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    _run([*pip, TORCH_PIN], log)
    _run([*pip, *RECBOLE_PINS], log)
    _run([str(python), "-c", "import recbole, torch, numpy; print(recbole.__version__, torch.__version__)"], log)
    marker.write_text(_pins_text())
    return python


if __name__ == "__main__":
    print(recbole_python())
