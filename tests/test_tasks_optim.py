"""The shared AdamW recipe: the fused kernel is chosen only where it is safe and steps like the plain loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from recsys.tasks.optim import build_optimizer, can_fuse


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(20, 8), nn.Linear(8, 8), nn.LayerNorm(8))


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "bf16-true"])
def test_fused_on_cpu_parameters(precision: str) -> None:
    assert can_fuse(_model(), precision)


@pytest.mark.parametrize("precision", ["16-mixed", "16-true"])
def test_not_fused_under_fp16_loss_scaling(precision: str) -> None:
    assert not can_fuse(_model(), precision)


@pytest.mark.parametrize(("precision", "clip", "fused"),
                         [("bf16-mixed", 1.0, False), ("bf16-mixed", 0.0, True), ("bf16-mixed", None, True),
                          ("32-true", 1.0, True), ("bf16-true", 1.0, True)])
def test_not_fused_when_lightning_clips_under_mixed_precision(precision: str, clip: float | None, fused: bool) -> None:
    assert can_fuse(_model(), precision, clip) is fused


def test_bf16_mixed_fit_with_gradient_clipping_runs(prepared_synthetic: Path, tmp_path: Path) -> None:
    """The combination TIGER's CPU configs use; Lightning raised on the first step with the fused AdamW."""
    import pytorch_lightning as pl

    from recsys.data import SequenceDataModule
    from recsys.models import SASRec
    from recsys.tasks.retrieval import RetrievalTask

    data = SequenceDataModule(str(prepared_synthetic), max_len=5, batch_size=16)
    task = RetrievalTask(SASRec(data.n_items, hidden_size=8, n_heads=2, max_len=5))
    trainer = pl.Trainer(max_steps=2, precision="bf16-mixed", gradient_clip_val=1.0, accelerator="cpu",
                         limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, datamodule=data)
    assert trainer.global_step == 2
    assert not trainer.optimizers[0].defaults["fused"]


def test_not_fused_without_trainable_parameters() -> None:
    model = _model().requires_grad_(False)
    assert not can_fuse(model, "32-true")


def test_fused_steps_like_the_plain_loop() -> None:
    """Same groups (no decay on embeddings and norms), warm-up and decay: only the kernel differs."""
    models = [_model(), _model()]
    optimisers = [
        build_optimizer(m, lr=1e-2, weight_decay=0.1, schedule="cosine", warmup_steps=2, total_steps=6, fused=fused)
        for m, fused in zip(models, (False, True), strict=True)
    ]
    assert optimisers[1]["optimizer"].defaults["fused"] is True
    assert not optimisers[0]["optimizer"].defaults["fused"]
    ids = torch.tensor([[1, 2, 3], [4, 5, 0]])
    for _ in range(6):
        for model, built in zip(models, optimisers, strict=True):
            loss = model[2](model[1](model[0](ids))).pow(2).sum()
            loss.backward()
            built["optimizer"].step()
            built["optimizer"].zero_grad()
            built["lr_scheduler"]["scheduler"].step()
    for plain, fused in zip(*(m.parameters() for m in models), strict=True):
        torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
    assert not torch.equal(models[0][1].weight, _model()[1].weight)  # it did train


def test_own_learning_rate_follows_the_schedule() -> None:
    """A parameter named in own_lr is stepped at its own peak rate, warmed up and decayed like the others."""
    built = build_optimizer(_model(), lr=1e-3, weight_decay=0.1, schedule="cosine", warmup_steps=2, total_steps=6,
                            own_lr={"0.weight": 1e-1})
    optimizer, scheduler = built["optimizer"], built["lr_scheduler"]["scheduler"]
    assert scheduler.base_lrs == [1e-3, 1e-3, 1e-1]
    own = optimizer.param_groups[2]
    assert own["lr"] == pytest.approx(0.5e-1)  # first warm-up step
    assert own["weight_decay"] == 0.0 and own["params"][0].shape == (20, 8)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == 5  # every parameter once
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    ratios = {round(g["lr"] / base, 6) for g, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=True)}
    assert len(ratios) == 1  # one schedule for every group
    with pytest.raises(ValueError, match="does not have"):
        build_optimizer(_model(), 1e-3, 0.0, "constant", 0, 1, own_lr={"item_table": 1e-2})


def test_adafactor_steps_by_the_t5_schedule() -> None:
    """Adafactor's step is the parameter's RMS times min(lr, 1/sqrt(step)): with lr 0.01 and a constant schedule
    that is T5X's 0.01 for 10k steps then 1/sqrt(step), the schedule TIGER's paper gives. A constant unit gradient
    on a vector makes the normalised update exactly 1 per element, so each step's size is readable."""
    weight = nn.Parameter(torch.full((4,), 2.0))
    holder = nn.Module()
    holder.weight = weight
    built = build_optimizer(holder, lr=0.5, weight_decay=0.0, schedule="constant", warmup_steps=0, total_steps=1,
                            optimizer="adafactor")
    optimizer = built["optimizer"]
    assert isinstance(optimizer, torch.optim.Adafactor)
    for step in range(1, 10):
        before = weight.detach().clone()
        weight.sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        built["lr_scheduler"]["scheduler"].step()
        expected = before.pow(2).mean().sqrt() * min(0.5, step ** -0.5)
        torch.testing.assert_close(before - weight.detach(), expected.expand(4))
    with pytest.raises(ValueError, match="adafactor"):
        build_optimizer(_model(), 1e-3, 0.0, "constant", 0, 1, optimizer="sgd")  # type: ignore[arg-type]


def test_generative_task_trains_with_adafactor(prepared_synthetic: Path, tmp_path: Path) -> None:
    import pytorch_lightning as pl

    from recsys.data import SequenceDataModule
    from recsys.models import TIGER
    from recsys.tasks import GenerativeTask

    data = SequenceDataModule(str(prepared_synthetic), max_len=4, batch_size=64, train_windows="every")
    model = TIGER(data.n_items, text_embeddings="hashed", n_levels=2, codebook_size=16, collision_size=32,
                  n_user_buckets=0, max_tokens=12, d_model=16, d_kv=8, d_ff=32, n_layers=1, n_heads=2)
    task = GenerativeTask(model, lr=0.01, schedule="constant", optimizer="adafactor")
    start = [p.detach().clone() for p in model.parameters()]
    trainer = pl.Trainer(max_steps=3, precision="bf16-mixed", gradient_clip_val=1.0, accelerator="cpu",
                         limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, datamodule=data)
    assert isinstance(trainer.optimizers[0], torch.optim.Adafactor) and trainer.global_step == 3
    assert task.hparams.optimizer == "adafactor"
    assert any(not torch.equal(a, b) for a, b in zip(start, model.parameters(), strict=True))
