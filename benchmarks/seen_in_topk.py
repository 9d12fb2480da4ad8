"""How much of a model's top-K is spent on items the user already has (retrieval models by the evaluator's faiss
search, generative ones such as TIGER by their own `generate`).

With seen items kept (the published protocol), every history item a model ranks in its top K pushes a possible
hit down. On the S3-Rec Amazon sets no test target repeats a history item, so those slots are always wasted.
This prints, for a checkpoint's test users: the history items per top-K list, the share of users whose first
recommendation is the item they consumed last, the share whose first is any of their history items, and the
share with at least one history item in the list.
`--train-windows N` also reads N training windows (as a causal model trains on them, in evaluation mode) and
prints how often the item read at a position is that position's top-1 and how often the target outscores it, to
tell a model that ranks the item just read first only at test time from one that does so on its training data.

    python benchmarks/seen_in_topk.py CHECKPOINT --data prepared/amazon-beauty [--k 10] [--train-windows 10000]
    python benchmarks/seen_in_topk.py --text-config configs/recformer/amazon-beauty-zeroshot.yaml \
        --data prepared/amazon-beauty --max-len 3     # a Recformer as its config builds it, with no checkpoint
                                                      # (zero-shot from the backbone alone)
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


def text_model_from_config(config: Path, data: SequenceDataModule) -> torch.nn.Module:
    """The Recformer a `recsys` config's model block builds, untrained, with `data`'s catalogue encoded."""
    from omegaconf import OmegaConf

    from recsys.models import Recformer

    block = OmegaConf.select(OmegaConf.load(config), "model.init_args.model")
    if block is None or block.get("class_path") != "recsys.models.Recformer":
        raise SystemExit(f"{config}: expected model.init_args.model with class_path recsys.models.Recformer")
    model = Recformer(n_items=data.n_items, **OmegaConf.to_container(block.get("init_args", {}), resolve=True))
    model.prepare_catalogue(data.dataset)
    model.eval()
    with torch.inference_mode():
        model.refresh_item_table(progress=False)
    return model


def seen_in_topk(checkpoint: Path | None, data_path: Path, k: int, max_len: int, threads: int,
                 text_config: Path | None = None) -> dict[str, float]:
    """`checkpoint`, or without one the untrained Recformer that `text_config` builds."""
    torch.set_num_threads(threads)
    data = SequenceDataModule(str(data_path), max_len=max_len, batch_size=128, eval_batch_size=1024)
    data.setup("test")
    if checkpoint is None:
        model = text_model_from_config(text_config, data)
    else:
        model = load_model(checkpoint, n_items=data.n_items, data=str(data_path)).model  # eval mode, no pickled code
    split = data.eval_split("test")
    # the evaluator's exact faiss search for retrieval models; generate() is a generative model's own ranking
    ranker = ItemRanker(model.item_embeddings().detach(), threads=threads) if hasattr(model, "item_embeddings") else None
    seen_per_list, last_first, seen_first, any_seen = [], [], [], []
    with torch.inference_mode():
        for batch in data.test_dataloader():
            if ranker is None:
                top = model.generate(batch, k).to(torch.int64).numpy()
            else:
                top = ranker.search(model.encode(batch), k)[0].numpy()
            rows = batch["row"].numpy()
            seen = SeenItems.of_rows(split.history, rows).mask(top)
            last = split.history.items[split.history.offsets[rows + 1] - 1]
            seen_per_list.append(seen.sum(axis=1))
            any_seen.append(seen.any(axis=1))
            last_first.append(top[:, 0] == last)
            seen_first.append(seen[:, 0])
    return {
        "users": float(len(split)),
        f"history items per top-{k}": float(np.concatenate(seen_per_list).mean()),
        "top-1 is the last item": float(np.concatenate(last_first).mean()),
        "top-1 is a history item": float(np.concatenate(seen_first).mean()),
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
    if not hasattr(model, "item_embeddings"):
        raise SystemExit(f"--train-windows scores every position against the item table; {type(model).__name__} "
                         "has none (a generative model)")
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
    parser.add_argument("checkpoint", type=Path, nargs="?",
                        help="a retrieval or generative model's `recsys fit` checkpoint (e.g. best-*.ckpt)")
    parser.add_argument("--text-config", type=Path,
                        help="instead of a checkpoint: a Recformer config whose model is built untrained")
    parser.add_argument("--data", type=Path, required=True, help="the prepared dataset it was trained on")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-len", type=int, default=50, help="history window, as in training")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-windows", type=int, default=0,
                        help="also count, over this many training windows, how often the item read at a position "
                             "is its top-1 (0: test users only)")
    args = parser.parse_args()
    if (args.checkpoint is None) == (args.text_config is None):
        raise SystemExit("give a checkpoint or --text-config, not both")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise SystemExit(f"{args.checkpoint}: no such checkpoint")
    if args.text_config is not None and args.train_windows > 0:
        raise SystemExit("--train-windows reads a checkpoint; it does not apply to --text-config")
    result = seen_in_topk(args.checkpoint, args.data, args.k, args.max_len, args.threads, args.text_config)
    print(f"{args.checkpoint or args.text_config} on {args.data} (test users, seen items kept):")
    for name, value in result.items():
        print(f"  {name}: {value:,.0f}" if name == "users" else f"  {name}: {value:.3f}")
    if args.train_windows > 0:
        counts = read_item_in_training(args.checkpoint, args.data, args.max_len, args.train_windows, args.threads)
        print(f"{args.checkpoint} on {args.data} (training windows, causal targets, evaluation mode):")
        for name, value in counts.items():
            print(f"  {name}: {value:,.0f}" if name.startswith("training") else f"  {name}: {value:.3f}")


if __name__ == "__main__":
    main()
