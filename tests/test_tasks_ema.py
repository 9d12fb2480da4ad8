"""WeightEMA: the average it keeps is the EMA of the weights after each step, integer buffers survive it, the
checkpoint holds it for testing and the raw weights for resuming, and TIGER's semantic-ID table (built at setup,
after Lightning's own averaging callback would have copied the module) is in the average from the start."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from recsys.cli import main as recsys_main
from recsys.scoring.average import average_checkpoints
from recsys.scoring.checkpoint import CheckpointError
from recsys.tasks import WeightEMA
from recsys.tasks.ema import ema_blend


def test_blend_moves_floats_by_one_minus_decay_and_copies_integers() -> None:
    avg, cur = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0])
    assert torch.allclose(ema_blend(avg, cur, torch.tensor(100), decay=0.9, warmup=0), torch.tensor([1.2, 2.4]))
    codes = torch.tensor([254, 3])
    assert torch.equal(ema_blend(codes, torch.tensor([254, 7]), torch.tensor(5), decay=0.999, warmup=0),
                       torch.tensor([254, 7]))
    # warm-up: update 0 keeps only 1/10 of the old average, later updates approach `decay`
    assert torch.allclose(ema_blend(avg, cur, torch.tensor(0), decay=0.99, warmup=10), avg * 0.1 + cur * 0.9)
    assert torch.allclose(ema_blend(avg, cur, torch.tensor(10_000), decay=0.99, warmup=10), avg * 0.99 + cur * 0.01)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(decay=1.0)
    with pytest.raises(ValueError, match="warmup"):
        WeightEMA(warmup=-1)


class _Regression(pl.LightningModule):
    """One linear layer and an integer buffer that setup fills in, as TIGER's semantic-ID table is."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.register_buffer("table", torch.full((4,), -1, dtype=torch.long))
        self.seen: list[dict[str, torch.Tensor]] = []
        self.validated_with: list[torch.Tensor] = []

    def setup(self, stage: str) -> None:
        if stage == "fit" and int(self.table[0]) < 0:
            self.table.copy_(torch.tensor([7, 254, 1, 3]))

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.linear(x).squeeze(-1), y)

    def on_train_batch_end(self, outputs: object, batch: object, batch_idx: int) -> None:
        self.seen.append({k: v.detach().clone() for k, v in self.linear.state_dict().items()})

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.validated_with.append(self.linear.weight.detach().clone())
        assert int(self.table[1]) == 254  # the table is in place for the averaged weights too
        self.log("val/loss", float(batch_idx))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    return DataLoader(TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5])), batch_size=8)


def _trainer(root: Path, epochs: int) -> pl.Trainer:
    """Checkpoints as `recsys fit` saves them: during fit (last.ckpt after each validation), while the module
    holds its raw weights; a checkpoint saved after fit would hold the average twice."""
    saver = pl.callbacks.ModelCheckpoint(dirpath=root / "checkpoints", save_last=True)
    return pl.Trainer(max_epochs=epochs, callbacks=[WeightEMA(decay=0.5, warmup=0), saver], logger=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
                      accelerator="cpu", num_sanity_val_steps=1, limit_val_batches=1)


def _fit_one_epoch(root: Path) -> tuple[_Regression, pl.Trainer, Path]:
    """A seeded 1-epoch fit: the module, its trainer, and the last.ckpt it saved."""
    pl.seed_everything(0)
    module = _Regression()
    trainer = _trainer(root, epochs=1)
    trainer.fit(module, _loader(), _loader())
    return module, trainer, root / "checkpoints" / "last.ckpt"


def _expected_ema(initial: dict[str, torch.Tensor], steps: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    ema = {k: v.clone() for k, v in initial.items()}
    for weights in steps:
        ema = {k: 0.5 * ema[k] + 0.5 * weights[k] for k in ema}
    return ema


def test_checkpoint_holds_the_ema_for_testing_and_the_raw_weights_for_resuming(tmp_path: Path) -> None:
    pl.seed_everything(0)
    module = _Regression()
    initial = {k: v.detach().clone() for k, v in module.linear.state_dict().items()}
    trainer = _trainer(tmp_path, epochs=1)
    trainer.fit(module, _loader(), _loader())
    ckpt_path = tmp_path / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=False)
    expected = _expected_ema(initial, module.seen)  # 8 steps of batches of 8
    for name, value in expected.items():
        assert torch.allclose(ckpt["state_dict"][f"linear.{name}"], value, atol=1e-6), name
    assert torch.equal(ckpt["state_dict"]["table"], torch.tensor([7, 254, 1, 3]))
    assert ckpt["averaging_state"]["n_averaged"] == len(module.seen) + 1  # the seed copy, then one per step
    # validation ran on the averaged weights: the sanity check on the seed copy (the initial weights), the
    # epoch's validation on the EMA of the 8 steps
    assert torch.allclose(module.validated_with[0], initial["weight"])
    assert torch.allclose(module.validated_with[-1], expected["weight"], atol=1e-6)
    # fit ends with the average in the module: what an in-process test then scores
    assert torch.allclose(module.linear.weight, expected["weight"], atol=1e-6)
    # the raw weights of the last step are kept beside the average
    assert torch.allclose(ckpt["current_model_state"]["linear.weight"], module.seen[-1]["weight"])

    # resuming continues the raw weights and the average, as one 2-epoch run would
    resumed = _Regression()
    _trainer(tmp_path / "resumed", epochs=2).fit(resumed, _loader(), _loader(), ckpt_path=ckpt_path)
    pl.seed_everything(0)
    straight = _Regression()
    _trainer(tmp_path / "straight", epochs=2).fit(straight, _loader(), _loader())
    assert torch.allclose(resumed.linear.weight, straight.linear.weight, atol=1e-6)


def test_testing_a_checkpoint_in_the_fitting_process_scores_the_average(tmp_path: Path) -> None:
    module, trainer, ckpt_path = _fit_one_epoch(tmp_path)
    average = torch.load(ckpt_path, weights_only=False)["state_dict"]["linear.weight"]
    module.linear.weight.data.zero_()
    trainer.validate(module, _loader(), ckpt_path=ckpt_path, verbose=False)
    assert torch.allclose(module.linear.weight, average)  # Lightning's callback would reload the raw weights


def test_averaging_ema_checkpoints_drops_the_raw_weights_kept_beside_them(tmp_path: Path) -> None:
    _, _, last = _fit_one_epoch(tmp_path)
    out = torch.load(average_checkpoints([last, last], tmp_path / "mean.ckpt"), weights_only=False)
    assert "current_model_state" not in out and "averaging_state" not in out
    assert torch.equal(out["state_dict"]["table"], torch.tensor([7, 254, 1, 3]))


def test_raw_takes_the_weights_the_average_smooths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module, _, last = _fit_one_epoch(tmp_path)
    assert recsys_main(["average", "--raw", str(last), "--out", str(tmp_path / "raw.ckpt")]) == 0
    assert "averaged raw weights of 1 checkpoint ->" in capsys.readouterr().out
    raw = torch.load(tmp_path / "raw.ckpt", weights_only=False)
    assert torch.allclose(raw["state_dict"]["linear.weight"], module.seen[-1]["weight"])
    assert torch.equal(raw["state_dict"]["table"], torch.tensor([7, 254, 1, 3]))
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints([last], tmp_path / "mean.ckpt")
    with pytest.raises(CheckpointError, match="no current_model_state"):
        average_checkpoints([tmp_path / "raw.ckpt"], tmp_path / "again.ckpt", raw=True)
