"""gpu_check.py runs once, for minutes, on a lent GPU: its bookkeeping must be right before it gets there. A failing
job must become a reported result (not end the check), results must be on disk after every job, and a run folder
must be read back into the metrics and validation curve the report prints."""

from __future__ import annotations

import json
from pathlib import Path


def _report(gpu_check, out: Path):  # noqa: ANN001, ANN202
    return gpu_check.Report(out, "gpu_check", gpu_check.render, accelerator="gpu")


def test_a_failing_job_is_reported_and_the_files_are_written(benchmark_script, tmp_path: Path) -> None:
    gpu_check = benchmark_script("gpu_check")
    report = _report(gpu_check, tmp_path)

    def broken() -> dict:
        raise RuntimeError("CUDA error: out of memory")

    result = gpu_check.guarded(report, "bf16", broken)
    assert result["ok"] is False and result["error"] == "RuntimeError: CUDA error: out of memory"
    stored = json.loads((tmp_path / "gpu_check.json").read_text())
    assert stored["jobs"]["bf16"]["error"] == result["error"]
    assert "| bf16 | False |" in (tmp_path / "gpu_check.md").read_text()
    assert not list(tmp_path.glob(".*.tmp"))  # written under a temporary name, then renamed


def test_speed_targets_are_recboles_stored_best(benchmark_script) -> None:
    gpu_check = benchmark_script("gpu_check")
    runs = json.loads(gpu_check.SPEED_TARGETS.read_text())["runs"]
    stored = next(r for r in runs if r["dataset"] == "ml-100k" and r["model"] == "SASRec")
    assert gpu_check.speed_target("ml-100k", "sasrec") == stored["recbole"]["best_valid_ndcg@10"] > 0


def test_a_run_folder_is_read_back_and_rendered(benchmark_script, tmp_path: Path) -> None:
    gpu_check = benchmark_script("gpu_check")
    logs = tmp_path / "run" / "logs" / "version_0"
    logs.mkdir(parents=True)
    (logs / "test_metrics.json").write_text(json.dumps(
        {"protocol": "full ranking over 5 items, leave-one-out (test), seen items kept, K=10",
         "metrics": {"recall@10": 0.123456, "ndcg@10": 0.06543}}))  # fmt: skip
    (logs / "metrics.csv").write_text(
        "epoch,step,train/loss,val/ndcg@10\n0,9,2.5,\n0,10,,0.02\n1,20,,0.05\n2,30,,0.04\n")
    result = gpu_check.fit_result(tmp_path / "run")
    assert result["ok"] and result["test"] == {"recall@10": 0.1235, "ndcg@10": 0.0654}
    assert result["val_ndcg@10_by_epoch"] == [[0, 0.02], [1, 0.05], [2, 0.04]]
    result.update(wall_s=12.0, command="-m recsys.cli fit --config c.yaml")
    report = _report(gpu_check, tmp_path / "out")
    report.add("fit_sasrec", result)
    report.add("fit_tiger", {"ok": False, "error": "exit 1; see fit_tiger.log", "wall_s": 3.0, "command": "x"})
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    # best validation at logged epoch 1 is the second epoch; three epochs were validated
    assert "| fit_sasrec | True | 0.1235 | 0.0654 | full ranking over 5 items" in table
    assert "| 0.0500 (2) | 3 | 12.0 |" in table
    assert "| fit_tiger | False | | | exit 1; see fit_tiger.log |" in table


def test_a_run_without_test_metrics_is_a_failure(benchmark_script, tmp_path: Path) -> None:
    gpu_check = benchmark_script("gpu_check")
    assert gpu_check.fit_result(tmp_path) == {"ok": False, "error": "no test_metrics.json"}


