"""GPU check: what of recsys runs on a lent accelerator, and how fast, in one short prepared run.

A GPU machine is lent to a session rarely and for minutes, so everything that needs one is in this one script,
which goes on job by job: a job that fails is reported with its log and the others still run. Jobs, in order:

- device: torch, CUDA, bf16 and faiss facts; where the ItemRanker puts its index (faiss-gpu when the installed
  faiss has GPU support, else CPU) and that `use_gpu=True` without GPU faiss is refused with a clear error.
- bf16: SASRec scores of one Amazon Beauty batch on the GPU, fp32 against bf16 autocast (relative error of the
  loss, agreement of the top-10 items).
- speed: `benchmarks/train_speed.py` workers with `--accelerator gpu`, the CPU benchmark's hyperparameters and
  targets (RecBole's best validation NDCG@10 from benchmarks/results/train_speed.json): seconds to the target.
  These run alone on the card; the fit jobs after them share it.
- fit jobs, side by side and time-capped (`recsys fit`, which tests its best checkpoint): SASRec on Amazon
  Beauty with the shipped config in bf16, and with the best seen-excluded recipe of quality.md (d=64,
  `train_exclude_seen`); TIGER at the paper's size (configs/tiger/amazon-beauty-gpu.yaml)
  with semantic IDs built beforehand (`--tiger-ids`, a `SemanticIds.save` file, so no text encoder is needed
  there) and the config's own optimisation (`--tiger-epochs` / `--tiger-warmup` override it); SASRec on ML-100K with the DDP strategy on the one GPU, then its
  checkpoint tested again without DDP (the metrics must agree).

    python benchmarks/gpu_check.py --prepared prepared --out benchmarks/results --tiger-ids ids.npz --budget 420
    python benchmarks/gpu_check.py --accelerator cpu --quick --out /tmp/gpu_check   # rehearsal on a CPU

Writes gpu_check.json and gpu_check.md into --out after every job (a run cut short still leaves its results),
and each job's log into --logs. The script needs recsys importable (an install, or PYTHONPATH at the repository)
and no download: on a machine that reaches no package index, carry what its image lacks as wheels (for the
H200 run: polars, faiss-cpu, jsonargparse, omegaconf and their pure-Python needs; benchmarks/card_carry.sh
builds that folder).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import cores, cpu_name, versions, write_text_atomic

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEED_TARGETS = HERE / "results" / "train_speed.json"
# (dataset, model, precision, packed): the CPU benchmark's identical-hyperparameter runs, then its fastest variant.
SPEED_RUNS = [
    ("ml-100k", "sasrec", "32-true", "false"), ("ml-100k", "bert4rec", "32-true", "false"),
    ("amazon-beauty", "sasrec", "32-true", "false"), ("amazon-beauty", "sasrec", "bf16-mixed", "true"),
]
MODEL_NAMES = {"sasrec": "SASRec", "bert4rec": "BERT4Rec"}


def log(message: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Report:
    """The results so far, rewritten after every job (to a temporary name, then renamed) so that a run killed at
    its limit still leaves them: `<stem>.json` and the markdown `render` makes of it, `<stem>.md`."""

    def __init__(self, out: Path, stem: str, render: Callable[[dict[str, Any]], str], **fields: Any) -> None:
        self.out, self.stem, self.render = out, stem, render
        self.data: dict[str, Any] = {
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), **fields,
            "machine": {"cpu": cpu_name(), "cores": cores()},
            "versions": versions("torch", "pytorch-lightning", "transformers", "faiss-cpu", "faiss-gpu-cu12", "polars"),
            "jobs": {},
        }  # fmt: skip

    def add(self, name: str, result: dict[str, Any]) -> None:
        self.data["jobs"][name] = result
        for suffix, text in (("json", json.dumps(self.data, indent=2) + "\n"), ("md", self.render(self.data))):
            write_text_atomic(self.out / f"{self.stem}.{suffix}", text)


def rerender(out: Path, stem: str, render: Callable[[dict[str, Any]], str]) -> None:
    """`--render-only`: rewrite <stem>.md from <stem>.json (after editing the notes, say) and print it."""
    text = render(json.loads((out / f"{stem}.json").read_text()))
    (out / f"{stem}.md").write_text(text)
    print(text)


def card_parser(doc: str, stem: str) -> argparse.ArgumentParser:
    """A card script's parser (its docstring as help) with the arguments every card script takes: the data, where
    results, logs and run folders go, the accelerator."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    parser.add_argument("--prepared", type=Path, default=ROOT / "prepared", help="root of the prepared datasets")
    parser.add_argument("--out", type=Path, default=HERE / "results", help=f"where {stem}.json and .md go")
    parser.add_argument("--logs", type=Path, default=HERE / ".work" / stem, help="one log per job")
    parser.add_argument("--work", type=Path, default=HERE / ".work" / stem, help="run folders of the fit jobs")
    parser.add_argument("--accelerator", default="gpu", help="gpu, or cpu to rehearse the plumbing")
    parser.add_argument("--render-only", action="store_true", help=f"rewrite {stem}.md from --out's {stem}.json")
    return parser


