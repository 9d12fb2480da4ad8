"""Training speed: recsys SASRec and BERT4Rec against RecBole 1.2.1, to the same validation NDCG@10.

For each dataset and model, RecBole 1.2.1 (in its own venv, benchmarks/recbole_env.py) trains for a fixed
number of epochs and is evaluated on the validation split after each one; then recsys trains with the same
hyperparameters, is evaluated after every epoch, and stops as soon as its validation NDCG@10 reaches the best
RecBole reached (or at a cap). The goal reported against: RecBole's best validation NDCG@10 in at most a
tenth of RecBole's wall time to that best.

Identical for both frameworks: d=64, 2 layers, 2 heads, feed-forward 256, GELU, max length 50, batch 128,
Adam lr 1e-3 without weight decay or gradient clipping, full softmax cross-entropy over all items, dropout
0.2 on embeddings/residuals and 0.2 on attention weights (BERT4Rec's RecBole defaults; RecBole's SASRec
default would be 0.5), BERT4Rec mask ratio 0.2, seed 42, the same torch thread count (--threads).
Evaluation: leave-one-out by time (second-last item = validation), full ranking over all items, seen items
KEPT in the ranking: RecBole's full-sort evaluation masks history only for non-sequential models (its
FullSortEvalDataLoader passes no history index for sequential ones), and recsys's default does the same.

What differs, by design of each framework (stated in the results):
- Training samples. RecBole's sequential loader uses prefix augmentation: every prefix of a training
  sequence is one sample whose only target is the next item, so each training item is a target once per
  epoch but costs a full 50-step forward. recsys uses `train_windows: all`: each training sequence is tiled
  into windows of 50 and every position predicts its next item (SASRec) or each masked position its item
  (BERT4Rec), so each item is a target once per epoch and there is no prefix augmentation. A batch of 128
  is 128 prefixes in RecBole and 128 windows in recsys.
- Layout. recsys SASRec is pre-LN (its default), RecBole's post-LN; both BERT4Recs are post-LN with a
  projection head; RecBole's BERT4Rec adds an output bias. recsys positions count from the most recent item.
- Timing. RecBole's wall time is the sum of its `_train_epoch` + `_valid_epoch` calls (what `Trainer.fit`
  runs per epoch) up to its best epoch; recsys's is Lightning's fit loop from `on_train_start` to the
  validation that reaches the target. Process start, imports and dataset loading are reported separately.
- Peak RSS is each child process's ru_maxrss (os.wait4), one process per run.

FLOPs (recsys and RecBole alike, forward, counted on the padded batch shapes that are actually computed):
  F = B*L*(n_layers*(24*d^2 + 4*L*d) - 18*d^2) + S*(18*d^2 [+ 2*d^2 for BERT4Rec's head]) + T*2*d*N
with B rows, L columns (50 in RecBole; recsys's collators drop columns that are padding in every row, so L
is each batch's own width; with --packed true, B is the packed rows, several windows each), T scored
positions (targets; RecBole BERT4Rec scores int(0.2*50)=10 slots per sample), N items, S the positions the
last layer's output projection, feed-forward and head run on (B*L in RecBole; in recsys T when the targets
are at most half of B*L, as for BERT4Rec's masked positions, else B*L); 24*d^2 = QKV (6d^2) + output
projection (2d^2) + feed-forward 4d->d->4d (16d^2) per token, 4*L*d = QK^T and AV; embedding lookups are
gathers (no FLOPs). Training FLOPs ~= 3*F (backward ~ 2x
forward). Achieved FLOP/s = training FLOPs / training seconds (data collation and framework overhead
included), set against the fp32 matmul peak: 90 GFLOP/s for the machine ../shared/BENCHMARKS.md describes,
measured in the run with --own-machine.

    python benchmarks/train_speed.py                           # both datasets, both models (~1 hour)
    python benchmarks/train_speed.py --datasets ml-100k --models sasrec --recbole-epochs 1
    python benchmarks/train_speed.py --reuse-recbole           # rerun recsys against saved RecBole runs

Results go to benchmarks/results/train_speed.md and .json, rewritten after every run so partial results
exist; RecBole's per-run JSON stays in benchmarks/.work/train_speed/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import machine, versions

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "train_speed"
RESULTS = HERE / "results"
# The matmul peak of the AMD EPYC with AVX-512 BF16 that ../shared/BENCHMARKS.md describes; runs with
# --own-machine measure their own instead (`matmul_peak_gflops`).
PEAK_FP32_GFLOPS = 90.0
# RecBole's training epoch on that machine when quiet, from ../shared/BENCHMARKS.md (RecBole 1.2.1, these
# hyperparameters; its thread count is not stated there): where this benchmark's own RecBole run shared the
# cores with other jobs (as its first runs there did), the goal is judged against the quiet time too (the larger
# of the two ratios). On any other processor these times mean nothing: --own-machine drops them and RecBole's own
# measured time is the bar.
QUIET_RECBOLE_EPOCH_S = {("ml-100k", "SASRec"): 125.8, ("ml-100k", "BERT4Rec"): 135.2}
# A RecBole run that ended at these 1- and 5-minute load averages or below ran alone: its own time is the bar.
QUIET_LOAD = 1.2
DATASETS = ("ml-100k", "amazon-beauty")
MODELS = {"sasrec": "SASRec", "bert4rec": "BERT4Rec"}
DEFAULT_RECBOLE_EPOCHS = "ml-100k=3,amazon-beauty=2"


def matmul_peak_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Best of `repeats` float32 [size, size] products with `threads` torch threads, in GFLOP/s."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(size, size)
        a @ a  # warm-up
        best = min(_timed(lambda: a @ a) for _ in range(repeats))
    finally:
        torch.set_num_threads(previous)
    return 2 * size**3 / best / 1e9


def _timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def cpu_features() -> dict[str, Any]:
    """torch's CPU kernel level and whether bfloat16 dot products are native (bf16 rows depend on it)."""
    import torch

    from recsys.tasks.precision import cpu_has_native_bf16

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_has_native_bf16()}