def test_sweep_reads_a_finished_job_and_renders_its_row(benchmark_script, tmp_path: Path) -> None:
    """gpu_sweep.py: a job's test metrics, validation curve and last step come from its run folder; a job that
    failed is a row with its error; both are on disk after each job."""
    gpu_sweep = benchmark_script("gpu_sweep")
    logs = tmp_path / "work" / "tiger_x" / "logs" / "version_0"
    logs.mkdir(parents=True)
    (logs / "test_metrics.json").write_text(json.dumps(
        {"protocol": "full ranking over 5 items, leave-one-out (test), seen items kept, K=5,10",
         "metrics": {"recall@5": 0.01, "ndcg@5": 0.005, "recall@10": 0.02, "ndcg@10": 0.0101}}))  # fmt: skip
    (logs / "metrics.csv").write_text("epoch,step,train/loss,val/ndcg@10\n0,50,2.5,\n0,64,,0.01\n1,128,,0.03\n")
    command = gpu_sweep.fit_command("configs/tiger/amazon-beauty-gpu.yaml", tmp_path, "amazon-beauty",
                                    tmp_path / "work" / "tiger_x", 90, ["--trainer.accelerator", "gpu"])
    result = gpu_sweep.job_result("tiger_x", command, 0, 95.04)
    assert result["steps"] == 128 and result["wall_s"] == 95.0
    assert result["command"].startswith("recsys fit --config configs/tiger/amazon-beauty-gpu.yaml")
    report = gpu_sweep.Report(tmp_path / "out", "gpu_sweep", gpu_sweep.render)
    report.add("tiger_x", result)
    report.add("tiger_y", gpu_sweep.job_result("tiger_y", command, 1, 3.0))
    table = (tmp_path / "out" / "gpu_sweep.md").read_text()
    assert "| tiger_x | 0.0100 | 0.0050 | 0.0200 | 0.0101 | full ranking over 5 items" in table
    assert "| 0.0300 (2) | 2 | 128 | 95.0 |" in table
    assert "| tiger_y | | | | | exit 1; see tiger_y.log |" in table
    assert json.loads((tmp_path / "out" / "gpu_sweep.json").read_text())["jobs"]["tiger_x"]["steps"] == 128


def test_sweep_cosine_jobs_end_their_decay_at_a_set_step(benchmark_script) -> None:
    """A `_cos` job decays to zero at --trainer.max_steps; a constant-rate job sets no step limit (its time cap and
    early stopping end it)."""
    gpu_sweep = benchmark_script("gpu_sweep")

    def value(args: list[str], key: str) -> str | None:
        return args[args.index(key) + 1] if key in args else None

    cosine = gpu_sweep.tiger_job(2048, 1e-3, 100, 4, 1560)
    assert value(cosine, "--model.init_args.schedule") == "cosine"
    assert value(cosine, "--trainer.max_steps") == "1560"
    assert value(cosine, "--data.init_args.batch_size") == "2048"
    constant = gpu_sweep.tiger_job(1024, 5e-4, 100, 3)
    assert value(constant, "--model.init_args.schedule") == "constant"
    assert value(constant, "--trainer.max_steps") is None
    for name, (_, _, args) in gpu_sweep.JOBS.items():
        if name.startswith("tiger_") and name.endswith(("_cos", "_cos_alone")):
            assert value(args, "--model.init_args.schedule") == "cosine", name
        if name.startswith("tiger_adafactor_"):  # the paper's recipe: Adafactor at 0.01, constant, no decay
            assert value(args, "--model.init_args.optimizer") == "adafactor", name
            assert value(args, "--model.init_args.weight_decay") == "0.0" and value(args, "--model.init_args.lr") == "0.01"
            assert value(args, "--model.init_args.schedule") == "constant", name
    assert value(constant, "--model.init_args.optimizer") is None  # AdamW, the config's own


