"""One LightningModule for generative models (TIGER, later Mender): teacher-forced training, generated ranking.

Training pairs: every target in a causal batch (`targets > 0`) becomes one (history -> next item) example,
its history being the items before it in the window (vectorised, no Python loop over positions). With the
data module's `train_windows: every` (what the TIGER configs use) each batch row is one pair whose target is
its last column, so every (history, next item) pair of the training split is visited exactly once per epoch
with its full `max_len` history; with `all` or `last` windows every position of each window is a target
(more pairs per row, histories cut at the window start).

Validation and test go through the same Evaluator as retrieval models (it calls `generate`), the
monitored metric is `val/ndcg@{monitor_k}` and `test_metrics.json` is written the same way (RankingTask).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from recsys.tasks.base import RankingTask
from recsys.tasks.optim import Optimizer, Schedule

warnings.filterwarnings("ignore", message=r".*is an instance of `nn.Module` and is already saved.*")


def next_item_pairs(
    item_seq: torch.Tensor, targets: torch.Tensor, user_idx: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(histories [N, L] left-padded, targets [N], users [N]) for every position with `targets > 0`.

    The history of position j is `item_seq[b, :j + 1]`, right-aligned in a window of the same width L.
    """
    rows, cols = (targets > 0).nonzero(as_tuple=True)
    length = item_seq.shape[1]
    if bool((cols == length - 1).all()):  # one target per row, at the end: the window is the history
        return item_seq[rows], targets[rows, cols], None if user_idx is None else user_idx[rows]
    source = cols[:, None] - (length - 1) + torch.arange(length, device=item_seq.device)
    history = torch.where(source >= 0, item_seq[rows[:, None], source.clamp_min(0)], 0)
    return history, targets[rows, cols], None if user_idx is None else user_idx[rows]


class GenerativeTask(RankingTask):
    """Train a generative model (`loss(item_seq, user_idx, target)`, `generate(batch, k)`) on next-item pairs.

    Args:
        model: the generative model (`class_path` in YAML), e.g. recsys.models.TIGER; `n_items` comes from
            the data. Models with semantic IDs get them at setup (`prepare_semantic_ids(dataset)`) unless they
            already have them (a checkpoint).
        lr: peak learning rate of AdamW; with Adafactor, the cap on its relative step size.
        weight_decay: weight decay (not applied to embeddings, norms and biases).
        optimizer: `adamw`, or `adafactor`: T5X's default optimiser (TIGER's paper trains with T5X at 0.01 for
            10k steps, then an inverse square root decay, which lr 0.01 and a constant schedule give; see
            `recsys.tasks.optim`).
        schedule: `constant` or `cosine` decay after warm-up.
        warmup_steps: linear warm-up steps.
        ks: cut-offs for Recall@K, NDCG@K and MRR@K.
        monitor_k: the K of the monitored `val/ndcg@K` (checkpointing and early stopping follow it).
        exclude_seen: drop each user's history items from the ranking (off by default: seen items are kept,
            the stricter reading of published protocols); generate() is then asked for K plus each user's
            history length (users in groups of similar length).
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: Schedule = "cosine",
        warmup_steps: int = 0,
        optimizer: Optimizer = "adamw",
        ks: list[int] | None = None,
        monitor_k: int = 10,
        exclude_seen: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = model
        self._init_ranking(ks, monitor_k)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return
        if getattr(datamodule, "objective", "causal") != "causal":
            raise ValueError(
                f"{type(self.model).__name__} learns the next item of each history: set data.objective: causal "
                f"(the data module builds '{datamodule.objective}' batches)"
            )
        if hasattr(self.model, "prepare_semantic_ids"):
            train = datamodule.split.train if hasattr(datamodule, "split") else None
            self.model.prepare_semantic_ids(datamodule.dataset, train)
        self._setup_evaluator(datamodule.n_items, datamodule.item_popularity())

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        history, target, users = next_item_pairs(batch["item_seq"], batch["targets"], batch.get("user_idx"))
        loss = self.model.loss(history, users, target)
        self.log("train/loss", loss, prog_bar=True, batch_size=int(target.numel()))
        return loss
