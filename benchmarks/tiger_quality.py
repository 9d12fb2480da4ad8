"""TIGER on Amazon Beauty: quality beside the published TIGER row and our SASRec, and inference latency.

What runs is what a user types: `recsys fit --config configs/tiger/amazon-beauty.yaml` (CPU-sized model; the
paper-sized one is configs/tiger/amazon-beauty-gpu.yaml) under a wall-clock cap, then `recsys test` of the best
checkpoint on every test user. Protocol: leave-one-out by time, full ranking over all 12,101 items (beam
search constrained to real semantic IDs), seen items kept, Recall@5/10 and NDCG@5/10, the protocol of TIGER's
Table 1. Latency: the best checkpoint rebuilt from the file alone (weights_only), top-10 through the
Evaluator's generated path with beam width 20 and 30, per user in batches of 256 and one user at a time,
beside SASRec's full-ranking top-10 (faiss, exact) through the same Evaluator; one torch thread.

    python benchmarks/tiger_quality.py --max-minutes 35 --epochs 3      # ~1 h on a busy 2-core CPU
    python benchmarks/tiger_quality.py --skip-fit                       # re-test and re-time the last run
    python benchmarks/tiger_quality.py --skip-test                      # re-time only

A run the time cap stopped while validation still rose can go on from its last checkpoint to a larger total cap
(`--resume`; the cap counts the time already trained). Name the folder with --work and give a new --label, so the
row of the shorter run stays in the results beside the longer one:

    python benchmarks/tiger_quality.py --work benchmarks/.work/tiger-quality/<run> --label <new> --resume \
        --max-minutes 190 --epochs 60 --extra <the run's --extra>

Sports and Toys (`--dataset amazon-sports|amazon-toys`) run Beauty's Adafactor recipe on their data by default
(configs/tiger/amazon-{sports,toys}-adafactor.yaml) and keep their own table:

    python benchmarks/tiger_quality.py --dataset amazon-toys --max-minutes 85 --epochs 60

Results: benchmarks/results/tiger_quality.{md,json} (Beauty), tiger_quality_<dataset>.{md,json} (the others). Our
SASRec is read from benchmarks/results/quality.json (benchmarks/quality.py) when it holds a run on the dataset.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, cpu_name, max_time, versions, write_text_atomic

RESULTS = REPO / "benchmarks" / "results"
# Per dataset: its title, the config run by default, TIGER's published row (Table 1; ../shared/BENCHMARKS.md holds
# @5 for Beauty only) and SASRec as the TIGER paper reports it.
DATASETS: dict[str, dict[str, object]] = {
    "amazon-beauty": {
        "title": "Amazon Beauty", "config": "configs/tiger/amazon-beauty.yaml",
        "tiger": {"recall@5": 0.0454, "ndcg@5": 0.0321, "recall@10": 0.0648, "ndcg@10": 0.0384},
        "sasrec": {"recall@10": 0.0605, "ndcg@10": 0.0318}},
    "amazon-sports": {
        "title": "Amazon Sports and Outdoors", "config": "configs/tiger/amazon-sports-adafactor.yaml",
        "tiger": {"recall@10": 0.0400, "ndcg@10": 0.0225}, "sasrec": {"recall@10": 0.0350, "ndcg@10": 0.0192}},
    "amazon-toys": {
        "title": "Amazon Toys and Games", "config": "configs/tiger/amazon-toys-adafactor.yaml",
        "tiger": {"recall@10": 0.0712, "ndcg@10": 0.0432}, "sasrec": {"recall@10": 0.0675, "ndcg@10": 0.0374}},
}
KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")


def _env() -> dict[str, str]:
    # One intra-op thread: small models on a shared 2-core machine run several times faster than with two.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _recsys(args: list[str], log: Path) -> float:
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run([sys.executable, "-m", "recsys.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                              cwd=REPO, env=_env())
    if proc.returncode != 0:
        raise SystemExit(f"recsys {args[0]} failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - started


def results_file(dataset: str, suffix: str) -> Path:
    """benchmarks/results/tiger_quality.{json,md} for Beauty (the first dataset), tiger_quality_<dataset>.* else."""
    return RESULTS / (f"tiger_quality.{suffix}" if dataset == "amazon-beauty" else f"tiger_quality_{dataset}.{suffix}")


def ensure_data(path: Path, dataset: str) -> Path:
    if (path / "meta.json").is_file():
        return path
    raw = os.environ.get("RECSYS_DATA")
    if not raw:
        raise SystemExit(f"{path} is not a prepared folder; prepare it or set RECSYS_DATA to the raw datasets")
    _recsys(["prep", dataset, "--out", str(path)], path.with_suffix(".prep.log"))
    return path


def epochs_from_logs(run: Path) -> list[dict[str, float]]:
    """Per-epoch validation NDCG@10 and the step reached, from the CSV logger."""
    rows: list[dict[str, float]] = []
    for file in sorted(run.glob("logs/version_*/metrics.csv")):
        with file.open() as fh:
            for row in csv.DictReader(fh):
                if row.get("val/ndcg@10"):
                    rows.append({"epoch": int(row["epoch"]), "step": int(row["step"]),
                                 "val_ndcg@10": round(float(row["val/ndcg@10"]), 5),
                                 "val_recall@10": round(float(row.get("val/recall@10") or "nan"), 5)})
    return rows


def _step_of(ckpt: Path) -> int:
    from recsys.scoring.checkpoint import read_checkpoint

    return int(read_checkpoint(ckpt).get("global_step", -1))


def _val_ndcg(root: Path) -> list[float]:
    return [float(r["val/ndcg@10"]) for f in sorted(root.glob("logs/version_*/metrics.csv"))
            for r in csv.DictReader(f.open()) if r.get("val/ndcg@10")]


def _validated(ckpt: Path, common: list[str], work: Path, name: str) -> float:
    """Validation NDCG@10 of a checkpoint on the users training validated on (run once, then read back)."""
    root = work / name
    if not root.exists():
        _recsys(["validate", *common, "--trainer.default_root_dir", str(root), "--ckpt_path", str(ckpt)],
                work / f"{name}.log")
    return (_val_ndcg(root) or [float("-inf")])[-1]


def select_checkpoint(run: Path, common: list[str], work: Path, average: bool = False) -> tuple[Path, dict[str, object]]:
    """The best checkpoint by validation NDCG@10; when the time cap stopped training mid-epoch, last.ckpt holds
    steps no validation has seen, so it is validated on the same users and kept if it scores higher. With
    `average`, the mean of best and last (`recsys average`) is a third candidate, validated the same way."""
    best = sorted((run / "checkpoints").glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not best:
        raise SystemExit(f"no best-*.ckpt under {run / 'checkpoints'}")
    chosen, info = best[-1], {"best": best[-1].name, "best_val_ndcg@10": max(_val_ndcg(run), default=float("nan"))}
    last = run / "checkpoints" / "last.ckpt"
    if last.is_file() and _step_of(last) > _step_of(chosen):
        score = _validated(last, common, work, "validate-last")
        info.update({"last_step": _step_of(last), "last_val_ndcg@10": score})
        if score > float(info["best_val_ndcg@10"]):
            chosen = last
        if average:
            from recsys.scoring.average import average_checkpoints

            mean = average_checkpoints([best[-1], last], work / "mean-best-last.ckpt")
            info["mean_val_ndcg@10"] = _validated(mean, common, work, "validate-mean")
            if info["mean_val_ndcg@10"] > max(score, float(info["best_val_ndcg@10"])):
                chosen = mean
    info["chosen"] = chosen.name
    info["chosen_step"] = _step_of(chosen)
    return chosen, info


def latency(ckpt: Path, data: Path, n_batch_users: int, n_single: int) -> dict[str, dict[str, float]]:
    """ms per user for top-10: TIGER (beam 20 and 30) and SASRec, batched (256 users) and one user at a time."""
    import torch

    torch.set_num_threads(1)
    from recsys.data import SequenceDataModule
    from recsys.data.collate import EvalCollator
    from recsys.eval import Evaluator
    from recsys.models import SASRec
    from recsys.scoring.checkpoint import load_model

    dm = SequenceDataModule(str(data), max_len=20)
    split = dm.eval_split("test")
    tiger = load_model(ckpt).model.eval()
    # SASRec as configs/sasrec/amazon-beauty.yaml builds it; latency does not depend on its weights.
    sasrec = SASRec(dm.n_items, hidden_size=64, n_layers=2, n_heads=2, max_len=50).eval()
    out: dict[str, dict[str, float]] = {}

    def timed(model: torch.nn.Module, collate: EvalCollator, name: str) -> None:
        evaluator = Evaluator(dm.n_items, ks=[10])
        evaluator.prepare(model, split)  # once per pass (faiss index for SASRec), not per user
        rows = list(range(n_batch_users))
        evaluator.rank_batch(model, collate(rows[:8]))  # warm-up
        started = time.perf_counter()
        for start in range(0, n_batch_users, 256):
            evaluator.rank_batch(model, collate(rows[start:start + 256]))
        batched = (time.perf_counter() - started) / n_batch_users * 1e3
        singles = []
        for row in range(n_single):
            started = time.perf_counter()
            evaluator.rank_batch(model, collate([row]))
            singles.append((time.perf_counter() - started) * 1e3)
        singles.sort()
        out[name] = {"ms_per_user_batch256": round(batched, 2), "ms_single_user_median": round(singles[len(singles) // 2], 2),
                     "ms_single_user_p90": round(singles[int(len(singles) * 0.9)], 2)}
        print(name, out[name], flush=True)

    def timed_direct(model: torch.nn.Module, collate: EvalCollator, name: str) -> None:
        """SASRec without the Evaluator: encode, one matmul against the item table, top-10 (torch)."""
        table = model.item_embeddings()

        def top10(rows: list[int]) -> torch.Tensor:
            scores = model.encode(collate(rows)) @ table.T
            scores[:, 0] = float("-inf")
            return scores.topk(10, dim=1).indices

        rows = list(range(n_batch_users))
        top10(rows[:8])
        started = time.perf_counter()
        for start in range(0, n_batch_users, 256):
            top10(rows[start:start + 256])
        batched = (time.perf_counter() - started) / n_batch_users * 1e3
        singles = []
        for row in range(n_single):
            started = time.perf_counter()
            top10([row])
            singles.append((time.perf_counter() - started) * 1e3)
        singles.sort()
        out[name] = {"ms_per_user_batch256": round(batched, 2), "ms_single_user_median": round(singles[len(singles) // 2], 2),
                     "ms_single_user_p90": round(singles[int(len(singles) * 0.9)], 2)}
        print(name, out[name], flush=True)

    with torch.inference_mode():
        for width in (20, 30):
            tiger.beam_width = width
            timed(tiger, EvalCollator(split, 20), f"TIGER beam {width}")
        timed(sasrec, EvalCollator(split, 50), "SASRec (Evaluator: full ranking, faiss exact)")
        timed_direct(sasrec, EvalCollator(split, 50), "SASRec (encode + torch matmul + top-10)")
    return out


def popularity_row(data: Path) -> dict[str, float]:
    """The popularity baseline under the same protocol (every test user), as a floor."""
    from recsys.data import SequenceDataModule
    from recsys.eval import Evaluator, PopularityModel

    dm = SequenceDataModule(str(data), max_len=20, eval_batch_size=4096)
    result = Evaluator(dm.n_items, ks=[5, 10]).evaluate(
        PopularityModel(dm.item_popularity()), dm.test_dataloader(), dm.eval_split("test"))
    return {k: round(v, 5) for k, v in result.metrics.items() if k.split("@")[0] in ("recall", "ndcg")}


def our_sasrec(dataset: str, seen_excluded: bool | None = None) -> dict | None:
    """Our best SASRec test run on the dataset by NDCG@10 in benchmarks/results/quality.json (None if none), under
    either protocol or, with `seen_excluded`, only under that one (its label need not say which)."""
    store = RESULTS / "quality.json"
    if not store.is_file():
        return None
    runs = json.loads(store.read_text())
    runs = runs if isinstance(runs, list) else list(runs.values())
    found = [r for r in runs if isinstance(r, dict) and r.get("model") == "sasrec"
             and r.get("dataset") == dataset and r.get("metrics")
             and (seen_excluded is None or ("seen items excluded" in r.get("protocol", "")) == seen_excluded)]
    return max(found, key=lambda r: r["metrics"]["ndcg@10"]) if found else None


def environment() -> dict[str, object]:
    import torch

    packages = versions("torch", "transformers", "pytorch-lightning", "faiss-cpu", "numpy", "polars")
    return {"python": packages.pop("python"), "packages": packages, "torch_threads": 1,
            "machine": f"{platform.system()} {platform.machine()}, {cpu_name()}, {os.cpu_count()} CPUs",
            "load_average_1m": round(os.getloadavg()[0], 2), "torch_cuda": torch.cuda.is_available()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="amazon-beauty",
                        help="whose published row, SASRec run and results file (tiger_quality_<dataset>.md unless "
                             "Beauty) the run joins")
    parser.add_argument("--data", type=Path, help="the prepared folder (default: prepared/<dataset>)")
    parser.add_argument("--config", type=Path,
                        help="the TIGER config to fit and test (default: the dataset's, e.g. "
                             "configs/tiger/amazon-beauty.yaml)")
    parser.add_argument("--label", default="", help="names a variant of the config (e.g. more epochs): kept as its own row")
    parser.add_argument("--work", type=Path,
                        help="run folder (default: benchmarks/.work/tiger-quality/<config name>[-<label>])")
    parser.add_argument("--max-minutes", type=int, default=35, help="wall-clock cap on training (incl. validation)")
    parser.add_argument("--epochs", type=int, default=3, help="max_epochs (the cosine schedule spans them)")
    parser.add_argument("--skip-fit", action="store_true", help="reuse the last run under --work")
    parser.add_argument("--resume", action="store_true",
                        help="go on training the run under --work from its last.ckpt until --max-minutes in all (the "
                             "time already trained counts) or --epochs; give the run's --extra again")
    parser.add_argument("--average", action="store_true",
                        help="also validate the mean of the best and last checkpoints (recsys average) and test it "
                             "if it validates higher than both")
    parser.add_argument("--skip-test", action="store_true", help="reuse the last test under --work (implies --skip-fit)")
    parser.add_argument("--latency-users", type=int, default=512)
    parser.add_argument("--latency-single", type=int, default=50)
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="arguments added to every recsys call of the run (fit, validate, test); name the variant with --label")
    parser.add_argument("--report-only", action="store_true", help="rewrite the .md from the .json")
    parser.add_argument("--retest", type=Path, metavar="CKPT",
                        help="only `recsys test` a checkpoint trained elsewhere (a GPU run's) with --config and "
                             "--extra, on this CPU in fp32; kept as its own row under --label")
    parser.add_argument("--trained-on", default="an H200",
                        help="where the --retest checkpoint was trained, for its row (default: an H200)")
    args = parser.parse_args()
    args.data = args.data or REPO / "prepared" / args.dataset
    args.config = args.config or REPO / str(DATASETS[args.dataset]["config"])
    if args.report_only:
        saved = stored(results_file(args.dataset, "json"))
        write_text_atomic(results_file(args.dataset, "md"), report(saved["runs"], saved["retests"]))
        return
    if args.retest:
        retest(args)
        return

    args.config = args.config.resolve()
    name = args.config.stem + (f"-{args.label}" if args.label else "")
    args.work = args.work or REPO / "benchmarks" / ".work" / "tiger-quality" / name
    data = ensure_data(args.data, args.dataset)
    run = args.work / "run"
    common = ["--config", str(args.config), "--data.path", str(data), "--trainer.enable_progress_bar", "false",
              *args.extra]
    record: dict[str, object] = {}
    load_start = os.getloadavg()[0]
    args.skip_fit = args.skip_fit or args.skip_test
    command = "python benchmarks/tiger_quality.py " + " ".join(sys.argv[1:])
    fit = ["fit", *common, "--trainer.default_root_dir", str(run), "--trainer.max_epochs", str(args.epochs),
           "--trainer.max_time", max_time(args.max_minutes), "--test_after_fit", "false"]
    if args.resume and not args.skip_fit:
        resume_fit(args.work, fit, args.max_minutes, args.epochs, command)
    elif not args.skip_fit:
        if run.exists():
            shutil.rmtree(run)
        fit_seconds = _recsys(fit, args.work / "fit.log")
        (args.work / "fit_seconds.json").write_text(json.dumps({
            "fit_seconds": fit_seconds, "cap_minutes": args.max_minutes, "max_epochs": args.epochs,
            "load_1m_start": load_start, "command": command}))
    fit_info = json.loads((args.work / "fit_seconds.json").read_text())
    ckpt, selection = select_checkpoint(run, common, args.work, args.average)
    test_root = args.work / "test"
    if not args.skip_test:
        if test_root.exists():
            shutil.rmtree(test_root)
        seconds = _recsys(["test", *common, "--trainer.default_root_dir", str(test_root), "--ckpt_path", str(ckpt)],
                          args.work / "test.log")
        (args.work / "test_seconds.json").write_text(json.dumps({"test_seconds": seconds}))
    test_seconds = json.loads((args.work / "test_seconds.json").read_text())["test_seconds"]
    metrics_file = max(test_root.rglob("test_metrics.json"), key=lambda p: p.stat().st_mtime)
    test = json.loads(metrics_file.read_text())
    timing = latency(ckpt, data, args.latency_users, args.latency_single)
    epochs = epochs_from_logs(run)
    popular = popularity_row(data)
    record = {
        "dataset": args.dataset, "config": str(args.config.relative_to(REPO)), "label": args.label, "protocol": test["protocol"],
        "n_users": test["n_users"], "metrics": {k: round(test["metrics"][k], 5) for k in test["metrics"]},
        "popularity": popular, "published_tiger": DATASETS[args.dataset]["tiger"],
        "published_sasrec": DATASETS[args.dataset]["sasrec"],
        "training": {"seconds": round(fit_info["fit_seconds"], 1), "cap_minutes": fit_info["cap_minutes"],
                     "max_epochs": fit_info["max_epochs"], "validations": epochs,
                     "checkpoint": selection},
        "test_seconds": round(test_seconds, 1), "latency": timing, "environment": environment(),
        "command": fit_info.get("command", "python benchmarks/tiger_quality.py"),
        "report_command": "python benchmarks/tiger_quality.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    store = results_file(args.dataset, "json")
    saved = stored(store)
    saved["runs"] = [r for r in saved["runs"] if _name(r) != _name(record)] + [record]
    _store(store, saved)
    print(report(saved["runs"], saved["retests"]))


def resume_fit(work: Path, fit: list[str], cap_minutes: int, max_epochs: int, command: str) -> None:
    """Continue the fit under `work` from run/checkpoints/last.ckpt in place (Lightning restores the optimiser,
    the weight average, early stopping, the best checkpoint and the time already trained, so `cap_minutes` is the
    total), and add this leg to fit_seconds.json: seconds summed, commands joined by `&&`."""
    last = work / "run" / "checkpoints" / "last.ckpt"
    record_file = work / "fit_seconds.json"
    if not last.is_file() or not record_file.is_file():
        raise SystemExit(f"--resume: {work} holds no finished run (run/checkpoints/last.ckpt and fit_seconds.json)")
    record = json.loads(record_file.read_text())
    if cap_minutes <= record["cap_minutes"]:
        raise SystemExit(f"--resume: --max-minutes {cap_minutes} is the total cap; the run already had "
                         f"{record['cap_minutes']}")
    legs = sum(1 for _ in work.glob("fit-resume-*.log")) + 1
    seconds = _recsys([*fit, "--ckpt_path", str(last)], work / f"fit-resume-{legs}.log")
    for stale in ("validate-last", "validate-mean"):  # validations of the old last checkpoint
        if (work / stale).exists():
            shutil.rmtree(work / stale)
    record.update({"fit_seconds": record["fit_seconds"] + seconds, "cap_minutes": cap_minutes,
                   "max_epochs": max_epochs,
                   "command": f"{record['command']} && {command}"})
    record_file.write_text(json.dumps(record))


def retest(args: argparse.Namespace) -> None:
    """`recsys test` of a checkpoint made elsewhere, on this CPU in fp32 (the card trained in bf16), e.g. under
    another protocol (`--extra --model.init_args.exclude_seen true`) or beam width; one row per --label."""
    ckpt = args.retest.resolve()
    if not ckpt.is_file():
        raise SystemExit(f"--retest {args.retest}: no such checkpoint")
    label = args.label or ckpt.stem
    folder = f"retest-{label}" if args.dataset == "amazon-beauty" else f"retest-{args.dataset}-{label}"
    root = REPO / "benchmarks" / ".work" / "tiger-quality" / folder  # labels repeat across datasets
    if root.exists():
        shutil.rmtree(root)
    data = ensure_data(args.data, args.dataset)
    seconds = _recsys(["test", "--config", str(args.config.resolve()), "--data.path", str(data), "--ckpt_path",
                       str(ckpt), "--trainer.accelerator", "cpu", "--trainer.precision", "32-true",
                       "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root / "test"),
                       *args.extra], root / "test.log")  # fmt: skip
    test = json.loads(max((root / "test").rglob("test_metrics.json"), key=lambda p: p.stat().st_mtime).read_text())
    record = {"label": label, "checkpoint": ckpt.name, "protocol": test["protocol"], "n_users": test["n_users"],
              "metrics": {k: round(test["metrics"][k], 5) for k in test["metrics"]}, "test_seconds": round(seconds, 1),
              "threads": os.environ.get("OMP_NUM_THREADS", ""), "trained_on": args.trained_on,
              "command": "python benchmarks/tiger_quality.py " + " ".join(sys.argv[1:])}  # fmt: skip
    store = results_file(args.dataset, "json")
    saved = stored(store)
    saved["retests"] = [r for r in saved["retests"] if r["label"] != label] + [record]
    _store(store, saved)
    print(json.dumps(record))


def _store(store: Path, saved: dict[str, list[dict]]) -> None:
    """Write the dataset's tiger_quality json (what `stored` read, updated) and re-render its markdown beside it."""
    write_text_atomic(store, json.dumps(saved, indent=2) + "\n")
    write_text_atomic(store.with_suffix(".md"), report(saved["runs"], saved["retests"]))


