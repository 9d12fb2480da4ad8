"""AdamW (or Adafactor) with optional linear warm-up and cosine decay: the one optimiser recipe every task shares.

Adafactor is there for TIGER: the paper trains with T5X, whose default optimiser is Adafactor with a relative step
size of 0.01 for the first 10k steps and 1/sqrt(step) after. torch's Adafactor takes its step size as
min(lr, 1/sqrt(step)) scaled by each parameter's RMS, so `optimizer="adafactor"` with lr 0.01 and a constant
schedule is exactly that recipe; the same lr under AdamW diverges (benchmarks/results/gpu_check.md).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

Schedule = Literal["constant", "cosine"]
Optimizer = Literal["adamw", "adafactor"]


def _decay_and_no_decay(module: nn.Module, own_lr: dict[str, float] | None = None) -> list[dict]:
    # Biases, norms and embedding tables are not weight-decayed: decaying the item table shrinks rare items.
    # A parameter named in `own_lr` gets a group of its own with that learning rate (and no weight decay).
    own_lr = own_lr or {}
    unknown = sorted(set(own_lr) - {name for name, _ in module.named_parameters()})
    if unknown:
        raise ValueError(f"own learning rates for parameters the model does not have: {unknown}")
    decay, no_decay, own = [], [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        if name in own_lr:
            own.append({"params": [param], "weight_decay": 0.0, "lr": own_lr[name]})
        elif param.ndim < 2 or "norm" in name.lower() or isinstance(_owner(module, name), nn.Embedding):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}, *own]


def _owner(module: nn.Module, param_name: str) -> nn.Module:
    owner = module
    for part in param_name.split(".")[:-1]:
        owner = getattr(owner, part)
    return owner


def can_fuse(module: nn.Module, precision: str, clip: float | None = None) -> bool:
    """Whether the fused AdamW is safe here: every trainable parameter a floating-point CPU tensor (on CUDA
    torch already steps all parameters at once with its foreach path), no fp16 loss scaling, and no gradient
    clipping (`clip` > 0) under a mixed precision: Lightning's mixed-precision plugin refuses to clip for an
    optimiser that could unscale gradients itself, bf16 included."""
    params = [p for p in module.parameters() if p.requires_grad]
    precision = str(precision)
    mixed_and_clipped = "mixed" in precision and bool(clip)
    return (bool(params) and all(p.device.type == "cpu" and p.is_floating_point() for p in params)
            and not precision.startswith("16") and not mixed_and_clipped)


def build_optimizer(
    module: nn.Module,
    lr: float,
    weight_decay: float,
    schedule: Schedule,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float = 0.0,
    fused: bool = False,
    own_lr: dict[str, float] | None = None,
    optimizer: Optimizer = "adamw",
) -> dict:
    """The dict Lightning's configure_optimizers expects, stepping the schedule every optimiser step.

    `fused` asks for torch's single-kernel AdamW (see `can_fuse`): on the CPU it takes a small model's
    optimiser step from about 1 ms to 0.2 ms, where the per-parameter loop is mostly Python overhead.
    `own_lr` maps parameter names (as `module.named_parameters()` spells them) to a peak learning rate of
    their own; the warm-up and schedule scale it like `lr`.
    `optimizer="adafactor"` steps with torch's Adafactor instead (no momentum, factored second moments, updates
    clipped to RMS 1, each parameter's step scaled by its own RMS): `lr` caps the relative step size
    min(lr, 1/sqrt(step)), and its weight decay is lr * weight_decay per step. `fused` does not apply to it.
    """
    groups = _decay_and_no_decay(module, own_lr)
    if optimizer == "adamw":
        built: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay,
                                                         fused=True if fused else None)
    elif optimizer == "adafactor":
        built = torch.optim.Adafactor(groups, lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer='{optimizer}': expected 'adamw' or 'adafactor'")

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        span = max(total_steps - warmup_steps, 1)
        progress = min((step - warmup_steps) / span, 1.0)
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(built, factor)
    return {"optimizer": built, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