def guarded(report: Report, name: str, job, *args: Any) -> dict[str, Any]:  # noqa: ANN001
    """Run one job; a failure becomes its result instead of ending the check."""
    started = time.perf_counter()
    try:
        result = job(*args)
    except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the other jobs
        result = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    result["seconds"] = round(time.perf_counter() - started, 1)
    log(f"{name}: {json.dumps(result)[:600]}")
    report.add(name, result)
    return result


def run_logged(command: list[str], log: Path) -> int:
    """Run a command to its end, its output appended to `log` after the command line itself."""
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(command)}\n")
        fh.flush()
        return subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode


# ---------------------------------------------------------------- device and bf16 ----------------------------
def job_device(accelerator: str) -> dict[str, Any]:
    import faiss
    import numpy as np
    import torch

    from recsys.eval.ranker import IndexSpec, ItemRanker

    found: dict[str, Any] = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        found.update(device=props.name, capability=f"{props.major}.{props.minor}", memory_gib=round(props.total_memory / 2**30, 1),
                     multiprocessors=props.multi_processor_count, bf16_supported=torch.cuda.is_bf16_supported(),
                     cuda=torch.version.cuda)  # fmt: skip
    found["faiss"] = faiss.__version__
    found["faiss_gpu_build"] = hasattr(faiss, "StandardGpuResources")
    found["faiss_gpus"] = faiss.get_num_gpus() if found["faiss_gpu_build"] else 0
    table = np.random.default_rng(0).standard_normal((1001, 64)).astype(np.float32)
    ranker = ItemRanker(table)
    found["ranker_on_gpu"] = ranker.on_gpu
    ids, _ = ranker.search(table[1:33], 10)
    found["ranker_self_hit"] = bool((ids[:, 0].numpy() == np.arange(1, 33)).mean() > 0.9)
    try:
        ItemRanker(table, IndexSpec(use_gpu=True))
        found["use_gpu_true"] = "GPU index built"
    except (RuntimeError, ValueError) as error:
        found["use_gpu_true"] = f"refused: {error}"
    found["ok"] = accelerator != "gpu" or found["cuda_available"]
    return found


def job_bf16(prepared: Path, accelerator: str) -> dict[str, Any]:
    import torch

    from recsys.data import SequenceDataModule
    from recsys.models import SASRec

    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    torch.manual_seed(0)
    data = SequenceDataModule(prepared / "amazon-beauty", max_len=50, batch_size=256, objective="causal")
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    model = SASRec(data.n_items, hidden_size=64, n_layers=2, n_heads=2, max_len=50).to(device).eval()
    seq, targets = batch["item_seq"].to(device), batch["targets"].to(device)
    mask = targets > 0

    def scores() -> tuple[torch.Tensor, torch.Tensor]:
        hidden = model(seq)[mask]
        logits = hidden @ model.item_embeddings().T
        return logits.float(), torch.nn.functional.cross_entropy(logits.float(), targets[mask])

    with torch.no_grad():
        fp32_logits, fp32_loss = scores()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            bf16_logits, bf16_loss = scores()
    top32 = fp32_logits.topk(10).indices
    top16 = bf16_logits.topk(10).indices
    overlap = (top32.unsqueeze(2) == top16.unsqueeze(1)).any(2).float().mean().item()
    rel = abs(bf16_loss.item() - fp32_loss.item()) / fp32_loss.item()
    return {"positions": int(mask.sum()), "loss_fp32": round(fp32_loss.item(), 5), "loss_bf16": round(bf16_loss.item(), 5),
            "loss_relative_error": round(rel, 5), "top10_overlap": round(overlap, 4),
            "ok": rel < 0.01 and overlap > 0.8}  # fmt: skip