def stored(store: Path) -> dict[str, list[dict]]:
    """tiger_quality.json as {"runs": one per config, "retests": one per label} (an older file held a single run
    and no retests)."""
    saved = json.loads(store.read_text()) if store.is_file() else {}
    runs = saved["runs"] if "runs" in saved else [saved] if saved else []
    return {**saved, "runs": runs, "retests": saved.get("retests", [])}


NOTES = [
    "- The paper trains its 4 + 4-layer model for 200k steps of 256 (about 390 epochs of the 131,413 training "
    "pairs); these runs are a 2 + 2-layer model of width 128 for the epochs that fit a wall-clock cap on a shared "
    "2-core CPU (`paper-size`: the paper's 4 + 4 layers, d_ff 1024, 6 heads of 64 through --extra, stopped by its "
    "30-minute cap in its second epoch, below the small model at that budget). More epochs of the small model stopped helping: with collaborative IDs, validation NDCG@10 is "
    "flat at ~.0115 from epoch 5 and 10 epochs test no better than 5.",
    "- The H200 rows (benchmarks/results/gpu_sweep.md, 2026-11-30) are the paper's size with the collaborative IDs "
    "at constant learning rates, several runs side by side on one card, each stopped by a time cap: batches of "
    "1,024 at lr 5e-4 reached Recall@10 .0607 in 10 epochs and .0704 (NDCG@10 .0350) in 24, above the paper's "
    "Recall@10 and below its Recall@5, NDCG@5 and NDCG@10; validation was still rising. That recipe is now "
    "`configs/tiger/amazon-beauty-gpu.yaml`. The `_cos` rows (2026-12-04) decay the rate to zero along a cosine: "
    "batches of 2,048 at lr 1e-3 gave .0413 / .0257 / .0705 / .0351 (Recall@5, NDCG@5, Recall@10, NDCG@10) when "
    "the cap stopped the decay at 1,251 of 1,560 steps, and .0423 / .0258 / .0705 / .0349 when the same recipe "
    "ran alone and finished it (`_cos_alone`: 24 epochs, 205 s on the card with start-up and test). Every H200 "
    "run of 20 epochs or more lands at NDCG@10 .0346-.0351 and NDCG@5 .0252-.0264: a plateau of this model and "
    "these IDs, 9-10% and 18-22% below the paper, that neither more steps nor the decay moves. "
    "Before that (benchmarks/results/gpu_check.md) the paper-size model, with the warm-up cut to 1,500 steps at "
    "lr 0.01 or 300 at lr 0.005 and the collaborative IDs, diverged after about 1,000 steps (training loss 2.03-2.18 over steps 224-824, 2.55-2.63 at step "
    "2,024; validation NDCG@10 on 2,048 users from .0092-.0096 at epochs 0-1 to .0002 at epoch 3 at lr 0.01, "
    "from .0060 to 0 at lr 0.005). Generation was not the cause: a CPU-trained checkpoint "
    "tested on the card in fp32 gave the CPU's metrics exactly (2,048 test users, Recall@10 .00977, NDCG@10 "
    ".00445).",
    "- The small CPU model gains from the same optimisation: `amazon-beauty-collab (b1024-lr5e-4)` (constant lr "
    "5e-4 after 100 warm-up steps, batches of 1,024, validation every 2 epochs, patience 5; now "
    "`configs/tiger/amazon-beauty-collab-b1024.yaml`) was still improving when its 90-minute cap stopped it in "
    "epoch 20 (best validation NDCG@10 .0208 at epoch 18, against .0119 at best with lr 0.005 and cosine decay) "
    "and tests at Recall@10 .0685 / NDCG@10 .0331, about twice `amazon-beauty-collab`'s .0344 / .0167: above the "
    "paper's Recall@10 (.0648), below its Recall@5, NDCG@5 and NDCG@10 (.0386, .0234, .0331 against .0454, .0321, "
    ".0384). A wider beam hardly moves it: the same checkpoint tested with `--model.init_args.model.init_args."
    "beam_width 30` and `50` gave .0386 / .0235 / .0686 / .0332 and .0388 / .0236 / .0688 / .0333 (Recall@5, "
    "NDCG@5, Recall@10, NDCG@10).",
    "- Ordering the collision digit does not close the gap: `amazon-beauty-collab (b1024-lr5e-4-popdigit)` is the "
    "row above with `collision_order: popularity` (digit 0 of each same-code group goes to the item bought most in "
    "the training split, so the last token follows one rule instead of item order), same 90-minute cap on 1 thread "
    "(2026-12-02, beside one other 1-thread job). Validation NDCG@10 tracked the item-order run within noise (.0175 "
    "against .0174 at step 1,289, .0195 against .0208 at its best, both at step 2,322), and the test is .0389 / "
    ".0240 / .0679 / .0333 against .0386 / .0234 / .0685 / .0331 (Recall@5, NDCG@5, Recall@10, NDCG@10): the same "
    "row. The first attempt at this run stopped on its first step: since the fused AdamW (8e4ef1a) Lightning's "
    "mixed-precision plugin refused gradient clipping under bf16-mixed, which every TIGER config combines; the "
    "optimiser is no longer fused there (recsys/tasks/optim.py `can_fuse`, tested with a bf16-mixed fit that clips).",
    "- A longer cap does not move it on this machine: `amazon-beauty-collab-b1024 (b1024-125min)` is the shipped "
    "`configs/tiger/amazon-beauty-collab-b1024.yaml` (the `b1024-lr5e-4` recipe) under a 125-minute cap (1 thread, "
    "2026-12-03, beside one or two other 1-thread jobs, so about 22 steps a minute against 27.6 before). Its "
    "validation repeats the 90-minute run's to four decimals through step 2,321 (the seeded run is deterministic), "
    "then gives .0196 at step 2,579 and .0190 at 2,763, where the cap stopped it in epoch 22; the best checkpoint "
    "is again step 2,322 and the test repeats .0386 / .0234 / .0685 / .0331. Validation has stayed between "
    ".0166 and .0209 since step 1,547, so more of the same training is not what closes the gap to the paper's NDCG "
    "(the H200 rows reached .0350 NDCG@10 with the paper-sized model).",
    "- The item texts of this Beauty version (S3-Rec) hold brand and categories only, no titles: 12,101 items "
    "have 3,103 distinct texts and up to 201 items share one text (benchmarks/results/semantic_ids.md). Items "
    "with one text get one code tuple, so the collision digit (201 values) is what tells them apart and the "
    "model must learn it from interactions alone; TIGER's IDs came from Sentence-T5 over title, price, brand and "
    "category.",
    "- `amazon-beauty-collab` cuts the IDs from the text embedding joined by a 64-d co-occurrence embedding of the "
    "training split (`collaborative_weight: 1.0`, recsys/semantic_ids/collaborative.py; validation and test targets "
    "never enter it). With the text alone, 86% of items share their text and so their first three codes, and the "
    "largest group (201 items) differs only in the arbitrary collision digit; with usage joined, items with one text "
    "get different codes by how they are bought, and the largest same-code group is ~35 items. This departs from "
    "the paper's text-only IDs (LETTER, CIKM 2024, argues for it); `amazon-beauty` keeps the paper's recipe. Same "
    "model, schedule and 5 epochs, the only difference the IDs: test Recall@10 .0344 against .0266 and NDCG@10 "
    ".0167 against .0129 (`amazon-beauty-collab` against `amazon-beauty (5ep)`), best validation NDCG@10 .0116 "
    "against .0080.",
    "- Rows `tested on this CPU` (2026-12-04): the H200 checkpoint of `tiger_b2048_lr1e-3_cos` (cosine decay to "
    "step 1,560 of 2,048, stopped at step 1,251 by its cap; the `_alone` run that finished the decay tested at the "
    "same level) brought back and tested with `python benchmarks/tiger_quality.py --config "
    "configs/tiger/amazon-beauty-gpu.yaml --retest CKPT --label L [--extra ...]` (fp32, 2 threads; the checkpoint "
    "names its semantic-ID file, gpu_carry/beauty-ids-collab.npz, which benchmarks/gpu_sweep.py --build-tiger-ids "
    "writes). `fp32`: .0411 / .0256 / .0704 / .0350, within .0002 of the card's bf16 test (.0413 / .0257 / "
    ".0705 / .0351). `beam40` "
    "(`--extra --model.init_args.model.init_args.beam_width 40`): .0413 / .0256 / .0707 / .0351, so 20 beams "
    "lose nothing in the top 10. `seen-excluded` (`--extra --model.init_args.exclude_seen true`: generate() asks for K plus "
    "the user's history length, and the user's own history items are dropped): .0508 / .0335 / .0794 / .0426, "
    "above the published row on all four. (The Evaluator used to ask a whole batch for K plus its longest full "
    "history, hundreds of beams for 1,024 users: the first try was killed for memory on this 24 GiB machine. It now "
    "asks groups of users with similar history lengths, and the test ran at the default batch in 5.7 minutes with "
    "a peak of about 5 GB; batches of 256 under the old rule had given the same figures at K = 5 and 10.) In these data a test target is never one of the user's history "
    "items, so the seen-kept ranking spends top places on items the user already has: "
    "`python benchmarks/seen_in_topk.py CKPT --data prepared/amazon-beauty --max-len 20` counts 1.007 history items "
    "per top 10, a history item first for 0.180 of the 22,363 test users (the item read last for only 0.030), and "
    "at least one in the top 10 for 0.608. The paper does not say whether its Table 1 drops history items; the like-for-like row is "
    "taken to be the seen-kept one, where NDCG@5, NDCG@10 and Recall@5 stay below it. Under the seen-excluded "
    "protocol our SASRec is further ahead (.0693 / .0489 / .0959 / .0574, the SASRec row above).",
    "- `adafactor` rows (2026-12-04): the optimiser of the paper's T5X setup, Adafactor at a relative step of "
    "0.01 that torch keeps to step 10,000 and then decays as 1/sqrt(step), no warm-up, no weight decay "
    "(`--model.init_args.optimizer adafactor`). On the 2+2-layer model of `amazon-beauty-collab-b1024` with the "
    "same 90-minute cap, it tested .0440 / .0272 / .0722 / .0363 against AdamW's .0386 / .0234 / .0685 / .0331, "
    "above every H200 AdamW run; configs/tiger/amazon-beauty-adafactor.yaml is that run. The paper-size model "
    "under it reached 4 epochs in the cap (.0332 / .0198 / .0595 / .0282), behind the small model at equal epochs "
    "on validation. Its checkpoint with seen items excluded (`--trained-on` names where a retested checkpoint "
    "trained): .0527 / .0350 / .0808 / .0440. `seen_in_topk.py` on it: 1.022 history items per top 10, one first "
    "for 0.180 of users, as on the H200 checkpoint (1.007, 0.180): the better optimiser did not stop it ranking "
    "items the user already has.",
    "- `collab-w2` and `collab-w4` rows (2026-12-04, side by side, one thread each, an 80-minute cap): "
    "configs/tiger/amazon-beauty-adafactor.yaml with `--model.init_args.model.init_args.collaborative_weight` 2 and "
    "4 instead of 1, so that the co-occurrence part of each item's embedding weighs more in its semantic ID. "
    "Neither helped: .0410 / .0262 / .0694 / .0353 (weight 2, checkpoint best-15-1958) and .0400 / .0242 / .0704 / "
    ".0340 (weight 4, best-9-1290), against weight 1's .0440 / .0272 / .0722 / .0363 (best-15-2064, 20 epochs in "
    "90 minutes). Best validation NDCG@10: .0214 (weight 2) and .0201 (weight 4) against weight 1's .0229.",
    "- `collab-w4-avg-best-last` (2026-12-04): `recsys average` of collab-w4's best-9-1290 and its last checkpoint "
    "(step 1959) tests .0422 / .0262 / .0712 / .0355 against the best checkpoint's .0400 / .0242 / .0704 / .0340, "
    "but it validated lower (.0192 against .0201), so `--average` would not have chosen it. collab-w2's last "
    "checkpoint is its best (step 1958), so there was nothing to average; the `adafactor-lr1e-2` run's checkpoints "
    "are no longer kept here. On Sports and Toys (tiger_quality_amazon-*.md) the mean validated higher and tested "
    "higher on all four metrics.",
    "- `ema999` and `ema999-nouser` rows (2026-12-04, side by side, one thread each, an 85-minute cap): "
    "configs/tiger/amazon-beauty-adafactor.yaml plus `--config configs/overlays/ema.yaml` (recsys.tasks.WeightEMA: "
    "validation, checkpoint selection and the test use an exponential moving average of the weights, decay 0.999 "
    "reached through a (1 + n) / (10 + n) ramp), the second also without the hashed user token "
    "(`--model.init_args.model.init_args.n_user_buckets 0`; GRID, arXiv 2507.22224, lists dropping TIGER's user "
    "tokens among its findings). The checkpoints keep the raw weights beside the average, and `recsys average --raw "
    "CKPT --out RAW` writes them alone, so the `-raw-weights` rows test the weights the average smooths at the same "
    "step. With the user token the average is worth little: best-11-1548 tests .0414 / .0255 / .0723 / .0354 and "
    "its raw weights .0420 / .0257 / .0706 / .0349; the last checkpoint (step 2,322, validated .0216 against the "
    "best's .0220) tests .0432 / .0274 / .0727 / .0369. Without it, the best checkpoint (best-19-2560, the run's "
    "last validation, NDCG@10 .0231) tests .0471 / .0300 / .0791 / .0403, its raw weights .0446 / .0283 / .0755 / "
    ".0382, and .0588 / .0392 / .0886 / .0488 with history items dropped. Against the paper's .0454 / .0321 / "
    ".0648 / .0384, that is above on Recall@5, Recall@10 and NDCG@10 with seen items kept; NDCG@5 is still "
    "7% below.",
    "- `ema999-nouser-190min` (2026-12-05, beside the Toys and Sports runs' second legs, one thread each): the "
    "`ema999-nouser` run carried on from its last checkpoint (`--resume`, a cap of 190 minutes in all; the run's "
    "folder now holds the longer run). The first leg ended in epoch 19, so the second began by finishing that "
    "epoch on a fresh shuffle of its last batches. Validation NDCG@10 rose to .0256 at epoch 29 and early "
    "stopping (5 validations without a better one) ended the run after epoch 39, at 170 minutes. best-29-3870 "
    "tests .0512 / .0327 / .0798 / .0419 with seen items kept, above the paper's .0454 / .0321 / .0648 / .0384 on "
    "all four; its raw weights at the same step .0477 / .0305 / .0763 / .0397; with history items dropped "
    ".0599 / .0405 / .0889 / .0498. The recipe as config files: configs/tiger/amazon-beauty-adafactor.yaml, "
    "configs/overlays/ema.yaml and configs/overlays/tiger-no-user-token.yaml.",
]

