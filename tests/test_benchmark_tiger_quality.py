"""tiger_quality.py keeps fitted runs and retests of GPU checkpoints in one JSON: writing one part must keep the
other, and a retest must show as its own row with its protocol."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def test_a_retest_row_is_added_and_the_fitted_runs_are_kept(benchmark_script, tmp_path: Path, monkeypatch) -> None:
    tiger_quality = benchmark_script("tiger_quality")
    monkeypatch.setattr(tiger_quality, "RESULTS", tmp_path)
    store = tmp_path / "tiger_quality.json"
    shutil.copy(RESULTS / "tiger_quality.json", store)
    runs = json.loads(store.read_text())["runs"]
    metrics = {"recall@5": 0.05, "ndcg@5": 0.033, "recall@10": 0.079, "ndcg@10": 0.0426}
    retest = {"label": "seen-excluded", "checkpoint": "x.ckpt", "n_users": 22363, "metrics": metrics,
              "protocol": "full ranking over 12,101 items, leave-one-out (test), seen items excluded, K=5,10,20",
              "test_seconds": 180.0, "command": "python benchmarks/tiger_quality.py --retest x.ckpt"}  # fmt: skip
    tiger_quality._store(store, {**tiger_quality.stored(store), "retests": [retest]})
    saved = json.loads(store.read_text())
    assert saved["runs"] == runs and saved["retests"] == [retest]
    table = (tmp_path / "tiger_quality.md").read_text()
    assert ("| TIGER, ours on an H200, `x.ckpt` tested on this CPU: `seen-excluded` (seen items excluded) | 0.0500 | "
            "0.0330 | 0.0790 | 0.0426 | test 3.0 min |") in table
    tiger_quality._store(store, {**tiger_quality.stored(store), "runs": runs})  # the retests are kept
    assert json.loads(store.read_text())["retests"] == [retest]
