"""RecBole 1.2.1 training for the training-speed benchmark; run by train_speed.py inside .venv-recbole.

Trains SASRec or BERT4Rec with RecBole's own objects for a fixed number of epochs and times each one. Each
epoch runs exactly the two calls RecBole's `Trainer.fit` makes per epoch, `Trainer._train_epoch` (its own
sequential data loader with prefix augmentation, the model's `calculate_loss`, Adam) and
`Trainer._valid_epoch` (full-sort evaluation of the validation split, NDCG@10 as the valid metric); fit's
checkpoint saving and logging are left out. Dataset loading and splitting are timed separately.

The data is an atomic `.inter` file written by train_speed.py from the prepared dataset, so RecBole sees the
same sequences as recsys. Writes one JSON object to --out.

This file imports only RecBole, torch and numpy: it must run in RecBole's own environment.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time

import numpy as np
import recbole
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed


def config_dict(args: argparse.Namespace) -> dict:
    cfg = {
        # data: the atomic file written by train_speed.py
        "data_path": args.data_path,
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        # model (identical sizes for both frameworks)
        "hidden_size": args.hidden_size, "inner_size": 4 * args.hidden_size, "n_layers": args.n_layers,
        "n_heads": args.n_heads, "hidden_dropout_prob": args.dropout, "attn_dropout_prob": args.attn_dropout,
        "loss_type": "CE",
        # training
        "train_batch_size": args.batch_size, "learner": "adam", "learning_rate": args.lr, "weight_decay": 0.0,
        "epochs": args.epochs, "train_neg_sample_args": None, "clip_grad_norm": None,
        # evaluation: leave-one-out by time, full ranking, NDCG@10 monitored
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Recall", "NDCG", "MRR"], "topk": [10], "valid_metric": "NDCG@10",
        "eval_batch_size": 4096, "metric_decimal_place": 6,
        # environment
        "use_gpu": False, "device": "cpu", "seed": args.seed, "reproducibility": True, "show_progress": False,
        "worker": 0, "checkpoint_dir": args.work_dir, "state": "WARNING",
    }
    if args.model == "BERT4Rec":
        cfg["mask_ratio"] = args.mask_ratio
    return cfg


def log(message: str) -> None:
    print(f"[recbole_train_runner] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-path", required=True, help="folder holding <dataset>/<dataset>.inter")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", choices=["SASRec", "BERT4Rec"], required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--n-heads", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--attn-dropout", type=float, default=0.2)
    parser.add_argument("--mask-ratio", type=float, default=0.2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--work-dir", default="/tmp/recbole-train-speed")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    config = Config(model=args.model, dataset=args.dataset, config_dict=config_dict(args))
    init_seed(config["seed"], config["reproducibility"])
    torch.set_num_threads(args.threads)  # after RecBole's own set-up, in case it touched the thread pool
    dataset = create_dataset(config)
    train_data, valid_data, _test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    setup_s = time.perf_counter() - started
    train_samples = len(train_data._dataset)
    log(f"{args.model} on {args.dataset}: {train_samples:,} training samples, {dataset.item_num - 1:,} items, "
        f"set-up {setup_s:.1f} s, {torch.get_num_threads()} threads")

    trainer.eval_collector.data_collect(train_data)  # as Trainer.fit does before its first epoch
    epochs = []
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        loss = trainer._train_epoch(train_data, epoch, show_progress=False)
        t1 = time.perf_counter()
        score, result = trainer._valid_epoch(valid_data, show_progress=False)
        t2 = time.perf_counter()
        loss = float(sum(loss)) if isinstance(loss, tuple) else float(loss)
        epochs.append({
            "epoch": epoch + 1, "train_s": t1 - t0, "valid_s": t2 - t1, "loss": loss,
            "valid": {key: float(value) for key, value in result.items()}, "valid_ndcg@10": float(score),
        })
        log(f"epoch {epoch + 1}: train {t1 - t0:.1f} s, valid {t2 - t1:.2f} s, loss {loss:.4f}, "
            f"valid NDCG@10 {float(score):.4f}")

    best = max(range(len(epochs)), key=lambda i: epochs[i]["valid_ndcg@10"])
    out = {
        "model": args.model, "dataset": args.dataset, "epochs": epochs,
        "best_epoch": best + 1, "best_valid_ndcg@10": epochs[best]["valid_ndcg@10"],
        "time_to_best_s": sum(e["train_s"] + e["valid_s"] for e in epochs[: best + 1]),
        "total_s": sum(e["train_s"] + e["valid_s"] for e in epochs),
        "train_s_per_epoch": float(np.mean([e["train_s"] for e in epochs])),
        "train_samples_per_epoch": train_samples,
        "n_items": int(dataset.item_num - 1), "n_users": int(dataset.user_num - 1),
        "valid_users": len(valid_data._dataset),
        "setup_s": setup_s, "threads": torch.get_num_threads(),
        "peak_rss_self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": {"recbole": recbole.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    with open(args.out, "w") as handle:
        json.dump(out, handle, indent=2)


if __name__ == "__main__":
    main()