def test_the_recformer_gpu_config_is_the_measured_sweep_job(benchmark_script) -> None:
    """configs/recformer/amazon-beauty-gpu.yaml cites job recformer_l6_e4's numbers: it must be that job's recipe,
    the 2-core config with the job's overrides, and nothing else changed."""
    import yaml

    gpu_sweep = benchmark_script("gpu_sweep")
    base_path, _, args = gpu_sweep.JOBS["recformer_l6_e4"]
    root = Path(__file__).resolve().parents[1]
    base = yaml.safe_load((root / base_path).read_text())
    gpu = yaml.safe_load((root / "configs/recformer/amazon-beauty-gpu.yaml").read_text())
    overrides = dict(zip(args[::2], args[1::2], strict=True))
    model = base["model"]["init_args"]["model"]["init_args"]
    assert int(overrides["--model.init_args.model.init_args.n_layers"]) == 6  # MiniLM's whole depth
    model["n_layers"] = None
    model["dropout"] = float(overrides["--model.init_args.model.init_args.dropout"])
    base["model"]["init_args"]["temperature"] = float(overrides["--model.init_args.temperature"])
    base["trainer"]["max_epochs"] = int(overrides["--trainer.max_epochs"])
    base["trainer"]["precision"] = "bf16-mixed"  # gpu_sweep adds it to every job
    del base["trainer"]["max_time"]  # the sweep's cap, never reached by this job (all 1,676 steps ran)
    base["seed_everything"] = int(overrides["--seed_everything"])
    base["experiment"] = gpu["experiment"]
    assert gpu == base


def test_kept_weights_lose_the_optimiser_and_shrink_to_bf16_only_over_the_limit(benchmark_script, tmp_path: Path) -> None:
    """A call brings back 16 MiB a file: `--keep-best` keeps what `recsys test` loads, in bf16 only when fp32 is
    over the limit, and never the optimiser's state."""
    import torch

    gpu_sweep = benchmark_script("gpu_sweep")
    weights = {"w": torch.randn(1000), "codes": torch.arange(10)}
    torch.save({"state_dict": weights, "hyper_parameters": {"lr": 0.01}, "optimizer_states": [{"m": 1}],
                "loops": {}, "lr_schedulers": []}, tmp_path / "best.ckpt")  # fmt: skip
    small = torch.load(gpu_sweep.keep_weights(tmp_path / "best.ckpt", tmp_path / "a.ckpt", limit_bytes=100))
    assert set(small) == {"state_dict", "hyper_parameters"}
    assert small["state_dict"]["w"].dtype == torch.bfloat16 and small["state_dict"]["codes"].dtype == torch.int64
    assert torch.allclose(small["state_dict"]["w"].float(), weights["w"], rtol=1e-2, atol=1e-2)
    exact = torch.load(gpu_sweep.keep_weights(tmp_path / "best.ckpt", tmp_path / "b.ckpt", limit_bytes=10**6))
    assert torch.equal(exact["state_dict"]["w"], weights["w"])
    assert not list(tmp_path.glob("*.tmp"))


def test_sweep_renders_the_seen_excluded_retest_beside_the_row(benchmark_script, tmp_path: Path) -> None:
    gpu_sweep = benchmark_script("gpu_sweep")
    report = gpu_sweep.Report(tmp_path, "gpu_sweep", gpu_sweep.render)
    test = {"recall@5": 0.04, "ndcg@5": 0.03, "recall@10": 0.07, "ndcg@10": 0.035}
    report.add("tiger_a", {"ok": True, "test": test, "protocol": "seen items kept", "wall_s": 1.0, "command": "x",
                           "test_seen_excluded": {**test, "ndcg@10": 0.044}})  # fmt: skip
    report.add("tiger_b", {"ok": True, "test": test, "protocol": "seen items kept", "wall_s": 1.0, "command": "x",
                           "test_seen_excluded": "exit 1"})  # fmt: skip
    table = (tmp_path / "gpu_sweep.md").read_text()
    assert "| tiger_a | 0.0400 | 0.0300 | 0.0700 | 0.0440 |" in table
    assert "| tiger_b | 0.0400 | 0.0300 | 0.0700 | 0.0350 | seen items kept" in table
    assert table.count("| tiger_b |") == 1  # a failed retest leaves no row in the seen-excluded table