# ---------------------------------------------------------------- speed --------------------------------------
def speed_target(dataset: str, model: str) -> float:
    runs = json.loads(SPEED_TARGETS.read_text())["runs"]
    for run in runs:
        if run["dataset"] == dataset and run["model"] == MODEL_NAMES[model] and "recbole" in run:
            return float(run["recbole"]["best_valid_ndcg@10"])
    raise KeyError(f"{SPEED_TARGETS}: no RecBole run for {dataset} {model}")


def job_speed(prepared: Path, accelerator: str, logs: Path, work: Path, cap_s: float, runs: list[tuple]) -> dict[str, Any]:
    rows = []
    for dataset, model, precision, packed in runs:
        target = speed_target(dataset, model)
        out = work / f"speed-{dataset}-{model}-{precision}-{packed}.json"
        command = [sys.executable, str(HERE / "train_speed.py"), "--worker", "recsys", "--prepared",
                   str(prepared / dataset), "--model", model, "--target", str(target), "--time-cap", str(cap_s),
                   "--accelerator", accelerator, "--precision", precision, "--packed", packed, "--threads", "4",
                   "--json-out", str(out)]  # fmt: skip
        started = time.perf_counter()
        code = run_logged(command, logs / "speed.log")
        row: dict[str, Any] = {"dataset": dataset, "model": MODEL_NAMES[model], "precision": precision,
                               "packed": packed == "true", "target_ndcg@10": target,
                               "process_s": round(time.perf_counter() - started, 1)}  # fmt: skip
        if code != 0 or not out.exists():
            row["error"] = f"exit {code}; see speed.log"
        else:
            result = json.loads(out.read_text())
            row.update({key: result.get(key) for key in (
                "reached", "time_to_target_s", "epochs_to_target", "best_valid_ndcg@10", "train_s_per_epoch",
                "valid_s_per_epoch", "targets_per_s", "train_gflops_per_s", "setup_s", "device_name")})
        rows.append(row)
    return {"rows": rows, "cap_s": cap_s, "ok": all("error" not in r for r in rows)}


# ---------------------------------------------------------------- fit jobs -----------------------------------
def fit_command(config: str, prepared: Path, dataset: str, root: Path, seconds: float, extra: list[str]) -> list[str]:
    minutes, secs = divmod(int(seconds), 60)
    return [sys.executable, "-m", "recsys.cli", "fit", "--config", str(ROOT / config), "--data.path",
            str(prepared / dataset), "--trainer.default_root_dir", str(root), "--experiment", root.name,
            "--trainer.max_time", f"00:00:{minutes:02d}:{secs:02d}", "--trainer.enable_progress_bar", "false",
            *extra]  # fmt: skip


def run_root(command: list[str]) -> Path:
    """The run folder a `fit_command` writes into (its --trainer.default_root_dir)."""
    return Path(command[command.index("--trainer.default_root_dir") + 1])


def fit_result(root: Path) -> dict[str, Any]:
    """Test metrics of the run's best checkpoint and its validation curve, from the run's own files."""
    import polars as pl

    metrics = sorted(root.rglob("test_metrics.json"), key=lambda p: p.stat().st_mtime)
    if not metrics:
        return {"ok": False, "error": "no test_metrics.json"}
    record = json.loads(metrics[-1].read_text())
    curve: list[list[float]] = []
    for csv in sorted(root.rglob("metrics.csv")):
        frame = pl.read_csv(csv)
        if "val/ndcg@10" in frame.columns:
            frame = frame.filter(pl.col("val/ndcg@10").is_not_null())
            curve += [[int(e), round(float(v), 4)] for e, v in zip(frame["epoch"], frame["val/ndcg@10"], strict=True)]
    return {"ok": True, "test": {k: round(v, 4) for k, v in record["metrics"].items()}, "protocol": record["protocol"],
            "val_ndcg@10_by_epoch": curve}  # fmt: skip


