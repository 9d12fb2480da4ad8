"""GPU sweep: recipes too slow to search on the 2-core CPU, trained side by side on a lent card in one call.

A lent GPU comes for minutes, and one H200 holds many of our small models at once, so every job of a sweep trains
at the same time, each stopped by a wall-clock cap, and `recsys fit` tests each one's best checkpoint by
validation NDCG@10. The jobs (`--only` picks some):

- tiger_*: TIGER at the paper's size (configs/tiger/amazon-beauty-gpu.yaml: 4 + 4 T5 layers, d_ff 1024, 6 heads
  of 64) on Amazon Beauty with semantic IDs built beforehand (`--tiger-ids`, a `SemanticIds.save` file, so the
  card needs no text encoder), at constant learning rates with batches of 256 and 1,024 (the paper's lr 0.01
  diverged on this card with AdamW, benchmarks/results/gpu_check.md), (`*_cos`) with a cosine decay that ends at a
  set step, batches of 1,024 and 2,048, and (`tiger_adafactor_*`) with the optimiser of the paper's T5X setup:
  Adafactor at 0.01 for 10k steps, then 1/sqrt(step) (on the CPU it beat AdamW, benchmarks/results/tiger_quality.md);
  `tiger_adafactor_small_*` train the 2-core model of configs/tiger/amazon-beauty-adafactor.yaml the same way.
  `--retest-seen-excluded` tests each TIGER job's best checkpoint again with history items dropped, and
  `--keep-best DIR` brings those checkpoints back (weights only).
- recformer_*: Recformer fine-tuning on Amazon Beauty with configs/recformer/amazon-beauty-ids.yaml (the 2-core
  config: item texts plus a learned vector per item) with 4 or all 6 of MiniLM's layers and 2 to 6 epochs, which
  the CPU's 30 minutes cannot hold (it keeps 1 layer for 2 epochs). The card needs the text encoder:
  benchmarks/card_minilm.py carries it in two pieces (benchmarks/card_sweep.sh runs a call, TIGER's jobs too).
- sports_*: SASRec on Amazon Sports with the best seen-excluded recipe of benchmarks/results/quality.md (d=64,
  `train_exclude_seen`, label smoothing 0.2) under three seeds, and label smoothing 0.3 without the CPU run's
  time cap.

    python benchmarks/gpu_sweep.py --prepared prepared --tiger-ids ids.npz --budget 420
    python benchmarks/gpu_sweep.py --accelerator cpu --quick --out /tmp/sweep --tiger-ids ids.npz   # rehearsal

`--build-tiger-ids ids.npz` writes the IDs file on a machine with the text encoder: the table that
configs/tiger/amazon-beauty-gpu.yaml builds at setup, from --prepared's amazon-beauty. benchmarks/card_carry.sh
builds everything a card without a package index needs (the IDs, the prepared tables, the missing packages).

Writes gpu_sweep.json and gpu_sweep.md into --out as each job ends (a call cut short still leaves the finished
jobs), each job's log into --logs and its run folder (checkpoints, metrics.csv) under --work.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from gpu_check import (
    Report,
    best_checkpoint,
    card_parser,
    fit_command,
    fit_result,
    log,
    rerender,
    retest_command,
    run_root,
    run_side_by_side,
    start_fit,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TIGER_CONFIG = "configs/tiger/amazon-beauty-gpu.yaml"
TIGER_SMALL_CONFIG = "configs/tiger/amazon-beauty-adafactor.yaml"  # the 2-core model (2 + 2 layers) and recipe
SPORTS_CONFIG = "configs/sasrec/amazon-sports.yaml"
RECFORMER_CONFIG = "configs/recformer/amazon-beauty-ids.yaml"
TIGER_TEST_S = 100  # TIGER's test pass (beam search over every test user) must fit after its training cap
SPORTS_RECIPE = ["--model.init_args.model.init_args.hidden_size", "64", "--model.init_args.train_exclude_seen",
                 "true", "--model.init_args.exclude_seen", "true"]  # fmt: skip


def tiger_job(batch: int, lr: float, warmup: int, validate_every: int, decay_steps: int = 0,
              adafactor: bool = False) -> list[str]:
    """A constant rate after warm-up, or with `decay_steps` a cosine decay that reaches 0 at that step (set
    near the steps the time cap allows: the cap may stop a run before the rate is down). `adafactor` trains with
    the optimiser of the paper's T5X setup (Adafactor, no weight decay): lr then caps its relative step min(lr, 1/sqrt(step))."""
    schedule = ["--model.init_args.schedule", "constant"]
    if decay_steps:
        schedule = ["--model.init_args.schedule", "cosine", "--trainer.max_steps", str(decay_steps)]
    optimizer = ["--model.init_args.optimizer", "adafactor", "--model.init_args.weight_decay", "0.0"] if adafactor else []
    return ["--data.init_args.batch_size", str(batch), "--model.init_args.lr", str(lr), *schedule,
            "--model.init_args.warmup_steps", str(warmup), "--trainer.check_val_every_n_epoch", str(validate_every),
            "--trainer.limit_val_batches", "2", *optimizer]  # fmt: skip