def quiet_epoch_s(report: dict[str, Any], dataset: str, model: str) -> float | None:
    """RecBole's quiet epoch time to judge against, or None where the report measured on its own machine."""
    if "quiet_recbole_epoch_s" in report:
        return report["quiet_recbole_epoch_s"].get(f"{dataset}/{model}")
    return QUIET_RECBOLE_EPOCH_S.get((dataset, model))


def _features(m: dict[str, Any]) -> str:
    if "cpu_capability" not in m:  # reports from before these fields: the BENCHMARKS.md machine, shared
        return ", shared with other jobs"
    return f" (torch CPU kernels {m['cpu_capability']}, {'native' if m['native_bf16'] else 'no native'} bfloat16)"


def log(message: str) -> None:
    print(f"[train_speed {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- machine and versions -----------------------
def source_state() -> dict[str, Any]:
    """The commit the recsys package was measured at, and the files under recsys/ that differed from it
    (other engineers share this working tree; an editable install runs whatever is on disk)."""
    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.rstrip("\n")

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "recsys").splitlines() if line]
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_recsys_files": dirty}


# ---------------------------------------------------------------- FLOPs --------------------------------------
def forward_flops(rows: int, length: int, targets: int, n_items: int, d: int, n_layers: int, head: bool,
                  selected: int | None = None) -> float:
    """The module docstring's F: transformer matmuls on every (padded) position, except the last layer's output
    projection, feed-forward and head, which run on `selected` positions (all by default), plus the logits of
    T targets."""
    positions = rows * length
    selected = positions if selected is None else selected
    everywhere = n_layers * (24 * d * d + 4 * length * d) - 18 * d * d
    return float(positions * everywhere + selected * (18 * d * d + (2 * d * d if head else 0))
                 + targets * 2 * d * n_items)


def recsys_selected(rows: int, length: int, targets: int) -> int:
    """Positions recsys's last layer computes in training: only the targets when they are at most half of the
    batch (recsys.tasks.RetrievalTask passes them as `select`), else every position."""
    return targets if 2 * targets <= rows * length else rows * length


# ---------------------------------------------------------------- data ---------------------------------------
def prepared_path(root: Path, name: str) -> Path:
    """The prepared folder, made with `recsys prep` (RECSYS_DATA, default ../shared/datasets) if missing."""
    path = root / name
    if not (path / "meta.json").exists():
        env = {**os.environ, "RECSYS_DATA": os.environ.get("RECSYS_DATA", "../shared/datasets")}
        log(f"preparing {name} into {path}")
        subprocess.run(["recsys", "prep", name, "--out", str(path)], check=True, env=env)
    return path


def write_atomic(prepared: Path, out_root: Path, name: str) -> Path:
    """RecBole's atomic `<name>/<name>.inter`: user_id, item_id and a timestamp that reproduces our order.

    The timestamp column holds each interaction's position in interactions.parquet, which is sorted by user,
    then time, then raw-file order; RecBole sorts by it (order 'TO'), so it rebuilds exactly our sequences,
    ties included, and takes the same validation and test items.
    """
    import polars as pl

    folder = out_root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.inter"
    frame = pl.read_parquet(prepared / "interactions.parquet", columns=["user_idx", "item_idx"])
    frame = frame.with_row_index("timestamp").select(
        pl.col("user_idx").alias("user_id:token"), pl.col("item_idx").alias("item_id:token"),
        pl.col("timestamp").cast(pl.Float64).alias("timestamp:float"),
    )
    frame.write_csv(path, separator="\t")
    return path