SHARED_NOTES = [
    "- Beam search is constrained to the prefix trie of real IDs, so every recommended id is an item; the "
    "Evaluator still counts a wasted slot if one were not.",
    "- Latency is the Evaluator's path (what `recsys test` and scoring run): encoder once per batch, cross-attention "
    "keys/values once per user, a self-attention cache per beam, 4 decoding steps. SASRec's row is a full-ranking "
    "top-10 over the item table with faiss, and the same top-10 as one torch matmul without the Evaluator (the "
    "Evaluator's faiss path is built for batches: one user at a time pays its worker hand-off); its model is "
    "untrained (latency does not depend on weights).",
]

OTHER_NOTES = [
    "- The config is configs/tiger/amazon-beauty-adafactor.yaml's recipe (2 + 2 layers of width 128, Adafactor at "
    "0.01, semantic IDs from MiniLM text joined by a co-occurrence embedding of the training split, batches of "
    "1,024), with only the data changed; nothing was tuned on this dataset.",
    "- This version's item texts are anonymous attribute tokens (`attributes: a1 a2 a3`: the S3-Rec release has no "
    "attribute names, titles or brands for Sports and Toys), so the text half of each item's vector says little and "
    "items with the same tokens differ only in their co-occurrence half.",
    "- ../shared/BENCHMARKS.md holds TIGER's Recall@10 and NDCG@10 for this dataset, not @5, so the published row "
    "leaves @5 blank.",
]