def sports_job(smoothing: float, seed: int) -> list[str]:
    return [*SPORTS_RECIPE, "--model.init_args.loss.init_args.label_smoothing", str(smoothing),
            "--seed_everything", str(seed)]  # fmt: skip


def recformer_job(layers: int, epochs: int, temperature: float = 0.05, dropout: float = 0.1, seed: int = 42) -> list[str]:
    """The CPU config's recipe (its cosine decay ends at max_epochs) with more of MiniLM's layers than 2 cores allow."""
    return ["--model.init_args.model.init_args.n_layers", str(layers), "--trainer.max_epochs", str(epochs),
            "--model.init_args.temperature", str(temperature), "--model.init_args.model.init_args.dropout",
            str(dropout), "--seed_everything", str(seed)]  # fmt: skip


# name -> (config, dataset, extra arguments)
JOBS: dict[str, tuple[str, str, list[str]]] = {
    "tiger_b256_lr3e-4": (TIGER_CONFIG, "amazon-beauty", tiger_job(256, 3e-4, 0, 1)),
    "tiger_b1024_lr5e-4": (TIGER_CONFIG, "amazon-beauty", tiger_job(1024, 5e-4, 100, 3)),
    "tiger_b1024_lr1e-3": (TIGER_CONFIG, "amazon-beauty", tiger_job(1024, 1e-3, 100, 3)),
    "tiger_b1024_lr2e-3": (TIGER_CONFIG, "amazon-beauty", tiger_job(1024, 2e-3, 200, 3)),
    "tiger_b1024_lr1e-3_cos": (TIGER_CONFIG, "amazon-beauty", tiger_job(1024, 1e-3, 100, 3, 2322)),
    "tiger_b1024_lr2e-3_cos": (TIGER_CONFIG, "amazon-beauty", tiger_job(1024, 2e-3, 200, 3, 2322)),
    "tiger_b2048_lr1e-3_cos": (TIGER_CONFIG, "amazon-beauty", tiger_job(2048, 1e-3, 100, 4, 1560)),
    "tiger_b2048_lr2e-3_cos": (TIGER_CONFIG, "amazon-beauty", tiger_job(2048, 2e-3, 100, 4, 1560)),
    "sports_ls02_seed42": (SPORTS_CONFIG, "amazon-sports", sports_job(0.2, 42)),
    "sports_ls02_seed1": (SPORTS_CONFIG, "amazon-sports", sports_job(0.2, 1)),
    "sports_ls02_seed2": (SPORTS_CONFIG, "amazon-sports", sports_job(0.2, 2)),
    "sports_ls03_seed42": (SPORTS_CONFIG, "amazon-sports", sports_job(0.3, 42)),
}
JOBS["tiger_b2048_lr1e-3_cos_alone"] = JOBS["tiger_b2048_lr1e-3_cos"]  # the same recipe alone on the card, its own row
for _batch in (256, 1024, 2048):  # the paper's recipe: Adafactor at 0.01 (then 1/sqrt(step)), no warm-up
    _every = 1 if _batch == 256 else 3  # an epoch of 256s is 513 steps, several minutes side by side on the card
    JOBS[f"tiger_adafactor_b{_batch}"] = (TIGER_CONFIG, "amazon-beauty", tiger_job(_batch, 1e-2, 0, _every, adafactor=True))
    # The 2-core Adafactor model past the 20 epochs its 90 CPU minutes held, with the GPU config's evaluation batches.
    JOBS[f"tiger_adafactor_small_b{_batch}"] = (TIGER_SMALL_CONFIG, "amazon-beauty", [
        *tiger_job(_batch, 1e-2, 0, _every, adafactor=True), "--data.init_args.eval_batch_size", "1024",
        "--model.init_args.model.init_args.length_groups", "1"])
