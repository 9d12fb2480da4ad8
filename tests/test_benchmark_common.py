"""benchmarks/common.py makes a benchmark read the checkout's `recsys`, whatever else is importable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_checkout_wins_over_another_recsys_on_the_path(tmp_path: Path) -> None:
    decoy = tmp_path / "other-clone" / "recsys"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("", encoding="utf-8")
    script = (
        f"import sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r}); "
        "import common, recsys; print(recsys.__file__)"
    )
    env = {"PYTHONPATH": str(decoy.parent), "PATH": "/usr/bin:/bin"}
    shown = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                           check=True).stdout.strip()  # fmt: skip
    assert Path(shown) == REPO / "recsys" / "__init__.py"


def test_max_time_is_a_duration_lightning_accepts_past_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    """Caps of 100 minutes and more once went out as "00:00:135:00", which Lightning refuses."""
    from datetime import timedelta

    from pytorch_lightning.callbacks import Timer

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from common import max_time

    for minutes in (0.5, 30, 90, 135, 1500):
        assert Timer(duration=max_time(minutes))._duration == timedelta(minutes=minutes).total_seconds()
