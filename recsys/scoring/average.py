"""`recsys average`: one checkpoint whose weights are the mean of several checkpoints of the same run.

Why: a time-capped run keeps its best checkpoint by a noisy validation subset and its last one; when validation
has flattened, the mean of the two sits nearer the middle of the plateau than either and usually ranks better
(checkpoint averaging, as T5 and fairseq use it). On TIGER the mean of best and last validated higher than either
on Sports and Toys and tested higher than the best checkpoint on all four metrics (NDCG@10 .0203 -> .0212 and
.0325 -> .0332; benchmarks/results/tiger_quality_amazon-*.md, `tiger_quality.py --average`).

Only floating-point tensors are averaged. Integer and boolean tensors (e.g. TIGER's semantic-ID table) must be
equal in every file, and so must the model's `class_path` and `init_args`: checkpoints of different runs or
different IDs are refused rather than blended. The output has no optimiser, scheduler or loop state (averaged
weights match none of them), so it is for `recsys test|validate|score`, not for resuming training.

`--raw` takes the raw weights a WeightEMA fit keeps beside its average (`current_model_state`) instead of the
average: with one checkpoint it writes those weights alone, so the average and the weights it smooths can be
tested at the same step.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from recsys.scoring.checkpoint import CheckpointError, read_checkpoint

# training state, and the raw weights and EMA bookkeeping WeightEMA saves beside its average
TRAINING_STATE = ("optimizer_states", "lr_schedulers", "loops", "current_model_state", "averaging_state")


def _model_spec(state: dict[str, Any]) -> Any:
    hparams = state.get("hyper_parameters") or {}
    return hparams.get("model") if isinstance(hparams, dict) else None


def _weights(state: dict[str, Any], path: Path, raw: bool) -> dict[str, torch.Tensor]:
    key = "current_model_state" if raw else "state_dict"
    weights = state.get(key)
    if not isinstance(weights, dict) or not weights:
        why = " (raw weights are kept only by fits with WeightEMA)" if raw else ""
        raise CheckpointError(f"{path}: no {key} to average{why}")
    return weights


def average_checkpoints(paths: Sequence[Path], out: Path, raw: bool = False) -> Path:
    """Write the mean of `paths`' weights to `out` (through a temporary file) and return `out`.

    The first checkpoint supplies everything but the floating weights (epoch, step, hyper-parameters). With
    `raw`, each checkpoint's raw weights (`current_model_state`) are read instead of its `state_dict`, and one
    checkpoint is enough."""
    paths = [Path(p) for p in paths]
    if len(paths) < (1 if raw else 2):
        raise CheckpointError("average: give at least two checkpoints (or one with --raw)")
    if Path(out).resolve() in {p.resolve() for p in paths}:
        raise CheckpointError(f"average: --out {out} is one of the inputs; write the mean to a new file")
    base = read_checkpoint(paths[0])
    weights = _weights(base, paths[0], raw)
    sums = {k: t.double() for k, t in weights.items() if t.is_floating_point()}
    sources = [{"file": paths[0].name, "global_step": base.get("global_step")}]
    for path in paths[1:]:
        state = read_checkpoint(path)
        sources.append({"file": path.name, "global_step": state.get("global_step")})
        other = _weights(state, path, raw)
        if set(other) != set(weights):
            odd = sorted(set(other) ^ set(weights))[:3]
            raise CheckpointError(f"{path}: its state_dict keys differ from {paths[0].name}'s (e.g. {odd})")
        if _model_spec(state) != _model_spec(base):
            raise CheckpointError(f"{path}: hyper_parameters['model'] differs from {paths[0].name}'s; only "
                                  "checkpoints of one model configuration can be averaged")
        for key, tensor in other.items():
            first = weights[key]
            if tensor.shape != first.shape or tensor.dtype != first.dtype:
                raise CheckpointError(f"{path}: '{key}' is {tuple(tensor.shape)} {tensor.dtype}, "
                                      f"{paths[0].name} has {tuple(first.shape)} {first.dtype}")
            if key in sums:
                sums[key] += tensor.double()
            elif not torch.equal(tensor, first):
                raise CheckpointError(f"{path}: '{key}' ({tensor.dtype}) differs from {paths[0].name}'s: not "
                                      "averageable (different runs or semantic IDs?)")
    mean = {k: (sums[k] / len(paths)).to(t.dtype) if k in sums else t.clone() for k, t in weights.items()}
    state = {k: v for k, v in base.items() if k not in TRAINING_STATE}
    state["state_dict"] = mean
    state["averaged_from"] = sources
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(state, tmp)
    return tmp.replace(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="recsys average",
        description="Average the weights of checkpoints of one run (e.g. its best and last) into a new checkpoint "
                    "for `recsys test|validate|score --ckpt_path`. Floating weights are averaged; integer buffers "
                    "and the model config must match; optimiser and loop state are dropped.")
    parser.add_argument("checkpoints", nargs="+", type=Path,
                        help="two or more .ckpt files of the same model (one with --raw)")
    parser.add_argument("--out", type=Path, required=True, help="the averaged checkpoint to write")
    parser.add_argument("--raw", action="store_true",
                        help="average the raw weights a fit with WeightEMA (configs/overlays/ema.yaml) keeps beside "
                             "its average; one checkpoint then writes its raw weights alone")
    args = parser.parse_args(argv)
    try:
        written = average_checkpoints(args.checkpoints, args.out, raw=args.raw)
    except CheckpointError as exc:
        parser.exit(2, f"recsys average: {exc}\n")
    what = "raw weights of " if args.raw else ""
    n = len(args.checkpoints)
    print(f"averaged {what}{n} checkpoint{'s' if n > 1 else ''} -> {written}")
    return 0