# What each dataset's run showed (2026-12-04: Sports and Toys side by side, one thread each, an 85-minute cap).
DATASET_NOTES = {
    "amazon-sports": [
        "- Its IDs (benchmarks/results/semantic_ids_collab_amazon-sports.md: `python benchmarks/semantic_ids_report.py "
        "--data prepared/amazon-sports --out benchmarks/results/semantic_ids_collab_amazon-sports --rqvae-epochs 0 "
        "--collaborative-weight 1`): the 18,357 items fall into 17,180 distinct 3-level tuples (10.4% share "
        "theirs) and the collision digit needs 51 codes. Cut from the text alone (semantic_ids_amazon-sports.md) "
        "the digit would need 227, the largest group of items sharing one text.",
        "- 14 epochs fit the cap. Validation NDCG@10 peaked at epoch 7 (.0286 on 2,048 users) and fell after it, so "
        "the tested checkpoint is best-7-1488: Recall@10 .0404 against the paper's .0400, NDCG@10 .0203 against "
        ".0225. With history items dropped (`--retest ... --extra --model.init_args.exclude_seen true`, the "
        "`seen-excluded` row) it is .0438 / .0231, above both published figures.",
        "- The `(mean)` row is the same run with `--skip-fit --average`: the mean of best-7-1488 and last (step 2465, "
        "`recsys average`) validated at .0287 against .0286 and .0267, so it was tested: .0252 / .0158 / .0422 / "
        ".0212, above the best checkpoint on all four; with history items dropped (`mean-seen-excluded`) .0294 / "
        ".0192 / .0456 / .0244.",
        "- `ema999-nouser-40min` (2026-12-05, beside the Toys run, one thread each, a 40-minute cap): Beauty's best "
        "recipe, `--extra --config configs/overlays/ema.yaml --model.init_args.model.init_args.n_user_buckets 0` "
        "(no user token, an EMA of the weights). Stopped in epoch 7 (step 1,336, where the cap's last validation "
        "gave .0272), it tests .0237 / .0151 / .0398 / .0202: the 85-minute run's best checkpoint in under half "
        "the time. Validation at equal steps: .0255 against .0242 at step 743, .0260 against .0260 at 1,115.",
        "- `ema999-nouser-85min` (2026-12-05, beside the Beauty run's second leg, one thread each): the same run "
        "carried on from its last checkpoint to an 85-minute cap in all (`--resume`; its folder now holds the "
        "longer run). Validation NDCG@10 peaked at epoch 9 (.0277) and stayed below it to epoch 15; best-9-1860 "
        "tests .0242 / .0154 / .0418 / .0210: Recall@10 above the paper's .0400, NDCG@10 below its .0225. With "
        "history items dropped (`ema999-nouser-85min-seen-excluded`) .0288 / .0186 / .0452 / .0239, above both.",
    ],
    "amazon-toys": [
        "- Its IDs (benchmarks/results/semantic_ids_collab_amazon-toys.md: `python benchmarks/semantic_ids_report.py "
        "--data prepared/amazon-toys --out benchmarks/results/semantic_ids_collab_amazon-toys --rqvae-epochs 0 "
        "--collaborative-weight 1`): the 11,924 items fall into 10,500 distinct 3-level tuples (17.8% share "
        "theirs) and the collision digit needs 19 codes. Cut from the text alone (semantic_ids_amazon-toys.md) the "
        "digit would need 543, the largest group of items sharing one text, more than the configs' 256 allow.",
        "- 22 epochs fit the cap; validation NDCG@10 was flat from epoch 9 (.0418) to 21 (.0422), best at 15 "
        "(.0431). The best checkpoint tests below the paper: Recall@10 .0654 and NDCG@10 .0325 against .0712 and "
        ".0432; with history items dropped .0720 / .0399, Recall@10 above the paper and NDCG@10 still below.",
        "- The `(mean)` row is the same run with `--skip-fit --average`: the mean of best-15-1712 and last (step 2306, "
        "`recsys average`) validated at .0437 against .0431 and .0422, so it was tested: .0402 / .0247 / .0666 / "
        ".0332, above the best checkpoint on all four and still below the paper; with history items dropped "
        "(`mean-seen-excluded`) .0492 / .0331 / .0740 / .0411.",
        "- `ema999-nouser-40min` (2026-12-05, beside the Sports run, one thread each, a 40-minute cap): Beauty's best "
        "recipe, `--extra --config configs/overlays/ema.yaml --model.init_args.model.init_args.n_user_buckets 0` "
        "(no user token, an EMA of the weights). In 12 epochs its best checkpoint (best-11-1244, validation .0439) "
        "tests .0428 / .0262 / .0682 / .0344, above the 85-minute run's best and mean on all four but still below "
        "the paper's .0712 / .0432.",
        "- `ema999-nouser-85min` (2026-12-05, beside the Beauty run's second leg, one thread each): the same run "
        "carried on from its last checkpoint to an 85-minute cap in all (`--resume`; its folder now holds the "
        "longer run). Validation NDCG@10 rose to .0467 at epoch 23, the last validation before the cap, and "
        "best-23-2568 tests .0450 / .0280 / .0719 / .0367: Recall@10 above the paper's .0712, NDCG@10 below its "
        ".0432. With history items dropped (`ema999-nouser-85min-seen-excluded`) .0542 / .0375 / .0796 / .0457, "
        "above both.",
        "- `ema999-nouser-115min` (2026-12-05, alone on the machine): carried on again to 115 minutes in all. "
        "Validation NDCG@10 rose at every validation of this leg, to .0486 at epoch 33 (the cap); best-33-3597 tests "
        ".0470 / .0294 / .0721 / .0375, above the 85-minute leg on all four, NDCG@10 still below the paper's .0432.",
    ],
}

