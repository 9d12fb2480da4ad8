"""RecBole 1.2.1's full-sort evaluation path on given vectors; run by eval_speed.py inside .venv-recbole.

What is timed, per batch of users, is exactly what RecBole's `Trainer.evaluate` runs for a sequential
model in full-sort mode, through RecBole's own objects: `Trainer._full_sort_batch_eval` (which calls the
model's `full_sort_predict`, masks the padding column, and would mask history), the `Collector`'s
`eval_batch_collect` (torch.topk + positive matrix + gather), then once `Evaluator.evaluate` (Recall, NDCG,
MRR). The model's `full_sort_predict` is SASRec's last step, `seq_output @ item_embedding.weight.T`, with
`seq_output` read from the given user vectors instead of running a transformer, so no encoder is timed
here or in the recsys path. Not timed: RecBole's data loading and the building of the batches.

This file imports only RecBole, torch and numpy: it must run in RecBole's own environment.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import numpy as np
import recbole
import torch
from recbole.config import Config
from recbole.data.interaction import Interaction
from recbole.trainer import Trainer


class VectorSASRecHead(torch.nn.Module):
    """SASRec's full_sort_predict with the sequence encoder replaced by a table of finished user vectors."""

    def __init__(self, users: np.ndarray, items: np.ndarray) -> None:
        super().__init__()
        self.user_vectors = torch.nn.Parameter(torch.from_numpy(users), requires_grad=False)
        self.item_embedding = torch.nn.Embedding.from_pretrained(torch.from_numpy(items))

    def full_sort_predict(self, interaction: Interaction) -> torch.Tensor:
        seq_output = self.user_vectors[interaction["user_id"]]
        return torch.matmul(seq_output, self.item_embedding.weight.transpose(0, 1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", required=True, help="npz with users [U,d], items [N+1,d], targets [U]")
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=4096, help="users per batch (RecBole's eval_batch_size)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = np.load(args.inputs)
    users, items, targets = data["users"], data["items"], data["targets"]
    config = Config(
        model="SASRec",
        dataset="eval-speed",
        config_dict={
            "metrics": ["Recall", "NDCG", "MRR"], "train_neg_sample_args": None, "topk": [args.k], "valid_metric": f"MRR@{args.k}",
            "eval_args": {"mode": "full", "order": "TO", "split": {"LS": "valid_and_test"}, "group_by": "user"},
            "eval_batch_size": args.batch_size, "metric_decimal_place": 8, "use_gpu": False, "device": "cpu", "show_progress": False,
            "checkpoint_dir": "/tmp/recbole-eval-speed", "data_path": "/tmp/recbole-eval-speed",
        },
    )
    trainer = Trainer(config, VectorSASRecHead(users, items))
    trainer.tot_item_num = items.shape[0]
    batches = []
    for start in range(0, users.shape[0], args.batch_size):
        stop = min(start + args.batch_size, users.shape[0])
        interaction = Interaction({"user_id": torch.arange(start, stop)})
        positive_u = torch.arange(stop - start)
        positive_i = torch.from_numpy(targets[start:stop])
        batches.append((interaction, None, positive_u, positive_i))

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with torch.no_grad():
        for batched in batches:  # the body of Trainer.evaluate's loop
            interaction, scores, positive_u, positive_i = trainer._full_sort_batch_eval(batched)
            trainer.eval_collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
        trainer.eval_collector.model_collect(trainer.model)
        result = trainer.evaluator.evaluate(trainer.eval_collector.get_data_struct())
    seconds = time.perf_counter() - started
    print(json.dumps({
        "seconds": seconds,
        "metrics": {key: float(value) for key, value in result.items()},
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mib": rss_before / 1024,
        "versions": {"recbole": recbole.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
