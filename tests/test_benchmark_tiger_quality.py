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
    cpu = {**retest, "label": "cpu-run", "trained_on": "this CPU (a.yaml)"}  # --trained-on names where it trained
    tiger_quality._store(store, {**tiger_quality.stored(store), "retests": [retest, cpu]})
    assert "| TIGER, ours on this CPU (a.yaml), `x.ckpt` tested on this CPU: `cpu-run` (seen items excluded) |" in (
        tmp_path / "tiger_quality.md").read_text()


def test_the_adafactor_config_is_the_measured_run() -> None:
    """configs/tiger/amazon-beauty-adafactor.yaml cites the `adafactor-lr1e-2` row: it must be that run's config
    with the run's overrides and nothing else changed."""
    import yaml

    root = RESULTS.parents[1]
    (run,) = [r for r in json.loads((RESULTS / "tiger_quality.json").read_text())["runs"]
              if r.get("label") == "adafactor-lr1e-2"]
    extra = run["command"].split(" --extra ", 1)[1].split()
    expected = yaml.safe_load((root / run["config"]).read_text())
    for key, value in zip(extra[::2], extra[1::2], strict=True):
        assert key.startswith("--model.init_args."), key
        expected["model"]["init_args"][key.removeprefix("--model.init_args.")] = yaml.safe_load(value)
    expected["experiment"] = "tiger-amazon-beauty-adafactor"
    shipped = yaml.safe_load((root / "configs/tiger/amazon-beauty-adafactor.yaml").read_text())
    assert shipped == expected
    assert shipped["model"]["init_args"]["optimizer"] == "adafactor"
