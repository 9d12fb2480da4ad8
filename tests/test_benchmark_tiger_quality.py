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


def test_sports_and_toys_configs_are_the_beauty_recipe_on_their_data() -> None:
    """The Sports and Toys rows claim Beauty's Adafactor recipe untouched: only the data path and name may differ."""
    import yaml

    root = RESULTS.parents[1]
    beauty = yaml.safe_load((root / "configs/tiger/amazon-beauty-adafactor.yaml").read_text())
    for dataset in ("amazon-sports", "amazon-toys"):
        config = yaml.safe_load((root / f"configs/tiger/{dataset}-adafactor.yaml").read_text())
        assert config["data"]["init_args"].pop("path").endswith(f"/{dataset}")
        assert config.pop("experiment") == f"tiger-{dataset}-adafactor"
        expected = {k: v for k, v in beauty.items() if k != "experiment"}
        expected["data"] = {**beauty["data"], "init_args": {
            k: v for k, v in beauty["data"]["init_args"].items() if k != "path"}}
        assert config == expected


def test_another_dataset_gets_its_own_table(benchmark_script, tmp_path: Path, monkeypatch) -> None:
    """A Toys run goes to tiger_quality_amazon-toys.{json,md} under Toys' published row (no @5 there), without
    Beauty's H200 rows or notes, and leaves Beauty's file alone."""
    tiger_quality = benchmark_script("tiger_quality")
    monkeypatch.setattr(tiger_quality, "RESULTS", tmp_path)
    beauty = tmp_path / "tiger_quality.json"
    shutil.copy(RESULTS / "tiger_quality.json", beauty)
    (run,) = [r for r in json.loads(beauty.read_text())["runs"] if r.get("label") == "adafactor-lr1e-2"]
    toys = {**run, "dataset": "amazon-toys", "config": "configs/tiger/amazon-toys-adafactor.yaml", "label": "",
            "published_tiger": tiger_quality.DATASETS["amazon-toys"]["tiger"],
            "published_sasrec": tiger_quality.DATASETS["amazon-toys"]["sasrec"]}
    store = tiger_quality.results_file("amazon-toys", "json")
    assert store == tmp_path / "tiger_quality_amazon-toys.json"
    tiger_quality._store(store, {"runs": [toys], "retests": []})
    table = (tmp_path / "tiger_quality_amazon-toys.md").read_text()
    assert table.startswith("# TIGER on Amazon Toys and Games\n")
    assert "| TIGER, published (Table 1) |  |  | 0.0712 | 0.0432 | 200k steps, TPU |" in table
    for protocol in ("seen items kept", "seen items excluded"):  # no quality.json under the patched RESULTS
        assert (f"| SASRec, ours ({protocol}) | not yet measured (benchmarks/results/quality.json has no amazon-toys "
                "run)") in table
    assert "on an H200" not in table and "anonymous attribute tokens" in table
    assert "| TIGER, ours: `amazon-toys-adafactor` (20 epochs) | 0.0440 |" in table
    assert beauty.read_bytes() == (RESULTS / "tiger_quality.json").read_bytes()


def test_our_sasrec_rows_name_their_protocol(benchmark_script) -> None:
    """A run whose label does not say so (`...-trainexcl`) is still filed under the protocol it was tested with."""
    tiger_quality = benchmark_script("tiger_quality")
    kept, excluded = tiger_quality.our_sasrec("amazon-sports", False), tiger_quality.our_sasrec("amazon-sports", True)
    assert "seen items kept" in kept["protocol"] and "seen items excluded" in excluded["protocol"]
    assert tiger_quality.our_sasrec("amazon-sports")["metrics"]["ndcg@10"] == max(
        kept["metrics"]["ndcg@10"], excluded["metrics"]["ndcg@10"])