def gpu_rows() -> dict[str, dict]:
    """The TIGER jobs of benchmarks/results/gpu_sweep.json that reached a test, with their batch size."""
    sweep = RESULTS / "gpu_sweep.json"
    if not sweep.is_file():
        return {}
    rows = {}
    for name, job in json.loads(sweep.read_text())["jobs"].items():
        if name.startswith("tiger_") and job.get("test"):
            words = job["command"].split()
            batch = int(words[words.index("--data.init_args.batch_size") + 1])
            rows[name] = {**job, "batch": batch}
    return rows


def _name(run: dict) -> str:
    """A run's row name: its config's name, and its --label if it has one."""
    return Path(run["config"]).stem + (f" ({run['label']})" if run.get("label") else "")


def _best_line(runs: list[dict], published: dict[str, float]) -> str:
    """One sentence for a reader who stops at the top: the fitted run with the highest test NDCG@10 (a summary of
    the table below, not a model selection) against the published row."""
    kept = [r for r in runs if "seen items kept" in r["protocol"]]
    if not kept:
        return "No fitted run below was tested with seen items kept."
    best = max(kept, key=lambda r: r["metrics"]["ndcg@10"])
    keys = [k for k in KEYS if k in published]
    above = [k for k in keys if best["metrics"][k] >= published[k]]
    return (f"Highest test NDCG@10 among the fitted runs below (seen items kept): `{_name(best)}`, "
            + " / ".join(f"{best['metrics'][k]:.4f}" for k in keys) + f" ({', '.join(keys)}) against the published "
            + " / ".join(f"{published[k]:.4f}" for k in keys) + f": at or above it on {len(above)} of {len(keys)}.")