def start_fit(name: str, command: list[str], logs: Path, threads: int) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    fh = (logs / f"{name}.log").open("w")
    fh.write(f"$ {' '.join(command)}\n")
    fh.flush()
    return subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, env=env), time.perf_counter()


def best_checkpoint(root: Path) -> Path | None:
    """The run's latest best-*.ckpt (the one `fit` tested)."""
    best = sorted(root.rglob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    return best[-1] if best else None


def retest_command(root: Path, again: Path, accelerator: str, extra: list[str]) -> list[str] | None:
    """`recsys test` of the run's best checkpoint under the config it trained with, plus `extra`, into `again`;
    None when the run left no best checkpoint or config.yaml."""
    best = best_checkpoint(root)
    config = sorted(root.rglob("config.yaml"), key=lambda p: p.stat().st_mtime)
    if best is None or not config:
        return None
    return [sys.executable, "-m", "recsys.cli", "test", "--config", str(config[0]), "--ckpt_path", str(best),
            "--trainer.accelerator", accelerator, "--trainer.default_root_dir", str(again),
            "--trainer.enable_progress_bar", "false", *extra]  # fmt: skip


def ddp_retest(root: Path, logs: Path, accelerator: str) -> dict[str, Any]:
    """The DDP run's best checkpoint tested by one plain process: its metrics must equal the DDP test's."""
    again = root.with_name(root.name + "-retest")
    command = retest_command(root, again, accelerator, ["--trainer.strategy", "auto"])
    if command is None:
        return {"error": "no best checkpoint or config.yaml"}
    code = run_logged(command, logs / "ddp.log")
    retested = fit_result(again)
    return retested["test"] if code == 0 and retested["ok"] else {"error": f"exit {code}; see ddp.log"}


def fit_jobs(args: argparse.Namespace, report: Report, budget_s: float) -> None:
    work = args.work
    gpu = ["--trainer.accelerator", args.accelerator]
    test_margin = 40 if args.quick else 120  # TIGER's test pass (beam search over every test user) after its cap
    jobs = {
        "fit_sasrec_beauty_bf16": fit_command(
            "configs/sasrec/amazon-beauty.yaml", args.prepared, "amazon-beauty", work / "sasrec-beauty-bf16",
            budget_s - 30, [*gpu, "--trainer.precision", "bf16-mixed"]),
        "fit_ddp_ml100k": fit_command(
            "configs/sasrec/ml-100k.yaml", args.prepared, "ml-100k", work / "ddp-ml100k", budget_s - 30,
            [*gpu, "--trainer.strategy", "ddp", "--trainer.devices", "1", "--trainer.max_epochs", "3"]),
        # The best seen-excluded recipe of benchmarks/results/quality.md (`ce-d64-packed-trainexcl`), in bf16.
        "fit_sasrec_beauty_d64_trainexcl_bf16": fit_command(
            "configs/sasrec/amazon-beauty.yaml", args.prepared, "amazon-beauty", work / "sasrec-beauty-d64-trainexcl",
            budget_s - 30, [*gpu, "--trainer.precision", "bf16-mixed", "--model.init_args.model.init_args.hidden_size",
                            "64", "--model.init_args.train_exclude_seen", "true", "--model.init_args.exclude_seen", "true"]),
    }
    if args.tiger_ids:
        overrides = [] if args.tiger_epochs is None else ["--trainer.max_epochs", str(args.tiger_epochs)]
        if args.tiger_warmup is not None:
            overrides += ["--model.init_args.warmup_steps", str(args.tiger_warmup)]
        jobs["fit_tiger_beauty_paper_size"] = fit_command(
            "configs/tiger/amazon-beauty-gpu.yaml", args.prepared, "amazon-beauty", work / "tiger-beauty-gpu",
            budget_s - test_margin,
            [*gpu, "--model.init_args.model.init_args.semantic_ids", str(args.tiger_ids), *overrides,
             "--trainer.check_val_every_n_epoch", "1" if args.quick else "5",
             "--trainer.limit_val_batches", "4"])
    if args.quick:
        for command in jobs.values():
            command += ["--trainer.limit_train_batches", "20", "--trainer.max_epochs", "2"]
    run_side_by_side(jobs, args.logs, args.threads, budget_s,
                     lambda name, code, wall: fit_report(report, name, jobs[name], code, wall, args))


def run_side_by_side(jobs: dict[str, list[str]], logs: Path, threads: int, budget_s: float,
                     on_end: Callable[[str, int | str, float], None]) -> None:
    """Start every job at once and call `on_end(name, exit code, wall seconds)` as each one ends, so that its
    result is written before the others finish; a job still running 60 s past the budget is killed."""
    running = {name: start_fit(name, command, logs, threads) for name, command in jobs.items()}
    ended: set[str] = set()
    while len(ended) < len(running):
        for name, (proc, started) in running.items():
            if name in ended:
                continue
            code: int | str | None = proc.poll()
            if code is None and time.perf_counter() - started > budget_s + 60:
                proc.kill()  # a backstop: --trainer.max_time ends training well before this
                proc.wait()
                code = "killed at the budget"
            if code is not None:
                ended.add(name)
                on_end(name, code, time.perf_counter() - started)
        time.sleep(1.0)


def fit_report(report: Report, name: str, command: list[str], code: int | str, wall: float,
               args: argparse.Namespace) -> None:
    root = run_root(command)
    result = fit_result(root) if code == 0 else {"ok": False, "error": f"exit {code}; see {name}.log"}
    result["wall_s"] = round(wall, 1)
    result["command"] = " ".join(command[1:]).replace(str(ROOT) + "/", "")
    if name == "fit_ddp_ml100k" and result.get("ok"):
        result["retest_without_ddp"] = ddp_retest(root, args.logs, args.accelerator)
        result["ok"] = result["retest_without_ddp"] == result["test"]
    log(f"{name}: {json.dumps(result)[:600]}")
    report.add(name, result)


# ---------------------------------------------------------------- report -------------------------------------
NOTES = [
    "Run on 2026-11-30 on a lent NVIDIA H200 (one card, so DDP ran as one process with the ddp strategy: its "
    "NCCL set-up and metric gathering, not a multi-rank split; two CPU ranks are covered by tests/). The machine "
    "reaches no package index: torch 2.11 (CUDA 13.0), pytorch-lightning, transformers and numpy were the "
    "image's, polars 2.1.0, faiss-cpu 1.15.1, jsonargparse, omegaconf and their needs were carried as wheels. "
    "faiss-gpu could not be checked: PyPI's faiss-gpu-cu12 needs the CUDA 12 cuBLAS and runtime wheels (hundreds "
    "of MB), which neither fit the 64 MiB the tool carries nor exist on the CUDA 13 image, so the ranker ran on "
    "faiss-cpu beside the card (the `device` row shows it choosing the CPU index and refusing `use_gpu=True`).",
    "The four fit jobs shared the card and its 16 CPU cores (4 torch threads each); their wall times include "
    "`recsys fit`'s test pass, and both Beauty SASRec runs ended by early stopping. On the 2-core CPU the same "
    "recipes took 40.2 min (`ce-d128-packed`, the shipped config: 78 epochs, best 66, test .0827 / .0477, seen "
    "kept) and 24.1 min (`ce-d64-packed-trainexcl`: 49 epochs, best 28, .0943 / .0564, seen excluded) in "
    "benchmarks/results/quality.md; on the card 243 s and 165 s for .0821 / .0470 and .0946 / .0562, with the "
    "best validation NDCG@10 at the same epochs (.0595 at 66 against .0587; .0708 at 28 against .0710).",
    "TIGER at the paper's size (configs/tiger/amazon-beauty-gpu.yaml as it was then, semantic IDs from configs/tiger/"
    "amazon-beauty-collab.yaml's recipe built on the CPU and carried, lr 0.01 with 1,500 warm-up steps, 30-epoch "
    "cosine, bf16) did not learn: validation NDCG@10 0.0 at epoch 4 and test .0008 / .0004. A second call "
    "(one-off, not this script) found why it is not the card: a CPU-trained TIGER checkpoint tested on the card in "
    "fp32 gave exactly the CPU's metrics on 2,048 test users (Recall@10 .00977, NDCG@10 .00445, every metric "
    "equal), so generation is the same there; and the paper-size model diverges in training at this rate: "
    "training loss was 2.03-2.18 over steps 224-824 and rose to 2.55-2.63 by step 2,024, validation NDCG@10 (2,048 "
    "users) .0092 -> .0096 -> .0051 -> .0002 over epochs 0-3 at lr 0.01 (warm-up 1,500) and .0060 -> .0050 -> "
    ".0003 -> 0 at lr 0.005 (warm-up 300). The CPU's 2+2-layer collab config stayed stable at lr 0.005 for 5,139 "
    "steps (benchmarks/results/tiger_quality.md); constant rates of 5e-4 to 2e-3 learned (benchmarks/results/"
    "gpu_sweep.md), and the config now holds lr 5e-4 on batches of 1,024. That call's commands: `recsys fit --config "
    "configs/tiger/amazon-beauty-gpu.yaml --model.init_args.model.init_args.semantic_ids IDS --trainer.max_epochs 30 "
    "--trainer.check_val_every_n_epoch 1 --trainer.limit_val_batches 2 --trainer.max_time 00:00:02:50 "
    "--model.init_args.lr 0.01 --model.init_args.warmup_steps 1500` (and `0.005` / `300`), the two side by side; "
    "`recsys test --config CONFIG --ckpt_path CKPT --trainer.limit_test_batches 8 --trainer.accelerator gpu` on a "
    "checkpoint from `recsys fit --config configs/tiger/amazon-beauty-collab.yaml --trainer.limit_train_batches 150 "
    "--trainer.max_epochs 1 --trainer.precision 32-true` on the CPU, tested the same way there.",
    "Speed rows: the same workers as benchmarks/train_speed.py (identical hyperparameters, the RecBole targets "
    "measured on the 2-core CPU), run one after another alone on the card. They show the card's speed, not the "
    "issue's goal, which compares both frameworks on the same machine. The packed bf16 variant is slower here "
    "than plain fp32 (it is the CPU's fastest); which of packing and bf16 costs the time there was not measured.",
]


def render(data: dict[str, Any]) -> str:
    jobs = data["jobs"]
    device = jobs.get("device", {})
    lines = [
        "# GPU check", "",
        f"Card: {device.get('device', 'none')} (capability {device.get('capability', '-')}, "
        f"{device.get('memory_gib', '-')} GiB, CUDA {device.get('cuda', '-')}); host {data['machine']['cpu']}, "
        f"{data['machine']['cores']} cores. Versions: {', '.join(f'{k} {v}' for k, v in data['versions'].items())}.", "",
        f"Command: `python {data['command']}`", "",
        "| check | ok | seconds | result |", "|---|---|---|---|",
    ]  # fmt: skip
    for name in ("device", "bf16"):
        if name in jobs:
            shown = {k: v for k, v in jobs[name].items() if k not in ("ok", "seconds")}
            lines.append(f"| {name} | {jobs[name].get('ok')} | {jobs[name].get('seconds')} | "
                         f"{json.dumps(shown).replace('|', '/')} |")
    fits = {name: r for name, r in jobs.items() if name.startswith("fit_")}
    if fits:
        lines += ["", "| fit job | finished | test Recall@10 | test NDCG@10 | protocol | best val NDCG@10 (epoch, from 1) | "
                  "last validated epoch | wall s (fit + test) | command |", "|---|---|---|---|---|---|---|---|---|"]
        for name, r in fits.items():
            if not r.get("test"):
                lines.append(f"| {name} | {r.get('ok')} | | | {r.get('error', '')} | | | {r.get('wall_s')} | "
                             f"`{r.get('command', '')}` |")
                continue
            curve = r.get("val_ndcg@10_by_epoch") or [[None, float("nan")]]
            best = max(curve, key=lambda point: point[1])
            extra = f"; retested without DDP: {r['retest_without_ddp'].get('ndcg@10')}" if "retest_without_ddp" in r else ""
            lines.append(
                f"| {name} | {r.get('ok')} | {r['test']['recall@10']:.4f} | {r['test']['ndcg@10']:.4f}{extra} | "
                f"{r['protocol']} | {best[1]:.4f} ({best[0] + 1 if best[0] is not None else '-'}) | "
                f"{curve[-1][0] + 1 if curve[-1][0] is not None else '-'} | "
                f"{r['wall_s']} | `{r['command']}` |")
    speed = jobs.get("speed", {}).get("rows", [])
    if speed:
        lines += ["", "Time to RecBole's best validation NDCG@10 (the CPU benchmark's target), recsys on the card "
                  "(train_speed.py workers, alone on the card, 4 CPU threads):", "",
                  "| dataset | model | precision | packed | target | reached (best) | seconds (epochs) | "
                  "train s/epoch | valid s/epoch | targets/s | training GFLOP/s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in speed:
            if "error" in r:
                lines.append(f"| {r['dataset']} | {r['model']} | {r['precision']} | {r['packed']} | "
                             f"{r['target_ndcg@10']:.4f} | error: {r['error']} | | | | | |")
                continue
            lines.append(
                f"| {r['dataset']} | {r['model']} | {r['precision']} | {r['packed']} | {r['target_ndcg@10']:.4f} | "
                f"{r['reached']} ({r['best_valid_ndcg@10']:.4f}) | {r['time_to_target_s'] or float('nan'):.1f} "
                f"({r['epochs_to_target']}) | {r['train_s_per_epoch']:.2f} | {r['valid_s_per_epoch']:.2f} | "
                f"{r['targets_per_s']:,.0f} | {r.get('train_gflops_per_s') or float('nan'):.0f} |")
    lines += ["", "Notes:", "", *(f"- {note}" for note in NOTES)]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = card_parser(__doc__, "gpu_check")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for the whole check (the fit jobs get what is left)")
    parser.add_argument("--speed-cap", type=float, default=60.0, help="seconds of training per speed run")
    parser.add_argument("--threads", type=int, default=4, help="torch threads of each fit job")
    parser.add_argument("--tiger-ids", type=Path, help="SemanticIds.save file for TIGER (no TIGER job without it)")
    parser.add_argument("--tiger-epochs", type=int, help="TIGER's max_epochs (default: the config's)")
    parser.add_argument("--tiger-warmup", type=int, help="TIGER's warm-up steps (default: the config's)")
    parser.add_argument("--skip", default="", help="comma-separated jobs to leave out: device, bf16, speed, fit")
    parser.add_argument("--quick", action="store_true", help="tiny caps: a rehearsal of the plumbing")
    args = parser.parse_args()
    if args.render_only:
        rerender(args.out, "gpu_check", render)
        return 0
    started = time.perf_counter()
    for folder in (args.logs, args.work):
        folder.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    report = Report(args.out, "gpu_check", render, accelerator=args.accelerator)
    if "device" not in skip and not guarded(report, "device", job_device, args.accelerator)["ok"]:
        log("no usable accelerator: stopping")
        return 1
    if "bf16" not in skip:
        guarded(report, "bf16", job_bf16, args.prepared, args.accelerator)
    if "speed" not in skip:
        runs = SPEED_RUNS[:1] if args.quick else SPEED_RUNS
        guarded(report, "speed", job_speed, args.prepared, args.accelerator, args.logs, args.work,
                5.0 if args.quick else args.speed_cap, runs)
    if "fit" not in skip:
        fit_jobs(args, report, args.budget - (time.perf_counter() - started))
    log(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
