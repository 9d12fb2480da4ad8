"""How much of a retrieval model's top-K is spent on items the user already has.

With seen items kept (the published protocol), every history item a model ranks in its top K pushes a possible
hit down. On the S3-Rec Amazon sets no test target repeats a history item, so those slots are always wasted.
This prints, for a checkpoint's test users: the history items per top-K list, the share of users whose first
recommendation is the item they consumed last, and the share with at least one history item in the list.
`--train-windows N` also reads N training windows (as a causal model trains on them, in evaluation mode) and
prints how often the item read at a position is that position's top-1 and how often the target outscores it, to
tell a model that ranks the item just read first only at test time from one that does so on its training data.

    python benchmarks/seen_in_topk.py CHECKPOINT --data prepared/amazon-beauty [--k 10] [--train-windows 10000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from recsys.data import SequenceDataModule
from recsys.eval.ranker import ItemRanker
from recsys.eval.seen import SeenItems
from recsys.scoring.checkpoint import load_model


def seen_in_topk(checkpoint: Path, data_path: Path, k: int, max_len: int, threads: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    data = SequenceDataModule(str(data_path), max_len=max_len, batch_size=128, eval_batch_size=1024)
    data.setup("test")
    model = load_model(checkpoint, n_items=data.n_items, data=str(data_path)).model  # eval mode, no pickled code
    split = data.eval_split("test")
    ranker = ItemRanker(model.item_embeddings().detach(), threads=threads)  # the evaluator's exact faiss search
    seen_per_list, last_first, any_seen = [], [], []
    with torch.inference_mode():
        for batch in data.test_dataloader():
            top = ranker.search(model.encode(batch), k)[0].numpy()
            rows = batch["row"].numpy()
            seen = SeenItems.of_rows(split.history, rows).mask(top)
            last = split.history.items[split.history.offsets[rows + 1] - 1]
            seen_per_list.append(seen.sum(axis=1))
            any_seen.append(seen.any(axis=1))
            last_first.append(top[:, 0] == last)
    return {
        "users": float(len(split)),
        f"history items per top-{k}": float(np.concatenate(seen_per_list).mean()),
        "top-1 is the last item": float(np.concatenate(last_first).mean()),
        f"any history item in top-{k}": float(np.concatenate(any_seen).mean()),
    }


def read_item_in_training(checkpoint: Path, data_path: Path, max_len: int, windows: int, threads: int,
                          batch_size: int = 256) -> dict[str, float]:
    """Over the first `windows` training windows (the datamodule's first-epoch order), the share of target
    positions whose top-1 item is the item read at that position, and the share whose target outscores it."""
    torch.set_num_threads(threads)
    data = SequenceDataModule(str(data_path), max_len=max_len, batch_size=batch_size, objective="causal")
    data.setup("fit")
    model = load_model(checkpoint, n_items=data.n_items, data=str(data_path)).model
    table = model.item_embeddings().detach()
    positions = read_first = target_above = seen = 0
    with torch.inference_mode():
        for batch in data.train_dataloader():
            if seen >= windows:
                break
            take = min(windows - seen, len(batch["item_seq"]))
            item_seq, targets = batch["item_seq"][:take], batch["targets"][:take]
            seen += take
            mask = targets > 0
            # [P, d] in row-major order; models that can, compute only the target positions
            hidden = model(item_seq, select=mask) if getattr(model, "accepts_select", False) else model(item_seq)[mask]
            scores = hidden @ table.T
            scores[:, 0] = float("-inf")
            read, target = item_seq[mask], targets[mask]
            read_first += int((scores.argmax(dim=1) == read).sum())
            target_above += int((scores.gather(1, target[:, None]) > scores.gather(1, read[:, None])).sum())
            positions += int(mask.sum())
    return {
        "training windows": float(seen),
        "training positions": float(positions),
        "top-1 is the item read there": read_first / max(positions, 1),
        "target outscores the item read": target_above / max(positions, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a retrieval model's `recsys fit` checkpoint (e.g. best-*.ckpt)")
    parser.add_argument("--data", type=Path, required=True, help="the prepared dataset it was trained on")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-len", type=int, default=50, help="history window, as in training")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-windows", type=int, default=0,
                        help="also count, over this many training windows, how often the item read at a position "
                             "is its top-1 (0: test users only)")
    args = parser.parse_args()
    if not args.checkpoint.is_file():
        raise SystemExit(f"{args.checkpoint}: no such checkpoint")
    result = seen_in_topk(args.checkpoint, args.data, args.k, args.max_len, args.threads)
    print(f"{args.checkpoint} on {args.data} (test users, seen items kept):")
    for name, value in result.items():
        print(f"  {name}: {value:,.0f}" if name == "users" else f"  {name}: {value:.3f}")
    if args.train_windows > 0:
        counts = read_item_in_training(args.checkpoint, args.data, args.max_len, args.train_windows, args.threads)
        print(f"{args.checkpoint} on {args.data} (training windows, causal targets, evaluation mode):")
        for name, value in counts.items():
            print(f"  {name}: {value:,.0f}" if name.startswith("training") else f"  {name}: {value:.3f}")


if __name__ == "__main__":
    main()