# ---------------------------------------------------------------- recsys worker ------------------------------
def build(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    from recsys.data import SequenceDataModule
    from recsys.losses import FullSoftmaxCE
    from recsys.models import BERT4Rec, SASRec
    from recsys.runtime import tune_cpu_allocator
    from recsys.tasks import RetrievalTask

    # What the `recsys` command does at start (RECSYS_MALLOC_TUNING=0 turns it off).
    args.allocator_tuned = tune_cpu_allocator()
    torch.set_num_threads(args.threads)
    cloze = args.model == "bert4rec"
    data = SequenceDataModule(
        args.prepared, max_len=args.max_len, batch_size=args.batch_size, eval_batch_size=1024,
        objective="cloze" if cloze else "causal", mask_prob=args.mask_ratio, train_windows="all", seed=args.seed,
        length_grouped=args.sampler == "length-grouped", packed=args.packed == "true",
        train_stride=args.stride or None,
    )
    data.setup("fit")
    shape = dict(hidden_size=args.hidden_size, n_layers=args.n_layers, n_heads=args.n_heads, max_len=args.max_len,
                 dropout=args.dropout, attn_dropout=args.attn_dropout)
    # BERT4Rec is post-LN in both frameworks; SASRec's layout is a flag (RecBole's own SASRec is post-LN;
    # "reference" is the pre-LN block and Xavier init of the SASRec authors' code).
    layout = {"pre-ln": {}, "post-ln": {"pre_norm": False}, "reference": {"reference_block": True, "init": "xavier"}}
    model = BERT4Rec(data.n_items, **shape) if cloze else SASRec(data.n_items, **layout[args.layout], **shape,
                                                                 negated_dims=args.negated_dims)
    task = RetrievalTask(model, loss=FullSoftmaxCE(), lr=args.lr, weight_decay=0.0, ks=[10], monitor_k=10,
                         train_seen_margin=args.seen_margin)
    return data, task


def worker_recsys(args: argparse.Namespace) -> dict[str, Any]:
    import pytorch_lightning as pl
    import torch

    started = time.perf_counter()
    source = source_state()
    pl.seed_everything(args.seed, verbose=False)
    data, task = build(args)
    d, layers, n_items = args.hidden_size, args.n_layers, data.n_items
    head = args.model == "bert4rec"

    class Clock(pl.Callback):
        """Per-epoch training and validation seconds, targets and FLOPs; stops at the target NDCG@10."""

        def __init__(self) -> None:
            self.epochs: list[dict[str, Any]] = []
            self.reached: dict[str, Any] | None = None

        def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            self.fit_start = time.perf_counter()

        def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            # recsys.eval's ItemRanker calls faiss.omp_set_num_threads(all CPUs) when validation builds its
            # index, and faiss shares torch's OpenMP runtime, so that silently raises torch's intra-op thread
            # count for the rest of the process; put --threads back before every training epoch.
            self.threads_found = torch.get_num_threads()
            torch.set_num_threads(args.threads)
            self.epoch_start = time.perf_counter()
            self.targets = self.windows = self.positions = 0
            self.flops = 0.0

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            rows, length = batch["item_seq"].shape  # packed batches: fewer rows than windows
            targets = int((batch["targets"] > 0).sum())
            self.targets += targets
            self.windows += len(batch["row"])
            self.positions += rows * length  # computed positions: rows x columns after the collator's trim
            selected = recsys_selected(rows, length, targets)
            self.flops += 3 * forward_flops(rows, length, targets, n_items, d, layers, head, selected)

        def on_validation_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            self.valid_start = time.perf_counter()

        def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            now = time.perf_counter()
            ndcg = float(trainer.callback_metrics["val/ndcg@10"])
            epoch = {
                "epoch": len(self.epochs) + 1, "train_s": self.valid_start - self.epoch_start,
                "valid_s": now - self.valid_start, "valid_ndcg@10": ndcg, "targets": self.targets,
                "windows": self.windows, "positions": self.positions, "train_flops": self.flops, "elapsed_s": now - self.fit_start,
                "threads_found_at_epoch_start": self.threads_found, "train_threads": args.threads,
            }
            self.epochs.append(epoch)
            print(f"[recsys {args.model}] epoch {epoch['epoch']}: train {epoch['train_s']:.2f} s, valid "
                  f"{epoch['valid_s']:.2f} s, valid NDCG@10 {ndcg:.4f}, elapsed {epoch['elapsed_s']:.1f} s",
                  file=sys.stderr, flush=True)
            if args.target is not None and ndcg >= args.target and self.reached is None:
                self.reached = epoch
                trainer.should_stop = True
            elif args.time_cap and epoch["elapsed_s"] >= args.time_cap:
                trainer.should_stop = True

    clock = Clock()
    callbacks: list[pl.Callback] = [clock]
    if args.ema:
        # Validation (and so the time to the target) sees the averaged weights; the EMA update is timed as training.
        callbacks.append(pl.callbacks.EMAWeightAveraging(decay=args.ema))
    trainer = pl.Trainer(
        max_epochs=args.max_epochs, accelerator=args.accelerator, devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, callbacks=callbacks,
        default_root_dir=str(WORK), precision=args.precision,
    )
    setup_s = time.perf_counter() - started
    trainer.fit(task, datamodule=data)
    epochs = clock.epochs
    train_s = sum(e["train_s"] for e in epochs)
    best = max(epochs, key=lambda e: e["valid_ndcg@10"])
    reached = clock.reached
    return {
        "framework": "recsys", "model": MODELS[args.model], "epochs": epochs, "n_items": n_items,
        "target_ndcg@10": args.target, "reached": reached is not None,
        "time_to_target_s": reached["elapsed_s"] if reached else None,
        "epochs_to_target": reached["epoch"] if reached else None,
        "best_valid_ndcg@10": best["valid_ndcg@10"], "best_epoch": best["epoch"],
        "total_s": epochs[-1]["elapsed_s"],
        "train_s_per_epoch": train_s / len(epochs),
        "valid_s_per_epoch": sum(e["valid_s"] for e in epochs) / len(epochs),
        "train_targets_per_epoch": epochs[0]["targets"], "train_windows_per_epoch": epochs[0]["windows"],
        "targets_per_s": sum(e["targets"] for e in epochs) / train_s,
        "train_gflops_per_s": sum(e["train_flops"] for e in epochs) / train_s / 1e9,
        "setup_s": setup_s, "threads": args.threads,
        "steps_per_epoch": -(-epochs[0]["windows"] // args.batch_size), "source": source,
        "sampler": args.sampler, "batch_size": args.batch_size, "lr": args.lr, "label": args.label,
        "precision": args.precision, "packed": args.packed == "true", "stride": args.stride or None,
        "allocator_tuned": args.allocator_tuned, "ema": args.ema or None,
        "negated_dims": args.negated_dims or None, "seen_margin": args.seen_margin or None,
        "accelerator": args.accelerator, "device_name": _device_name(args.accelerator),
    }


def _device_name(accelerator: str) -> str:
    import torch

    return torch.cuda.get_device_name(0) if accelerator in ("gpu", "cuda") else "cpu"


def worker_probe(args: argparse.Namespace) -> dict[str, Any]:
    """ms per training step (forward, loss, backward, Adam) of recsys at --threads and --precision, outside
    Lightning."""
    import torch

    torch.manual_seed(args.seed)
    data, task = build(args)
    model, loss = task.model, task.loss
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    batches = []
    for batch in data.train_dataloader():
        batches.append(batch)
        if len(batches) == args.probe_steps + 3:
            break
    times = []
    # bf16-mixed is Lightning's CPU autocast around the training step (forward and loss).
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16-mixed")
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        extra = (batch["segments"], batch["positions"]) if "segments" in batch else ()
        with autocast:
            hidden = model(batch["item_seq"], *extra)
            mask = batch["targets"] > 0
            value = loss(hidden[mask], batch["targets"][mask], model.item_embeddings())
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    times.sort()
    return {"threads": torch.get_num_threads(), "median_ms": 1000 * times[len(times) // 2],
            "min_ms": 1000 * times[0], "steps": len(times), "load_average": os.getloadavg()}


# ---------------------------------------------------------------- driver -------------------------------------
def run_child(cmd: list[str], out: Path, cwd: Path | None = None, env: dict | None = None) -> dict[str, Any]:
    """Run cmd (which writes JSON to `out`); its peak RSS comes from os.wait4 on the child itself."""
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    result = json.loads(out.read_text())
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    result["process_wall_s"] = wall
    return result


def recbole_flops(run: dict[str, Any], args: argparse.Namespace) -> float:
    """RecBole's training GFLOP/s by the same formula: each sample is a [1, L] window; SASRec scores its last
    position against N+1 rows (padding included), BERT4Rec int(mask_ratio*L) masked slots against N+1 rows."""
    n = run["n_items"] + 1
    bert = run["model"] == "BERT4Rec"
    slots = int(args.mask_ratio * args.max_len) if bert else 1
    per_sample = 3 * forward_flops(1, args.max_len, slots, n, args.hidden_size, args.n_layers, bert)
    return per_sample * run["train_samples_per_epoch"] / run["train_s_per_epoch"] / 1e9


def common_flags(args: argparse.Namespace) -> list[str]:
    """Flags every worker takes: RecBole's runner gets these; recsys workers add `recsys_flags`."""
    return ["--threads", str(args.threads), "--seed", str(args.seed), "--max-len", str(args.max_len),
            "--hidden-size", str(args.hidden_size), "--n-layers", str(args.n_layers), "--n-heads",
            str(args.n_heads), "--dropout", str(args.dropout), "--attn-dropout", str(args.attn_dropout),
            "--mask-ratio", str(args.mask_ratio), "--batch-size", str(args.batch_size), "--lr", str(args.lr)]


def recsys_flags(args: argparse.Namespace) -> list[str]:
    """recsys workers also take a precision (RecBole always trains in fp32), packing, weight averaging, and
    SASRec's layout, windows, negated columns and seen-item margin."""
    return [*common_flags(args), "--precision", args.precision, "--packed", args.packed, "--layout", args.layout,
            "--stride", str(args.stride), "--ema", str(args.ema), "--negated-dims", str(args.negated_dims),
            "--seen-margin", str(args.seen_margin)]


def parse_epochs(text: str, datasets: list[str]) -> dict[str, int]:
    if "=" not in text:
        return {name: int(text) for name in datasets}
    pairs = dict(item.split("=") for item in text.split(","))
    return {name: int(pairs.get(name, 2)) for name in datasets}


def fmt(value: float | None, spec: str = ".1f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _variants(pair: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The recsys runs of a (dataset, model) pair: the current one, then any kept for comparison."""
    runs = [(pair["recsys"].get("label", "recsys"), pair["recsys"])] if pair.get("recsys") else []
    return runs + [(pair[key].get("label", key), pair[key]) for key in sorted(pair) if key.startswith("recsys_")]


def judged_ratio(recbole: dict[str, Any], ratio: float, quiet_ratio: float | None) -> float:
    """The ratio the goal is judged on: against RecBole's time in this run when that run had the cores to itself
    (1- and 5-minute load averages at most QUIET_LOAD when it ended; its one training thread alone gives 1.0
    here), else the larger of that and the ratio to the quiet reference, which exists to correct RecBole runs
    slowed by load. Beauty's SASRec run ended at 1.05 but 2.67 over 5 minutes: not quiet."""
    load = recbole.get("load_average_after")
    if load and max(load[:2]) <= QUIET_LOAD:
        return ratio
    return max(ratio, quiet_ratio or 0.0)


def _load(run: dict[str, Any]) -> str:
    load = run.get("load_average_after")
    return f"{load[0]:.2f}" if load else "-"


def render(report: dict[str, Any]) -> str:
    cfg = report["config"]
    m = report["machine"]
    peak = m["peak_fp32_gflops"]
    loads = report["load_averages"]
    lines = [
        "# Training speed: recsys vs RecBole 1.2.1",
        "",
        "Goal: reach RecBole's best validation NDCG@10 in at most a tenth of RecBole's wall time to that best.",
        "",
        "Protocol: leave-one-out by time (validation = each user's second-last item), full ranking over all "
        "items, seen items kept (as RecBole's full-sort evaluation does for sequential models), NDCG@10 on the "
        "validation split after every epoch, no sampled metrics.",
        f"Hyperparameters, both frameworks: d={cfg['hidden_size']}, {cfg['n_layers']} layers, {cfg['n_heads']} "
        f"heads, feed-forward {4 * cfg['hidden_size']}, GELU, max length {cfg['max_len']}, batch {cfg['batch_size']}, "
        f"Adam lr {cfg['lr']:g} (no weight decay, no clipping), full softmax CE, dropout {cfg['dropout']:g} "
        f"(attention {cfg['attn_dropout']:g}), BERT4Rec mask ratio {cfg['mask_ratio']:g}, seed {cfg['seed']}, "
        f"{cfg['threads']} torch thread(s) in every run.",
        "Training samples: RecBole augments every prefix of a training sequence into one sample (one target, "
        "a full 50-step forward each); recsys tiles each training sequence into 50-item windows "
        "(`train_windows: all`) and predicts at every position (SASRec) or every masked position (BERT4Rec): "
        "each item is a target once per epoch, no prefix augmentation. A batch of 128 is 128 prefixes in "
        "RecBole and 128 windows in recsys. Rows labelled `stride N` start a SASRec window every N items "
        "(`data.train_stride`): windows overlap and each trains only the targets no later window covers, so each "
        "item is still a target once per epoch, with at least 50 - N items of history.",
        "Layouts: recsys SASRec pre-LN (its default) vs RecBole post-LN; both BERT4Recs post-LN with a "
        "projection head (RecBole adds an output bias).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores{_features(m)}; load average (1, 5, 15 min) at "
        f"start {', '.join(f'{x:.2f}' for x in loads['start'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in loads.get('end', loads['start']))}; peak fp32 matmul "
        f"{m['peak_fp32_gflops']:.0f} GFLOP/s.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + ".",
        "Command(s): " + "; ".join(f"`python benchmarks/{c}`" for c in report.get("commands", [report.get("command", "")]))
        + ".",
    ]
    probe = report.get("thread_probe")
    if probe:
        lines += ["", "Thread count, measured first (recsys SASRec training step on " + probe["dataset"] + ", batch "
                  f"{cfg['batch_size']} windows, median of {probe['runs'][0]['steps']} steps): "
                  + "; ".join(f"{r['threads']} thread(s) {r['median_ms']:.0f} ms/step (load "
                              f"{r['load_average'][0]:.2f})" for r in probe["runs"])
                  + f". Runs below use {cfg['threads']}."]
    lines += [
        "",
        "## Time to RecBole's best validation NDCG@10",
        "",
        "| dataset | model | RecBole best val NDCG@10 (epoch) | RecBole time to best, s | recsys run | recsys val "
        "NDCG@10 reached | recsys time to reach, s (epochs) | ratio | RecBole quiet time to best, s | ratio to quiet | "
        "goal (<= 0.10: against the ratio where RecBole's run was quiet, else the larger ratio) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for pair in report["runs"]:
        rb = pair.get("recbole")
        if not rb:
            continue
        for label, ours in _variants(pair) or [("recsys", None)]:
          head = f"| {pair['dataset']} | {rb['model']} | {rb['best_valid_ndcg@10']:.4f} ({rb['best_epoch']}) | " \
                 f"{rb['time_to_best_s']:.1f} | {label} |"
          quiet_epoch = quiet_epoch_s(report, pair["dataset"], rb["model"])
          # quiet epochs to the best, plus the validations as measured (a small share)
          quiet = None if quiet_epoch is None else quiet_epoch * rb["best_epoch"] + sum(
              e.get("valid_s", 0.0) for e in rb.get("epochs", [])[: rb["best_epoch"]])
          if not ours:
              lines.append(head + " (not run) | | | | | |")
              continue
          seconds = ours["time_to_target_s"] if ours["reached"] else ours["total_s"]
          ratio = seconds / rb["time_to_best_s"]
          quiet_ratio = None if quiet is None else seconds / quiet
          bound = "" if ours["reached"] else "> "  # a run that never reached the target only bounds the ratio
          quiet_cells = "- | -" if quiet is None else f"{quiet:.1f} | {bound}{quiet_ratio:.3f}"
          met = ours["reached"] and judged_ratio(rb, ratio, quiet_ratio) <= 0.10
          if ours["reached"]:
              reached = ours["epochs"][ours["epochs_to_target"] - 1]["valid_ndcg@10"]
              cells = f" {reached:.4f} | {seconds:.1f} ({ours['epochs_to_target']}) | {ratio:.3f}"
          else:
              cells = (f" not reached: best {ours['best_valid_ndcg@10']:.4f} (epoch {ours['best_epoch']}) "
                       f"| stopped at {seconds:.1f} ({len(ours['epochs'])}) | > {ratio:.3f}")
          lines.append(head + cells + f" | {quiet_cells} | {'met' if met else 'NOT met'} |")
    lines += [
        "",
        "## Throughput",
        "",
        "| dataset | model | framework | epochs run | train s/epoch | valid s/epoch | training samples/epoch "
        f"(targets) | steps/epoch | samples/s (RecBole, prefixes) or targets/s (recsys) | training GFLOP/s (% of {peak:.0f}) | peak RSS MiB | set-up s | load avg "
        "after run (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for pair in report["runs"]:
        rb = pair.get("recbole")
        if rb:
            gf = rb["train_gflops_per_s"]
            steps = -(-rb["train_samples_per_epoch"] // cfg["batch_size"])
            lines.append(
                f"| {pair['dataset']} | {rb['model']} | RecBole 1.2.1 | {len(rb['epochs'])} | {rb['train_s_per_epoch']:.1f} | "
                f"{sum(e['valid_s'] for e in rb['epochs']) / len(rb['epochs']):.2f} | "
                f"{rb['train_samples_per_epoch']:,} prefixes | {steps:,} | "
                f"{rb['train_samples_per_epoch'] / rb['train_s_per_epoch']:,.0f} | {gf:.2f} ({100 * gf / peak:.1f}%) | "
                f"{rb['peak_rss_mib']:,.0f} | {rb['setup_s']:.1f} | {_load(rb)} |")
        for label, ours in _variants(pair):
            gf = ours["train_gflops_per_s"]
            lines.append(
                f"| {pair['dataset']} | {ours['model']} | {label} | {len(ours['epochs'])} | {ours['train_s_per_epoch']:.2f} | "
                f"{ours['valid_s_per_epoch']:.2f} | {ours['train_targets_per_epoch']:,} targets in "
                f"{ours['train_windows_per_epoch']:,} windows | {ours['steps_per_epoch']:,} | {ours['targets_per_s']:,.0f} | "
                f"{gf:.2f} ({100 * gf / peak:.1f}%) | {ours['peak_rss_mib']:,.0f} | {ours['setup_s']:.1f} | "
                f"{_load(ours)} |")
    for pair in report["runs"]:
        ours = pair.get("recsys")
        if ours and pair["model"] == "SASRec" and "positions" in ours["epochs"][0]:
            first = ours["epochs"][0]
            filled = first["targets"] / first["positions"]
            lines.append(f"\n{pair['dataset']}: {100 * (1 - filled):.0f}% of the positions recsys computes in training "
                         f"are padding ({first['positions'] / first['windows']:.1f} columns per window on average "
                         f"after the collator trims all-padding columns, max {cfg['max_len']}; counted in GFLOP/s).")
    lines += ["", "## Validation NDCG@10 per epoch", ""]
    for pair in report["runs"]:
        for label, run in [("RecBole", pair.get("recbole")), *_variants(pair)]:
            if run:
                values = " ".join(f"{e['valid_ndcg@10']:.4f}" for e in run["epochs"])
                lines.append(f"- {pair['dataset']} {run['model']} {label}: {values}")
    lines += [
        "",
        "FLOPs, forward, on the padded shapes actually computed: F = B*L*n_layers*(24*d^2 + 4*L*d) "
        "[+ B*L*2*d^2, BERT4Rec head] + T*2*d*N, with B rows, L columns (50 in RecBole; recsys trims columns that "
        "are padding in every row, so its L is each batch's own width), T scored positions (RecBole: 1 per SASRec "
        "sample, int(0.2*50)=10 per BERT4Rec sample; recsys: the targets), N items (RecBole scores N+1 rows); "
        "training = 3F; embedding lookups count 0. GFLOP/s = training FLOPs / training seconds, data loading and "
        "framework overhead included.",
        "Timing: RecBole = its `_train_epoch` + `_valid_epoch` per epoch (what `Trainer.fit` runs), summed to "
        "its best epoch; recsys = Lightning fit from `on_train_start` to the validation that reaches the target. "
        "Set-up (imports, reading and splitting the data, building the model) is listed separately and not in "
        "either time. Peak RSS: ru_maxrss of each run's own process (os.wait4).",
        "",
    ]
    sources = [(pair, pair["recsys"].get("source")) for pair in report["runs"] if pair.get("recsys")]
    if sources:
        lines += ["recsys source measured (an editable install runs the shared working tree as it is on disk):"]
        for pair, source in sources:
            if not source:
                lines.append(f"- {pair['dataset']} {pair['model']}: not recorded")
                continue
            dirty = source["uncommitted_recsys_files"]
            lines.append(f"- {pair['dataset']} {pair['model']}: commit {source['commit']}"
                         + (f", with uncommitted edits to {', '.join(dirty)}" if dirty else ", clean")
                         + (f" ({source['note']})" if source.get("note") else ""))
        lines.append("")
    if report.get("notes"):
        lines += ["Notes:", *[f"- {note}" for note in report["notes"]], ""]
    if report.get("missing"):
        lines += ["Missing: " + "; ".join(report["missing"]), ""]
    return "\n".join(lines)


def drive(args: argparse.Namespace) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    datasets = [name.strip() for name in args.datasets.split(",") if name.strip()]
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    epochs = parse_epochs(args.recbole_epochs, datasets)
    # Checked before any run: a typo here would otherwise surface after RecBole's 20 minutes.
    variants = [dict(item.split("=", 1) for item in text.split(",")) for text in args.tuned or [] if text]
    unknown = {key for overrides in variants for key in overrides} - {
        "batch_size", "lr", "attn_dropout", "precision", "packed", "layout", "stride", "ema", "negated_dims",
        "seen_margin"}
    if unknown:
        raise SystemExit(f"--tuned: {', '.join(sorted(unknown))}: only batch_size, lr, attn_dropout, precision, "
                         "packed, layout, stride, ema, negated_dims and seen_margin can differ")
    for option in ("stride", "negated_dims", "seen_margin"):
        if "bert4rec" in models and (getattr(args, option) or any(option in tuned for tuned in variants)):
            raise SystemExit(f"--{option.replace('_', '-')} / --tuned {option}=... is for SASRec (causal) only: "
                             "run --models sasrec with it")
    layouts = {overrides["layout"] for overrides in variants if "layout" in overrides} | {args.layout}
    if "bert4rec" in models and layouts != {"pre-ln"}:
        raise SystemExit("--layout / --tuned layout=... change SASRec only (BERT4Rec is post-LN in both frameworks): "
                         "run --models sasrec with them")
    json_path = RESULTS / f"{args.out}.json"
    saved = json_path.read_text() if (args.reuse_recbole or args.merge) and json_path.exists() else "{}"
    previous = json.loads(saved)  # read-only copy: RecBole runs for --reuse-recbole
    planned = [(dataset, model) for dataset in datasets for model in models]
    config = {key: getattr(args, key) for key in (
        "threads", "seed", "max_len", "hidden_size", "n_layers", "n_heads", "dropout", "attn_dropout",
        "mask_ratio", "batch_size", "lr", "max_epochs", "cap_fraction")}
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    if args.merge and previous:
        differs = [key for key, value in config.items()
                   if key not in ("max_epochs", "cap_fraction") and previous["config"].get(key) != value]
        if differs:
            raise SystemExit(f"--merge: {', '.join(differs)} differ from {json_path}; use another --out")
        report: dict[str, Any] = json.loads(saved)
        report["recbole_epochs"] = {**report.get("recbole_epochs", {}), **epochs}
        report["commands"] = [*report.get("commands", [report.pop("command", "")]), command]
        kept_missing = [m for m in report.get("missing", [])
                        if not any(m.startswith(f"{d} {MODELS[k]}") for d, k in planned)]
    else:
        report = {
            "config": config, "recbole_epochs": epochs, "versions": versions("torch", "pytorch-lightning"),
            "machine": machine(peak_fp32_gflops=matmul_peak_gflops(args.threads) if args.own_machine
                               else PEAK_FP32_GFLOPS, **cpu_features()),
            "load_averages": {"start": os.getloadavg()}, "runs": [], "missing": [], "commands": [command],
        }
        if args.own_machine:
            report["quiet_recbole_epoch_s"] = {}
        kept_missing = []
    me = [sys.executable, str(Path(__file__).resolve()), "--sampler", args.sampler]
    recbole_python = None
    if not args.reuse_recbole:
        sys.path.insert(0, str(HERE))
        from recbole_env import recbole_python as make_env

        recbole_python = str(make_env())

    def save() -> None:
        report["load_averages"]["end"] = os.getloadavg()
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / f"{args.out}.md").write_text(render(report))

    for dataset in datasets:
        prepared = prepared_path(Path(args.prepared_root), dataset)
        if args.probe_threads and report.get("thread_probe") is None:
            runs = []
            for threads in args.probe_threads:
                out = WORK / f"probe-{threads}.json"
                flags = recsys_flags(args)
                flags[1] = str(threads)
                runs.append(run_child([*me, "--worker", "probe", "--prepared", str(prepared), "--model", "sasrec",
                                       "--json-out", str(out), *flags, "--probe-steps", "15"], out))
                log(f"probe: {threads} thread(s) {runs[-1]['median_ms']:.0f} ms/step")
            report["thread_probe"] = {"dataset": dataset, "runs": runs}
        name = f"{dataset}-recsys"
        write_atomic(prepared, WORK / "recbole_data", name)
        for model in models:
            pair: dict[str, Any] = {"dataset": dataset, "model": MODELS[model]}
            index = next((i for i, p in enumerate(report["runs"])
                          if p["dataset"] == dataset and p["model"] == MODELS[model]), None)
            if index is None:
                report["runs"].append(pair)
            else:
                report["runs"][index] = pair  # --merge: this run replaces the saved one
            planned.remove((dataset, model))
            report["missing"] = kept_missing + [f"{d} {MODELS[m]} (not run yet)" for d, m in planned]
            rb_out = WORK / f"recbole-{dataset}-{model}.json"
            if args.reuse_recbole:
                old = next((r.get("recbole") for r in previous.get("runs", [])
                            if r["dataset"] == dataset and r["model"] == MODELS[model]), None)
                if old is None:
                    report["missing"].append(f"{dataset} {MODELS[model]} (no saved RecBole run)")
                    continue
                pair["recbole"] = old
            else:
                log(f"RecBole {MODELS[model]} on {dataset}, {epochs[dataset]} epochs")
                run = run_child([recbole_python, str(HERE / "recbole_train_runner.py"), "--data-path",
                                 str(WORK / "recbole_data"), "--dataset", name, "--model", MODELS[model],
                                 "--epochs", str(epochs[dataset]), "--work-dir", str(WORK / "recbole"),
                                 "--out", str(rb_out), *common_flags(args)], rb_out, cwd=WORK)
                run["train_gflops_per_s"] = recbole_flops(run, args)
                run["load_average_after"] = os.getloadavg()
                pair["recbole"] = run
                save()
            rb = pair["recbole"]
            target = rb["best_valid_ndcg@10"]
            cap = args.cap_fraction * rb["time_to_best_s"]
            log(f"recsys {MODELS[model]} on {dataset}: target valid NDCG@10 {target:.4f}, cap {cap:.0f} s")

            worker = [*me, "--worker", "recsys", "--prepared", str(prepared), "--model", model, "--target",
                      repr(target), "--time-cap", repr(cap), "--max-epochs", str(args.max_epochs)]
            out = WORK / f"recsys-{dataset}-{model}.json"
            ours = run_child([*worker, "--json-out", str(out), *recsys_flags(args)], out)
            ours["load_average_after"] = os.getloadavg()
            pair["recsys"] = ours
            save()
            for number, overrides in enumerate(variants, start=1):
                flags = recsys_flags(args)
                for key, value in overrides.items():
                    flags[flags.index("--" + key.replace("_", "-")) + 1] = value
                label = "recsys tuned (" + ", ".join(f"{k} {v}" for k, v in overrides.items()) + "; RecBole keeps its own)"
                key = "recsys_tuned" if number == 1 else f"recsys_tuned_{number}"
                out = WORK / f"recsys-{dataset}-{model}-tuned-{number}.json"
                tuned = run_child([*worker, "--json-out", str(out), *flags, "--label", label], out)
                tuned["load_average_after"] = os.getloadavg()
                pair[key] = tuned
                save()
                log(f"{label} reached={tuned['reached']} in {fmt(tuned['time_to_target_s'])} s")
            log(f"recsys reached={ours['reached']} in {fmt(ours['time_to_target_s'])} s "
                f"(RecBole {rb['time_to_best_s']:.1f} s)")
    report["missing"] = kept_missing + [m for m in report["missing"][len(kept_missing):] if "not run yet" not in m]
    save()
    print(render(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated `recsys prep` names")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: sasrec, bert4rec")
    parser.add_argument("--recbole-epochs", default=DEFAULT_RECBOLE_EPOCHS,
                        help="RecBole epochs: one number for all datasets or name=N pairs "
                             f"(default {DEFAULT_RECBOLE_EPOCHS})")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every run, both frameworks")
    parser.add_argument("--probe-threads", type=int, nargs="*", default=[1, 2],
                        help="thread counts to time recsys training steps at first (none: skip)")
    parser.add_argument("--max-epochs", type=int, default=400, help="recsys epoch cap")
    parser.add_argument("--cap-fraction", type=float, default=0.5,
                        help="recsys stops after this fraction of RecBole's time to best if it has not reached "
                             "the target (the goal is 0.1; the cap only bounds the benchmark's run time)")
    parser.add_argument("--reuse-recbole", action="store_true",
                        help="take RecBole's runs from the existing results JSON instead of rerunning them")
    parser.add_argument("--merge", action="store_true",
                        help="add these runs to the existing results (same --out and hyperparameters), replacing "
                             "saved runs of the same dataset and model, e.g. to finish a run that was cut short")
    parser.add_argument("--prepared-root", default=str(ROOT / "prepared"),
                        help="folder of prepared datasets; missing ones are made with `recsys prep`")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--n-heads", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.2, help="embedding/residual dropout, both frameworks")
    parser.add_argument("--attn-dropout", type=float, default=0.2, help="attention dropout, both frameworks")
    parser.add_argument("--mask-ratio", type=float, default=0.2, help="BERT4Rec mask ratio")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--precision", default="32-true",
                        help="recsys Trainer precision (RecBole always runs fp32); --tuned precision=bf16-mixed adds a row")
    parser.add_argument("--packed", choices=["true", "false"], default="false",
                        help="recsys packs each batch's windows several to a row (data.packed: the same batches and "
                             "outputs without computing padding); --tuned packed=true adds a row")
    parser.add_argument("--layout", choices=["pre-ln", "post-ln", "reference"], default="pre-ln",
                        help="recsys SASRec's LayerNorm placement (RecBole's SASRec is post-LN; 'reference' is the "
                             "pre-LN block and Xavier init of the SASRec authors' code, recsys.models.SASRec "
                             "reference_block and init); --tuned layout=post-ln adds a row")
    parser.add_argument("--stride", type=int, default=0,
                        help="recsys SASRec starts a training window every STRIDE items (data.train_stride: "
                             "overlapping windows, each target still trained once per epoch, with at least "
                             "max_len - STRIDE items of history); 0 tiles windows end to end; --tuned stride=25 "
                             "adds a row")
    parser.add_argument("--ema", type=float, default=0.0,
                        help="recsys validates an exponential moving average of the weights with this decay per step "
                             "(Lightning's EMAWeightAveraging); 0 validates the trained weights; --tuned ema=0.99 "
                             "adds a row")
    parser.add_argument("--negated-dims", type=int, default=0,
                        help="recsys SASRec scores items against its tied table with the last N columns negated "
                             "(recsys.models.SASRec negated_dims), so the item just read need not score high; "
                             "--tuned negated_dims=32 adds a row")
    parser.add_argument("--seen-margin", type=float, default=0.0,
                        help="recsys SASRec scores the items earlier in each training window this much higher in "
                             "the training softmax (RetrievalTask train_seen_margin), so they end that far lower; "
                             "--tuned seen_margin=2 adds a row")
    parser.add_argument("--own-machine", action="store_true",
                        help="the processor is not the one ../shared/BENCHMARKS.md timed: measure the fp32 matmul peak "
                             "here and judge the goal against RecBole's time measured in this run only (run it quiet)")
    parser.add_argument("--out", default="train_speed", help="results file stem in benchmarks/results")
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite the .md from the existing results JSON and exit")
    # worker mode (internal)
    parser.add_argument("--worker", choices=["recsys", "probe"], help=argparse.SUPPRESS)
    parser.add_argument("--prepared", help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=list(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--target", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--time-cap", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--probe-steps", type=int, default=15, help=argparse.SUPPRESS)
    parser.add_argument("--sampler", choices=["shuffle", "length-grouped"], default="shuffle",
                        help="recsys training batches: shuffled windows (the data module's default) or length-grouped")
    parser.add_argument("--tuned", action="append",
                        help="also run recsys with some settings of its own, e.g. 'batch_size=32,lr=0.002' (keys: "
                             "batch_size, lr, attn_dropout, precision, packed, layout, stride, ema, negated_dims, "
                             "seen_margin; RecBole keeps the shared ones); reported as a separate, clearly labelled "
                             "row; repeat for more rows")
    parser.add_argument("--label", default="recsys", help=argparse.SUPPRESS)
    # Workers only: the driver compares against RecBole on this machine's CPU; benchmarks/gpu_check.py runs
    # workers on a lent GPU with --accelerator gpu.
    parser.add_argument("--accelerator", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render_only:
        report = json.loads((RESULTS / f"{args.out}.json").read_text())
        (RESULTS / f"{args.out}.md").write_text(render(report))
        print(render(report))
    elif args.worker:
        result = worker_recsys(args) if args.worker == "recsys" else worker_probe(args)
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    else:
        drive(args)


if __name__ == "__main__":
    main()
