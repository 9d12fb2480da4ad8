"""`WeightEMA`: an exponential moving average of the weights that validation, checkpoints and tests use.

Averaging the best and last checkpoints of TIGER runs tested higher than either (benchmarks/results/
tiger_quality*.md); an average over every step is the same idea without waiting for two checkpoints.

Lightning's EMAWeightAveraging does the bookkeeping (swap in the average for validation, save it as the
checkpoint's `state_dict` with the raw weights beside it, resume both). Three things of ours need more:
- its average is a copy of the module taken when fit's setup hooks begin, before `GenerativeTask.setup` builds
  TIGER's semantic-ID table, and its swap moves every buffer, so the first validation would run on an empty table:
  here the average is re-seeded from the module at fit start when it holds no update yet;
- its per-tensor blend would pass integer buffers (that table) through floating point and truncate them: here
  non-floating tensors are copied;
- a `trainer.test(ckpt_path=...)` in the process that ran fit (`recsys fit`'s test_after_fit) would reload the
  raw weights saved beside the average: here the raw weights are restored only when fitting resumes.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging
from pytorch_lightning.trainer.states import TrainerFn


def ema_blend(average: torch.Tensor, current: torch.Tensor, n_averaged: torch.Tensor, decay: float,
              warmup: int) -> torch.Tensor:
    """The next average of one tensor: integer tensors are copied; floating ones move toward `current` by
    1 - min(decay, (1 + n) / (warmup + n)), so the first updates forget the initial weights quickly."""
    if not (average.is_floating_point() or average.is_complex()):
        return current
    n = float(n_averaged)
    step_decay = min(decay, (1.0 + n) / (warmup + n)) if warmup > 0 else decay
    return torch.lerp(average, current.to(average.dtype), 1.0 - step_decay)


class WeightEMA(WeightAveraging):
    """Keep an EMA of the weights after every optimiser step; validate, checkpoint and test with it.

    Args:
        decay: the EMA's decay per optimiser step (the average spans about 1 / (1 - decay) steps).
        warmup: the decay ramps up from 1 / warmup toward `decay` ((1 + n) / (warmup + n) at update n);
            0 uses `decay` from the first step.
    """

    def __init__(self, decay: float = 0.999, warmup: int = 10) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"WeightEMA: decay must be in (0, 1), got {decay}")
        if warmup < 0:
            raise ValueError(f"WeightEMA: warmup must be >= 0, got {warmup}")
        super().__init__(use_buffers=True, avg_fn=partial(ema_blend, decay=decay, warmup=warmup))
        self.decay = decay
        self.warmup = warmup

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        average = self._average_model
        if average is not None and int(average.n_averaged) == 0:
            average.update_parameters(pl_module)  # the first update copies, semantic-ID table included

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