def test_average_tests_the_mean_only_when_it_validates_higher(benchmark_script, tmp_path: Path, monkeypatch) -> None:
    """--average adds the mean of best and last as a candidate; validation, never the test, picks among the three."""
    import time

    import torch

    tiger_quality = benchmark_script("tiger_quality")
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    for name, step, value in (("best-3-40.ckpt", 40, 1.0), ("last.ckpt", 55, 3.0)):
        torch.save({"state_dict": {"model.w": torch.full((2,), value)}, "global_step": step}, ckpts / name)
        time.sleep(0.01)
    logs = tmp_path / "run" / "logs" / "version_0"
    logs.mkdir(parents=True)
    (logs / "metrics.csv").write_text("epoch,step,val/ndcg@10\n3,40,0.030\n")
    for mean_score, expected in ((0.031, "mean-best-last.ckpt"), (0.020, "best-3-40.ckpt")):
        scores = {"validate-last": 0.025, "validate-mean": mean_score}
        monkeypatch.setattr(tiger_quality, "_validated", lambda ckpt, common, work, name, s=scores: s[name])
        chosen, info = tiger_quality.select_checkpoint(tmp_path / "run", [], tmp_path, average=True)
        assert chosen.name == expected and info["mean_val_ndcg@10"] == mean_score
        mean = torch.load(tmp_path / "mean-best-last.ckpt", weights_only=True)["state_dict"]["model.w"]
        assert torch.equal(mean, torch.full((2,), 2.0))
    chosen, info = tiger_quality.select_checkpoint(tmp_path / "run", [], tmp_path)  # without --average: best or last
    assert chosen.name == "best-3-40.ckpt" and "mean_val_ndcg@10" not in info


def test_resume_goes_on_from_last_and_adds_the_leg(benchmark_script, tmp_path: Path, monkeypatch) -> None:
    """--resume fits from the run's last.ckpt to a larger total cap, sums the legs' seconds, keeps both commands
    and drops the validation of the old last checkpoint (select_checkpoint would otherwise reuse it)."""
    import pytest

    tiger_quality = benchmark_script("tiger_quality")
    calls: list[tuple[list[str], Path]] = []
    monkeypatch.setattr(tiger_quality, "_recsys", lambda args, log: calls.append((args, log)) or 600.0)
    fit = ["fit", "--trainer.max_epochs", "60", "--trainer.max_time", "00:03:10:00"]
    with pytest.raises(SystemExit, match="holds no finished run"):
        tiger_quality.resume_fit(tmp_path, fit, 190, 60, "second")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"")
    (tmp_path / "validate-last").mkdir()
    record = {"fit_seconds": 5100.0, "cap_minutes": 85, "max_epochs": 60, "load_1m_start": 2.0, "command": "first"}
    (tmp_path / "fit_seconds.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="total cap"):
        tiger_quality.resume_fit(tmp_path, fit, 85, 60, "second")
    tiger_quality.resume_fit(tmp_path, fit, 190, 60, "second")
    (args, log), = calls
    assert args == [*fit, "--ckpt_path", str(tmp_path / "run" / "checkpoints" / "last.ckpt")]
    assert log == tmp_path / "fit-resume-1.log" and not (tmp_path / "validate-last").exists()
    assert json.loads((tmp_path / "fit_seconds.json").read_text()) == {
        **record, "fit_seconds": 5700.0, "cap_minutes": 190, "command": "first && second"}


def test_the_summary_line_names_the_best_run_against_the_paper(benchmark_script) -> None:
    tiger_quality = benchmark_script("tiger_quality")
    metrics = {"recall@5": 0.05, "ndcg@5": 0.03, "recall@10": 0.07, "ndcg@10": 0.04}
    kept, excluded = "full ranking, seen items kept", "full ranking, seen items excluded"
    runs = [{"config": "configs/tiger/a.yaml", "label": "low", "protocol": kept, "metrics": {**metrics, "ndcg@10": 0.02}},
            {"config": "configs/tiger/a.yaml", "label": "", "protocol": kept, "metrics": metrics},
            {"config": "configs/tiger/a.yaml", "label": "x", "protocol": excluded, "metrics": {**metrics, "ndcg@10": 0.09}}]
    line = tiger_quality._best_line(runs, {"recall@10": 0.0712, "ndcg@10": 0.0432})
    assert line == ("Highest test NDCG@10 among the fitted runs below (seen items kept): `a`, 0.0700 / 0.0400 "
                    "(recall@10, ndcg@10) against the published 0.0712 / 0.0432: at or above it on 0 of 2.")
    assert tiger_quality._best_line(runs[2:], {"ndcg@10": 0.0432}).startswith("No fitted run")