for _layers in (4, 6):
    JOBS[f"recformer_l{_layers}_e2"] = (RECFORMER_CONFIG, "amazon-beauty", recformer_job(_layers, 2))
    JOBS[f"recformer_l{_layers}_e3"] = (RECFORMER_CONFIG, "amazon-beauty", recformer_job(_layers, 3))
    JOBS[f"recformer_l{_layers}_e2_t003"] = (RECFORMER_CONFIG, "amazon-beauty", recformer_job(_layers, 2, 0.03))
    JOBS[f"recformer_l{_layers}_e2_drop02"] = (RECFORMER_CONFIG, "amazon-beauty", recformer_job(_layers, 2, dropout=0.2))
JOBS["tiger_adafactor_small_b2048_drop02"] = (TIGER_SMALL_CONFIG, "amazon-beauty", [
    *JOBS["tiger_adafactor_small_b2048"][2], "--model.init_args.model.init_args.dropout", "0.2"])
JOBS["recformer_l6_e3_seed1"] = (RECFORMER_CONFIG, "amazon-beauty", recformer_job(6, 3, seed=1))
JOBS["recformer_l6_e4"] = (RECFORMER_CONFIG, "amazon-beauty", recformer_job(6, 4))
JOBS["recformer_l6_e6"] = (RECFORMER_CONFIG, "amazon-beauty", recformer_job(6, 6))
JOBS["recformer_l6_e4_seed1"] = (RECFORMER_CONFIG, "amazon-beauty", recformer_job(6, 4, seed=1))
JOBS["recformer_l6_e4_drop02"] = (RECFORMER_CONFIG, "amazon-beauty", recformer_job(6, 4, dropout=0.2))
NOTES: list[str] = [
    "Run on 2026-11-30 on a lent NVIDIA H200 (driver 580.159.04, 143,771 MiB): the image's torch 2.11.0 (CUDA 13.0), "
    "pytorch-lightning 2.6.6 and transformers 5.17.0; polars, faiss-cpu, jsonargparse and omegaconf carried as "
    "wheels. The eight first-call jobs trained at the same time, 2 torch threads each, bf16-mixed, with "
    "`--budget 450`: TIGER's training capped at 350 s (start-up and the test pass over all 22,363 users took the other 25 s of its 375 s), "
    "SASRec's at 430 s.",
    "TIGER: the paper's size with the semantic IDs that configs/tiger/amazon-beauty-collab.yaml builds (text "
    "embedding joined by the training split's co-occurrence embedding; `configs/tiger/amazon-beauty-gpu.yaml` now "
    "builds the same table: every code equal, checked on the CPU). None of the four constant rates diverged, "
    "unlike lr 0.01 with warm-up in gpu_check.md. In 350 s (about 1,295 steps of 1,024, 10 epochs) lr 5e-4 gave "
    "test Recall@10 / NDCG@10 .0607 / .0305, lr 1e-3 .0593 / .0296, lr 2e-3 .0551 / .0271, and batches of 256 at "
    "lr 3e-4 (1,578 steps, 3 epochs) .0518 / .0256; the CPU's best TIGER row is .0344 / .0167 "
    "(benchmarks/results/tiger_quality.md).",
    "`_resumed` rows: a second call went on from the two best runs' last.ckpt with `--ckpt_path last` and "
    "max_time 9:20 in all, side by side, 262.6 s for the call (last.ckpt was the last validation's, epoch 9, so "
    "the steps after it were trained again). lr 5e-4 reached step 3,174 (24 epochs; best validation at epoch 24): "
    "test Recall@5 .0435, NDCG@5 .0264, Recall@10 .0704, NDCG@10 .0350; lr 1e-3: .0429, .0262, .0701, .0349. "
    "TIGER's published Beauty row is .0454, .0321, .0648, .0384: Recall@10 is above it, Recall@5 4% below, "
    "NDCG@5 18% and NDCG@10 9% below. Validation NDCG@10 (2,048 users) was still rising slowly when time ran out "
    "(.0182 at epoch 9, .0199 at 12, .0201 at 24). The batch-256 run's resume failed: its cap had stopped it "
    "mid-epoch with validation every epoch, and early stopping then looked for the validation metric at the "
    "replayed end of that epoch. Fixed since (tests/test_cli_train.py resumes such a run): early stopping checks "
    "after validation only, and the training loader starts the trainer's next epoch from its first batch.",
    "`_cos` rows (2026-12-04, the same card, image and carried packages; the site packages carried as one xz "
    "tarball, since polars' runtime wheel alone is 54 MB of the 64 MiB a call carries): cosine decay to zero at "
    "`--trainer.max_steps` after warm-up, the paper's size and the same IDs, validation at the end of the decay's "
    "last epoch. First call, `--budget 520 --only tiger_b1024_lr1e-3_cos,tiger_b1024_lr2e-3_cos,"
    "tiger_b2048_lr1e-3_cos,tiger_b2048_lr2e-3_cos`: four jobs side by side trained about 3.7 steps a second "
    "with batches of 1,024 and 3.0 with 2,048, so the 420 s cap stopped every one before its decay ended "
    "(1,548-1,572 of 2,322 steps; 1,251-1,254 of 1,560). Batches of 2,048 at lr 1e-3 tested best: Recall@5 "
    ".0413, NDCG@5 .0257, Recall@10 .0705, NDCG@10 .0351 after 20 epochs, the `_resumed` constant-rate row's "
    "level (.0435 / .0264 / .0704 / .0350 after 24 epochs over two calls); lr 2e-3 .0400 / .0252 / .0691 / .0346; "
    "batches of 1,024 (12 epochs) .0360 / .0224 / .0656 / .0319 at lr 1e-3 and .0349 / .0216 / .0608 / .0299 at "
    "2e-3. The same checkpoint of `tiger_b2048_lr1e-3_cos`, brought back and tested on the 2-core CPU in fp32 "
    "(`recsys test --config configs/tiger/amazon-beauty-gpu.yaml --ckpt_path ... --trainer.accelerator cpu "
    "--trainer.precision 32-true`, 5.6 minutes on 1 thread), gave .0411 / .0256 / .0704 / .0350: bf16 on the card "
    "moves the fourth decimal. Second call, `--budget 300 --only tiger_b2048_lr1e-3_cos_alone`: the same recipe "
    "alone on the card finished its decay inside its 200 s cap (1,560 steps, 24 epochs; 205 s for the whole job "
    "with start-up and the test, so over 7.6 steps a second): .0423 / .0258 / .0705 / .0349, validation NDCG@10 .0203 and .0204 at epochs 20 and 24. "
    "So neither decaying the rate nor finishing the decay moves the test past the constant rate's plateau: every "
    "recipe that trained 20 epochs or more lands at Recall@10 .069-.071 and NDCG@10 .0346-.0351, against the "
    "paper's .0648 / .0384 (NDCG@5 .0252-.0264 against .0321).",
    "`recformer_*` rows (2026-12-04, the same card and image, the packages carried as before): "
    "configs/recformer/amazon-beauty-ids.yaml with `--model.init_args.model.init_args.n_layers` 4 or 6, "
    "`--trainer.max_epochs` 2-6 (the cosine decay ends there), bf16-mixed; validation NDCG@10 on 5,120 random users "
    "twice an epoch, early stopping after 3 validations without gain, test of the best checkpoint on all 22,363 "
    "users. MiniLM travelled as benchmarks/card_minilm.py packs it: the 1,032 word-embedding rows that Beauty's "
    "item texts tokenize to (the rest restored as zeros, which no fine-tuning computation reads) and the layers in "
    "float16 (restored to float32; the restored encoder's token states against the original on 2,000 Beauty items: "
    "cosine at least 0.999999). A call carries 64 MiB and the packages take 44 MB, so the first call carried the "
    "lower 4 layers (the `l4` jobs, 163 s for the call) and the later calls, on the same warm machine, the upper 2. "
    "The calls ran an earlier form of benchmarks/card_sweep.sh (then card_recformer.sh) that unpacked the packages into the working "
    "tree, which the next call no longer had (the tree, ignored folders too, is sent afresh each call), so a 4 s "
    "call unpacked them again into /tmp, where the script now puts them. Four jobs trained side by side per call, "
    "one for `recformer_l6_e4_seed1`. Recall@10 / NDCG@10 / MRR@10 (MRR in gpu_sweep.json and "
    "benchmarks/results/recformer_quality.md): 4 layers, 2 epochs .0822 / .0462 / .0352, 3 epochs .0844 / .0497 / "
    ".0392; 6 layers, 2 epochs .0851 / .0474 / .0360, 3 epochs .0916 / .0533 / .0417 (seed 1: .0919 / .0532 / "
    ".0414), 4 epochs .0944 / .0552 / .0434 (seed 1: .0937 / .0550 / .0433), 6 epochs (early stopping at step "
    "1,851) .0933 / .0549 / .0432; dropout 0.2 with 4 epochs .0948 / .0550 / .0430; temperature 0.03 did not help at "
    "2 epochs (.0825 / .0470 / .0362 with 6 layers). One 4-epoch job alone: 105 s for the whole job with start-up "
    "and the test. The 2-core config (1 layer, 2 epochs, 30 minutes) tests at .0835 / .0482 / .0376, and the best "
    "SASRec on the CPU at .0870 / .0430 / .0295 (Recall@10) and .0826 / .0492 / .0391 (NDCG@10, MRR@10).",
    "`tiger_adafactor_*` rows (2026-12-04, the same card and image, the packages carried as before; two calls of "
    "`bash benchmarks/card_sweep.sh JOBS BUDGET --retest-seen-excluded --keep-best $OUT`): TIGER with the optimiser "
    "of the paper's T5X setup, Adafactor at a relative step of 0.01 (torch's Adafactor holds it until step 10,000, "
    "which no job reached), no warm-up, no weight decay, the same IDs. First call, `tiger_adafactor_b2048,"
    "tiger_adafactor_b1024 500` (two jobs side by side, 400 s training cap, 455 s for the call), the paper's size: "
    "batches of 1,024 ran 1,822 steps (15 epochs) with validation NDCG@10 still rising (.0182, .0185, .0193 at "
    "epochs 9, 12, 15) and tested .0419 / .0271 / .0706 / .0363 (Recall@5 / NDCG@5 / Recall@10 / NDCG@10); "
    "batches of 2,048 ran 1,755 steps (27 epochs), validation flat after epoch 12 (.0191 at 12 and 24), and tested "
    ".0419 / .0255 / .0718 / .0351 from epoch 12. Second call, `tiger_adafactor_small_b2048,"
    "tiger_adafactor_small_b2048_drop02 290` (190 s cap, 259 s for the call): the 2-core model of "
    "configs/tiger/amazon-beauty-adafactor.yaml with batches of 2,048 trained 24 epochs in 190 s (1,561 steps), "
    "validation .0218 at epoch 24 and still rising, and tested .0426 / .0265 / .0709 / .0356; dropout 0.2 instead of "
    "0.1, .0406 / .0245 / .0706 / .0342. The same model on the 2-core CPU (batches of 1,024, 90 minutes, 20 epochs, "
    "checkpoint best-15-2064) tested .0440 / .0272 / .0722 / .0363 (benchmarks/results/tiger_quality.md). So Adafactor brings the "
    "card's NDCG@5 from the .0252-.0264 of the AdamW rows that trained 20 epochs or more to at most .0271, and the "
    "paper's size gains nothing over the 2-core model in these minutes (its validation was still rising): every "
    "TIGER recipe that trained 15 epochs or more lands at NDCG@10 .034-.036 with seen items kept, against the paper's "
    ".0454 / .0321 / .0648 / .0384. With each user's history items dropped (the table above), all four jobs are "
    "above the paper's row on all four metrics: the best NDCG@5 .0349 and NDCG@10 .0437 (small model, batches of "
    "2,048), the best Recall@5 .0524 and Recall@10 .0795 (the same job). "
    "`tiger_adafactor_b1024`'s checkpoint, brought back with `--keep-best` (bf16 weights, loaded into fp32) and read "
    "on the 2-core CPU by `python benchmarks/seen_in_topk.py CKPT --data prepared/amazon-beauty --max-len 20 "
    "--threads 2`, ranks 1.025 history items per top 10 and a history item first for 0.190 of the test users (the "
    "item read last for 0.055), as the 2-core Adafactor model does (1.022, 0.180): the paper's size and more steps "
    "on the card do not stop TIGER ranking items the user already has.",
    "Sports: SASRec d=64 with `train_exclude_seen` and label smoothing, tested with seen items excluded. Test "
    "Recall@10 / NDCG@10 with smoothing 0.2 under seeds 42, 1 and 2: .0565 / .0329, .0567 / .0334, .0555 / .0324; "
    "smoothing 0.3, seed 42: .0566 / .0330. On the 2-core CPU, smoothing 0.2 with seed 42 gave .0563 / .0330 "
    "(benchmarks/results/quality.md). All four reached the 430 s cap at epochs 48-50, with their best validation at "
    "epochs 32-40. Against the best published Sports row (.0569 / .0314), NDCG@10 is above it in all four runs and "
    "Recall@10 below it in all four, by .0002 to .0014.",
]