def report(runs: list[dict], retests: list[dict] | None = None) -> str:
    """Markdown for every stored run (one per config): quality rows, validation curves, latency."""
    latest = runs[-1]
    dataset = latest.get("dataset", "amazon-beauty")
    beauty = dataset == "amazon-beauty"  # the GPU sweep and the notes below are Beauty's
    pub = latest["published_tiger"]
    lines = [f"# TIGER on {DATASETS[dataset]['title']}", ""]
    for r in runs:
        lines.append(f"- `{_name(r)}`: `{r['command']}`"
                     + (f"; latency and baselines re-measured by `{r['report_command']}`"
                        if r.get("report_command") and not r["command"].endswith(r["report_command"]) else ""))
    lines += [
        "",
        "Each command runs `recsys fit --config configs/tiger/<name>.yaml` with a wall-clock cap, then `recsys test` on "
        "the best checkpoint by validation NDCG@10, then the latency runs.",
        "",
        f"Protocol: {latest['protocol']} ({latest['n_users']:,} test users); TIGER's Table 1 is read as this "
        "protocol (the paper does not say whether history items are dropped; rows marked seen items excluded drop "
        "them).",
        "",
        _best_line(runs, pub),
        "",
        "| model | Recall@5 | NDCG@5 | Recall@10 | NDCG@10 | training |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        m, tr = r["metrics"], r["training"]
        epochs = max((v["epoch"] + 1 for v in tr["validations"]), default=0)  # validated every epoch or every few
        lines.append(f"| TIGER, ours: `{_name(r)}` ({epochs} epochs) | {m['recall@5']:.4f} | "
                     f"{m['ndcg@5']:.4f} | {m['recall@10']:.4f} | {m['ndcg@10']:.4f} | "
                     f"{tr['seconds'] / 60:.1f} min (cap {tr['cap_minutes']} min) |")
    for name, job in gpu_rows().items() if beauty else ():
        m = job["test"]
        size = "paper size" if "amazon-beauty-gpu" in job["command"] else "2 + 2 layers"
        lines.append(f"| TIGER, ours on an H200: `{name}` ({size}, benchmarks/results/gpu_sweep.md) | "
                     f"{m['recall@5']:.4f} | {m['ndcg@5']:.4f} | {m['recall@10']:.4f} | {m['ndcg@10']:.4f} | "
                     f"{job['steps']:,} steps of {job['batch']:,} |")
    for r in retests or []:
        m = r["metrics"]
        protocol = "seen items excluded" if "seen items excluded" in r["protocol"] else "seen items kept"
        where = r.get("trained_on", "an H200")  # the first retests were all of H200 checkpoints
        lines.append(f"| TIGER, ours on {where}, `{r['checkpoint']}` tested on this CPU: `{r['label']}` ({protocol}) | "
                     f"{m['recall@5']:.4f} | {m['ndcg@5']:.4f} | {m['recall@10']:.4f} | {m['ndcg@10']:.4f} | "
                     f"test {r['test_seconds'] / 60:.1f} min |")
    lines.append("| TIGER, published (Table 1) | " + " | ".join(f"{pub[k]:.4f}" if k in pub else "" for k in KEYS)
                 + " | 200k steps, TPU |")
    for excluded in (False, True):  # our best SASRec under each protocol, read from quality.json as it is now
        protocol = "seen items excluded" if excluded else "seen items kept"
        ours_sasrec = our_sasrec(dataset, excluded)
        if ours_sasrec is None:
            lines.append(f"| SASRec, ours ({protocol}) | not yet measured (benchmarks/results/quality.json has no "
                         f"{dataset} run) | | | | |")
            continue
        s, sec = ours_sasrec["metrics"], ours_sasrec.get("seconds")
        label = f", `{ours_sasrec['label']}`" if ours_sasrec.get("label") else ""
        lines.append(f"| SASRec, ours (best in benchmarks/results/quality.md{label}; {protocol}) | "
                     f"{s.get('recall@5', float('nan')):.4f} | {s.get('ndcg@5', float('nan')):.4f} | "
                     f"{s['recall@10']:.4f} | {s['ndcg@10']:.4f} | {'' if sec is None else f'{sec / 60:.1f} min'} |")
    ps = latest["published_sasrec"]
    lines += [f"| SASRec, published (TIGER paper) | | | {ps['recall@10']:.4f} | {ps['ndcg@10']:.4f} | |"]
    if latest.get("popularity"):
        p = latest["popularity"]
        lines += [f"| popularity (training counts) | {p['recall@5']:.4f} | {p['ndcg@5']:.4f} | {p['recall@10']:.4f} | "
                  f"{p['ndcg@10']:.4f} | |"]
    for r in runs:
        tr = r["training"]
        lines += ["", f"Validation of `{_name(r)}` during training (NDCG@10 / Recall@10 on the first 2,048 validation "
                  "users):", "", "| epoch | step | val NDCG@10 | val Recall@10 |", "|---|---|---|---|"]
        lines += [f"| {v['epoch']} | {v['step']} | {v['val_ndcg@10']:.4f} | {v['val_recall@10']:.4f} |"
                  for v in tr["validations"]]
        sel = tr["checkpoint"]
        if isinstance(sel, dict):
            lines += ["", f"Tested checkpoint: `{sel['chosen']}` (step {sel['chosen_step']}), chosen by validation "
                      f"NDCG@10: best-by-epoch {sel['best_val_ndcg@10']:.4f}"
                      + (f", the last checkpoint (step {sel['last_step']}) "
                         f"{sel['last_val_ndcg@10']:.4f}" if "last_step" in sel else "")
                      + (f", the mean of the two (`recsys average`; the step is best's) {sel['mean_val_ndcg@10']:.4f}"
                         if "mean_val_ndcg@10" in sel else "") + "."]
        lines += ["", f"Test pass over all users: {r['test_seconds'] / 60:.1f} min (setup, beam 20, metrics)."]
    lines += ["", "## Inference latency, top-10, CPU, one torch thread", "",
              "| run | model | ms / user (batches of 256) | ms, one user (median) | ms, one user (p90) |",
              "|---|---|---|---|---|"]
    for r in runs:
        for name, t in r["latency"].items():
            lines.append(f"| `{_name(r)}` | {name} | {t['ms_per_user_batch256']:.2f} | {t['ms_single_user_median']:.2f} | "
                         f"{t['ms_single_user_p90']:.2f} |")
    lines += ["", "## Reading these numbers", "", *(NOTES if beauty else [*OTHER_NOTES, *DATASET_NOTES.get(dataset, [])]), *SHARED_NOTES]
    for r in runs:
        env = r["environment"]
        lines += ["", f"Environment of `{_name(r)}`: Python {env['python']}; "
                  + ", ".join(f"{k} {v}" for k, v in env["packages"].items()) + f"; {env['machine']}; torch threads "
                  f"{env['torch_threads']}; 1-minute load average {env['load_average_1m']} when the report was written "
                  "(the machine is shared with other jobs: times are indicative)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
