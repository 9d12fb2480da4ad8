"""The Lightning CLI end to end on the synthetic data: fit, test, resume after a kill, DDP on two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration


def _recsys(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "recsys.cli", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )
    return proc


def _fit_args(config: str, data: Path, root: Path, epochs: int, extra: list[str] | None = None) -> list[str]:
    return [
        "fit", "--config", str(REPO / config), "--data.path", str(data),
        "--trainer.default_root_dir", str(root), "--trainer.max_epochs", str(epochs),
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        *(extra or []),
    ]  # fmt: skip


def test_fit_writes_checkpoints_logs_and_test_metrics(prepared_synthetic: Path, tmp_path: Path) -> None:
    root = tmp_path / "run"
    proc = _recsys(_fit_args("configs/sasrec/synthetic.yaml", prepared_synthetic, root, 2), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert list((root / "checkpoints").glob("best-*.ckpt"))
    metrics_files = list(root.rglob("test_metrics.json"))
    assert len(metrics_files) == 1
    record = json.loads(metrics_files[0].read_text())
    assert "full ranking" in record["protocol"]
    assert record["n_users"] == 1000
    assert 0.0 < record["metrics"]["ndcg@10"] <= 1.0
    assert list(root.rglob("metrics.csv")), "CSV logger wrote nothing"
    assert list(root.rglob("events.out.tfevents.*")), "TensorBoard logger wrote nothing"


STOPS = '''
import os
import pytorch_lightning as pl


class KillAtStep(pl.Callback):
    """Dies like `kill -9` (no clean-up, no checkpoint) once `step` optimiser steps are done."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os._exit(137)