def build_tiger_ids(data: Path, path: Path) -> Path:
    """The semantic IDs TIGER_CONFIG builds at setup (its model arguments, the training split's co-occurrence),
    saved for a card without the text encoder."""
    import yaml

    from recsys.data import SequenceDataModule
    from recsys.models import TIGER

    config = yaml.safe_load((ROOT / TIGER_CONFIG).read_text())
    data_module = SequenceDataModule(str(data), max_len=config["data"]["init_args"]["max_len"], objective="causal")
    data_module.setup("fit")
    model = TIGER(data_module.n_items, **config["model"]["init_args"]["model"]["init_args"])
    return model.prepare_semantic_ids(data_module.dataset, data_module.split.train).save(path)


def keep_weights(checkpoint: Path, path: Path, limit_bytes: int = 15 * 2**20) -> Path:
    """The checkpoint without its optimiser and loop state, small enough for a call that brings back 16 MiB a file:
    floating weights in bf16 when fp32 would not fit (loading casts them back to the model's fp32)."""
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    for key in ("optimizer_states", "lr_schedulers", "loops"):
        state.pop(key, None)
    weights = state["state_dict"]
    if sum(t.numel() * t.element_size() for t in weights.values()) > limit_bytes:
        state["state_dict"] = {k: t.bfloat16() if t.is_floating_point() else t for k, t in weights.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    return tmp.replace(path)


def trained_steps(root: Path) -> int | None:
    """The last optimiser step logged in the run's metrics.csv files."""
    import polars as pl

    steps = [pl.read_csv(csv)["step"].max() for csv in root.rglob("metrics.csv")]
    steps = [int(s) for s in steps if s is not None]
    return max(steps) if steps else None


def job_result(name: str, command: list[str], code: int | str, wall: float) -> dict[str, Any]:
    root = run_root(command)
    result = fit_result(root) if code == 0 else {"ok": False, "error": f"exit {code}; see {name}.log"}
    result["steps"] = trained_steps(root)
    result["wall_s"] = round(wall, 1)
    result["command"] = "recsys " + " ".join(command[3:]).replace(str(ROOT) + "/", "")
    return result


def render(data: dict[str, Any]) -> str:
    device = data.get("device", "the card")
    lines = [
        "# GPU sweep", "",
        f"Card: {device}; host {data['machine']['cpu']}, {data['machine']['cores']} cores. Versions: "
        f"{', '.join(f'{k} {v}' for k, v in data['versions'].items())}.", "",
        f"Command: `python {data['command']}`", "",
        "Each job is `recsys fit` (training capped by `--trainer.max_time`, then `recsys test` of the best "
        "checkpoint by validation NDCG@10); all jobs ran at the same time on the one card.", "",
        "| job | test Recall@5 | test NDCG@5 | test Recall@10 | test NDCG@10 | protocol | best val NDCG@10 (epoch, "
        "from 1) | last validated epoch | steps | wall s (fit + test) | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, r in data["jobs"].items():
        if not r.get("test"):
            lines.append(f"| {name} | | | | | {r.get('error', '')} | | | {r.get('steps')} | {r.get('wall_s')} | "
                         f"`{r.get('command', '')}` |")
            continue
        test = r["test"]
        curve = r.get("val_ndcg@10_by_epoch") or [[-1, float("nan")]]
        best = max(curve, key=lambda point: point[1])
        lines.append(
            f"| {name} | {test['recall@5']:.4f} | {test['ndcg@5']:.4f} | {test['recall@10']:.4f} | "
            f"{test['ndcg@10']:.4f} | {r['protocol']} | {best[1]:.4f} ({best[0] + 1}) | {curve[-1][0] + 1} | "
            f"{r.get('steps')} | {r['wall_s']} | `{r['command']}` |")
    excluded = {name: r["test_seen_excluded"] for name, r in data["jobs"].items()
                if isinstance(r.get("test_seen_excluded"), dict)}
    if excluded:
        lines += ["", "The same best checkpoints with each user's history items dropped from the ranking "
                  "(`recsys test --config RUN/config.yaml --ckpt_path BEST --model.init_args.exclude_seen true`, "
                  "`--retest-seen-excluded`):", "",
                  "| job | test Recall@5 | test NDCG@5 | test Recall@10 | test NDCG@10 |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {t['recall@5']:.4f} | {t['ndcg@5']:.4f} | {t['recall@10']:.4f} | {t['ndcg@10']:.4f} |"
                  for name, t in excluded.items()]
    if NOTES:
        lines += ["", "Notes:", "", *(f"- {note}" for note in NOTES)]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = card_parser(__doc__, "gpu_sweep")
    parser.add_argument("--budget", type=float, default=420.0,
                        help="seconds until every job has stopped training (TIGER's cap leaves its test pass room)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each job")
    parser.add_argument("--tiger-ids", type=Path, help="SemanticIds.save file for TIGER (no tiger_* job without it)")
    parser.add_argument("--only", default="", help="comma-separated job names (default: all)")
    parser.add_argument("--quick", action="store_true", help="20 batches of 32 for 2 epochs, 2 test batches of 64: a plumbing rehearsal")
    parser.add_argument("--retest-seen-excluded", action="store_true",
                        help="as each TIGER job ends, test its best checkpoint again with history items dropped")
    parser.add_argument("--keep-best", type=Path, metavar="DIR",
                        help="copy each TIGER job's best checkpoint, weights only, to DIR/<job>.ckpt")
    parser.add_argument("--build-tiger-ids", type=Path, metavar="PATH",
                        help="write the GPU config's semantic IDs for --prepared's amazon-beauty to PATH, then exit")
    args = parser.parse_args()
    if args.build_tiger_ids:
        print(build_tiger_ids(args.prepared / "amazon-beauty", args.build_tiger_ids))
        return 0
    if args.render_only:
        rerender(args.out, "gpu_sweep", render)
        return 0
    chosen = [name for name in JOBS if not args.only or name in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - set(JOBS)
    if unknown:
        parser.error(f"unknown jobs {sorted(unknown)}; known: {', '.join(JOBS)}")
    if not args.tiger_ids:
        chosen = [name for name in chosen if not name.startswith("tiger_")]
    elif not args.tiger_ids.is_file():
        parser.error(f"--tiger-ids {args.tiger_ids}: no such file")
    for folder in (args.logs, args.work):
        folder.mkdir(parents=True, exist_ok=True)
    report = Report(args.out, "gpu_sweep", render)
    try:
        import torch

        report.data["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)"
    except ImportError:
        report.data["device"] = "unknown"
    commands: dict[str, list[str]] = {}
    for name in chosen:
        config, dataset, extra = JOBS[name]
        tiger = name.startswith("tiger_")
        cap = args.budget - (TIGER_TEST_S if tiger and not args.quick else 20)
        extra = [*extra, "--trainer.accelerator", args.accelerator, "--trainer.precision", "bf16-mixed"]
        if tiger:
            extra += ["--model.init_args.model.init_args.semantic_ids", str(args.tiger_ids)]
        if args.quick:
            extra += ["--trainer.limit_train_batches", "20", "--trainer.max_epochs", "2",
                      "--trainer.check_val_every_n_epoch", "1", "--trainer.val_check_interval", "1.0",
                      "--trainer.limit_test_batches", "2",
                      "--data.init_args.batch_size", "32", "--data.init_args.eval_batch_size", "64"]
        commands[name] = fit_command(config, args.prepared, dataset, args.work / name, cap, extra)
    started = time.perf_counter()
    log(f"starting {len(commands)} jobs: {', '.join(commands)}")

    retests: dict[str, tuple[Any, Path]] = {}

    def ended(name: str, code: int | str, wall: float) -> None:
        result = job_result(name, commands[name], code, wall)
        log(f"{name}: {json.dumps(result)[:500]}")
        report.add(name, result)
        root = run_root(commands[name])
        if args.retest_seen_excluded and name.startswith("tiger_") and result.get("ok"):
            again = root.with_name(root.name + "-seen-excluded")
            retest = retest_command(root, again, args.accelerator, ["--model.init_args.exclude_seen", "true"])
            if retest is not None:
                retests[name] = (start_fit(f"{name}-seen-excluded", retest, args.logs, args.threads)[0], again)
        best = best_checkpoint(root) if args.keep_best and name.startswith("tiger_") else None
        if best is not None:
            log(f"{name}: kept {keep_weights(best, args.keep_best / f'{name}.ckpt')} from {best.name}")

    run_side_by_side(commands, args.logs, args.threads, args.budget, ended)
    for name, (proc, again) in retests.items():
        try:
            code = proc.wait(timeout=max(1.0, args.budget + 60 - (time.perf_counter() - started)))
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "killed at the budget"
        retested = fit_result(again) if code == 0 else {"ok": False, "error": f"exit {code}"}
        report.data["jobs"][name]["test_seen_excluded"] = retested.get("test") or retested.get("error")
        log(f"{name} seen excluded: {report.data['jobs'][name]['test_seen_excluded']}")
        report.add(name, report.data["jobs"][name])
    log(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