class StopAtStep(KillAtStep):
    """Stops training the way Lightning's Timer does at max_time: should_stop in on_train_batch_end."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True
'''


def _with_stops(tmp_path: Path) -> dict[str, str]:
    """Writes the `stops` callbacks module into tmp_path; the environment that lets `recsys` import it."""
    (tmp_path / "stops.py").write_text(STOPS)
    return {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.mark.parametrize("config", ["configs/sasrec/synthetic.yaml", "configs/bert4rec/synthetic.yaml"])
def test_resume_after_kill_mid_epoch_equals_the_uninterrupted_run(
    prepared_synthetic: Path, tmp_path: Path, config: str
) -> None:
    """Killed like `kill -9` in the middle of the second epoch, then `--ckpt_path last`: the resumed run trains on
    exactly the batches the interrupted epoch had left, with BERT4Rec's cloze masks as the interrupted run would
    have drawn them, so (with dropout off, the only other randomness) it ends with the weights of a run that was
    never interrupted."""
    env = _with_stops(tmp_path)
    root = tmp_path / "run"
    from recsys.data import SequenceDataModule

    per_epoch = len(SequenceDataModule(str(prepared_synthetic), max_len=20, batch_size=128).train_dataloader())
    kill_at = per_epoch + per_epoch // 2 + 1  # in the middle of the second epoch
    common = ["--checkpoint.every_n_train_steps", "2", "--test_after_fit", "false",
              "--model.init_args.model.init_args.dropout", "0.0"]  # fmt: skip
    killed = _recsys(
        _fit_args(config, prepared_synthetic, root, 3,
                  [*common, "--trainer.callbacks+=stops.KillAtStep", f"--trainer.callbacks.step={kill_at}"]),
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert killed.returncode == 137, killed.stderr[-3000:]
    import torch

    last = root / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["epoch"] == 1 and per_epoch < state["global_step"] < kill_at + 1, "the kill was not mid-epoch"
    assert state["SequenceDataModule"] == {"train_batches": {"epoch": 1, "batch": state["global_step"] - per_epoch}}
    resumed = _recsys(
        _fit_args(config, prepared_synthetic, root, 3, [*common, "--ckpt_path", "last"]),
        cwd=tmp_path, env={"PYTHONWARNINGS": "default"},
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "max_epochs=3` reached" in resumed.stdout + resumed.stderr
    assert "not resumable" not in resumed.stderr
    final = torch.load(last, map_location="cpu", weights_only=False)
    assert final["global_step"] == 3 * per_epoch

    straight = tmp_path / "straight"
    proc = _recsys(_fit_args(config, prepared_synthetic, straight, 3, common), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = torch.load(straight / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert reference["global_step"] == final["global_step"]
    for name, tensor in reference["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_ddp_two_processes_match_single_process(prepared_synthetic: Path, tmp_path: Path) -> None:
    root = tmp_path / "ddp"
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    fitted = _recsys(
        _fit_args("configs/sasrec/synthetic.yaml", prepared_synthetic, root, 1, ddp), cwd=tmp_path, timeout=600
    )
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    ckpt = root / "checkpoints" / "last.ckpt"
    results = {}
    for name, extra in (("single", ["--trainer.devices", "1"]), ("ddp", ddp)):
        out = tmp_path / f"test-{name}"
        proc = _recsys(
            ["test", "--config", str(REPO / "configs/sasrec/synthetic.yaml"), "--data.path", str(prepared_synthetic),
             "--trainer.default_root_dir", str(out), "--ckpt_path", str(ckpt),
             "--trainer.enable_progress_bar", "false", *extra],
            cwd=tmp_path, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        (metrics_file,) = list(out.rglob("test_metrics.json"))
        results[name] = json.loads(metrics_file.read_text())
    assert results["ddp"]["n_users"] == results["single"]["n_users"] == 1000
    for key, value in results["single"]["metrics"].items():
        assert results["ddp"]["metrics"][key] == pytest.approx(value, abs=1e-6), key


def test_fit_help_documents_every_model_argument(tmp_path: Path) -> None:
    proc = _recsys(["fit", "--help"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import inspect

    from recsys.models import BERT4Rec, SASRec

    for cls in (SASRec, BERT4Rec):
        assert f"recsys.models.{cls.__name__}" in proc.stdout
        for name in inspect.signature(cls).parameters:
            assert f"    {name} (default" in proc.stdout, (cls.__name__, name)


def test_last_checkpoint_is_the_latest_epoch_not_the_best(prepared_synthetic: Path, tmp_path: Path) -> None:
    """`last.ckpt` must follow training, not the best epoch (plain Lightning 2.6 rewrites it only on a new best).

    Monitoring NDCG with mode=min makes the first epoch the best (NDCG rises while the model learns), so with
    the plain callback last.ckpt would stay at epoch 0.
    """
    import torch

    root = tmp_path / "run"
    extra = ["--checkpoint.mode", "min", "--early_stopping.mode", "min", "--test_after_fit", "false"]
    proc = _recsys(_fit_args("configs/sasrec/synthetic.yaml", prepared_synthetic, root, 3, extra), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    checkpoints = root / "checkpoints"
    (best,) = checkpoints.glob("best-*.ckpt")
    assert best.name.startswith("best-0-"), best.name  # the scenario: the best epoch is not the last
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    best_state = torch.load(best, map_location="cpu", weights_only=False)
    assert last["epoch"] == 2 and last["global_step"] == 3 * best_state["global_step"]
    # Stored under ModelCheckpoint's state key, so older checkpoints and plain Lightning resume it alike.
    assert any(key.startswith("ModelCheckpoint{") for key in last["callbacks"]), list(last["callbacks"])


def test_last_checkpoint_keeps_steps_after_the_last_validation(prepared_synthetic: Path, tmp_path: Path) -> None:
    """A run stopped mid-epoch (as max_time stops it: Lightning then validates once more) leaves its final state
    and its place in the epoch's batch order in last.ckpt, and `--ckpt_path last` goes on from there with early
    stopping on (it used to fail: the replayed end of the stopped epoch had no validation metric)."""
    import torch

    from recsys.data import SequenceDataModule

    env = _with_stops(tmp_path)
    per_epoch = len(SequenceDataModule(str(prepared_synthetic), max_len=20, batch_size=128).train_dataloader())
    stop = 2 * per_epoch + per_epoch // 2  # half-way through the third epoch, after two validations
    root = tmp_path / "run"
    extra = ["--trainer.callbacks+=stops.StopAtStep", f"--trainer.callbacks.step={stop}", "--test_after_fit", "false"]
    proc = _recsys(
        _fit_args("configs/sasrec/synthetic.yaml", prepared_synthetic, root, 5, extra), cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == stop
    assert last["SequenceDataModule"] == {"train_batches": {"epoch": 2, "batch": per_epoch // 2}}

    # Resumed from there (validation every epoch, early stopping on). Lightning counts the epoch a stop ended as
    # done, so the run goes on with the fourth and fifth epochs, each from its first batch and validated.
    resumed = _recsys(
        _fit_args("configs/sasrec/synthetic.yaml", prepared_synthetic, root, 5,
                  ["--test_after_fit", "false", "--early_stopping.patience", "100", "--ckpt_path", "last"]),
        cwd=tmp_path,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert final["global_step"] == stop + 2 * per_epoch
    import polars as pl

    validated = pl.read_csv(root / "logs" / "version_1" / "metrics.csv").filter(pl.col("val/ndcg@10").is_not_null())
    assert validated["epoch"].to_list() == [3, 4]


def test_model_overrides_read_dotted_arguments_and_short_forms() -> None:
    from recsys.tasks.cli import model_overrides

    argv = ["test", "--config", "c.yaml", "--model.init_args.exclude_seen", "true", "--model.lr=0.01",
            "--model.model.init_args.n_layers", "6", "--model.init_args.ks", "[5, 10]", "--ckpt_path", "x.ckpt"]
    assert model_overrides(argv) == {"model": {"init_args": {
        "exclude_seen": True, "lr": 0.01, "ks": [5, 10], "model": {"init_args": {"n_layers": 6}}}}}
    assert model_overrides(["fit", "--trainer.max_epochs", "3"]) == {}


def test_command_line_model_arguments_win_over_checkpoint_hyperparameters(
    prepared_synthetic: Path, tmp_path: Path
) -> None:
    """Lightning takes the model section from --ckpt_path's saved hyperparameters; a --model.* argument typed on
    the same command line (here: rank without the user's own history) must still apply."""
    root = tmp_path / "run"
    fitted = _recsys(
        _fit_args("configs/sasrec/synthetic.yaml", prepared_synthetic, root, 1, ["--test_after_fit", "false"]),
        cwd=tmp_path,
    )
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    protocols = {}
    for name, extra in (("kept", []), ("excluded", ["--model.init_args.exclude_seen", "true"])):
        out = tmp_path / name
        proc = _recsys(
            ["test", "--config", str(REPO / "configs/sasrec/synthetic.yaml"), "--data.path", str(prepared_synthetic),
             "--trainer.default_root_dir", str(out), "--ckpt_path", str(root / "checkpoints" / "last.ckpt"),
             "--trainer.enable_progress_bar", "false", *extra],
            cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        (metrics_file,) = list(out.rglob("test_metrics.json"))
        protocols[name] = json.loads(metrics_file.read_text())
    assert "seen items kept" in protocols["kept"]["protocol"]
    assert "seen items excluded" in protocols["excluded"]["protocol"]
    assert protocols["excluded"]["metrics"] != protocols["kept"]["metrics"]
