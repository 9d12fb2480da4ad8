"""One LightningModule for every retrieval model (SASRec, BERT4Rec, Recformer).

The model is a plain nn.Module with the retrieval contract; this wrapper owns the loss over target positions;
validation and test through the shared Evaluator, the optimiser and the metrics file come from RankingTask.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from recsys.losses import FullSoftmaxCE
from recsys.tasks.base import RankingTask
from recsys.tasks.optim import Schedule

warnings.filterwarnings("ignore", message=r".*is an instance of `nn.Module` and is already saved.*")


class RetrievalTask(RankingTask):
    """Train a retrieval model on next-item targets and evaluate it by full ranking.

    Args:
        model: the retrieval model (`class_path` in YAML); its `n_items` comes from the data.
        loss: full softmax CE (default), sampled softmax, BCE or gBCE from recsys.losses.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay (not applied to embeddings, norms and biases).
        schedule: `constant` or `cosine` decay after warm-up.
        warmup_steps: linear warm-up steps.
        ks: cut-offs for Recall@K, NDCG@K and MRR@K.
        monitor_k: the K of the monitored `val/ndcg@K` (checkpointing and early stopping follow it).
        exclude_seen: drop each user's history items from the ranking (off by default: seen items are kept,
            as in the published protocol).
        train_exclude_seen: give the items earlier in a training window no probability mass in that
            position's softmax (full CE, causal models): training then ranks among unseen items, as evaluation
            with `exclude_seen` does, instead of spending gradient on pushing history items down. Meant for
            data whose items never repeat within a history (the S3-Rec Amazon sets); a target that repeats an
            earlier item is still trained on.
        train_seen_margin: instead of leaving them out, score those earlier items this much higher in each
            training position's softmax (full CE, causal models), so training pushes them at least that far
            down: for evaluation with seen items kept, on data where a history item is never the next one.
            0 (default) is plain CE; cannot be combined with `train_exclude_seen`.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: Schedule = "constant",
        warmup_steps: int = 0,
        ks: list[int] | None = None,
        monitor_k: int = 10,
        exclude_seen: bool = False,
        train_exclude_seen: bool = False,
        train_seen_margin: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = model
        self.loss = loss if loss is not None else FullSoftmaxCE()
        if train_exclude_seen and train_seen_margin:
            raise ValueError("train_exclude_seen and train_seen_margin both set: choose one (leave the seen items "
                             "out of the training softmax, or keep them with a margin)")
        if train_seen_margin < 0:
            raise ValueError(f"train_seen_margin={train_seen_margin}: expected a margin >= 0")
        for name, value in (("train_exclude_seen", train_exclude_seen), ("train_seen_margin", train_seen_margin)):
            if not value:
                continue
            if not isinstance(self.loss, FullSoftmaxCE):
                raise ValueError(f"{name} needs the full softmax loss (FullSoftmaxCE), not "
                                 f"{type(self.loss).__name__}")
            if getattr(model, "objective", "causal") != "causal":
                raise ValueError(f"{name} needs a causal model: {type(model).__name__} sees the whole "
                                 "window at every position")
        self._init_ranking(ks, monitor_k)

    # -- wiring ---------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return
        objective = getattr(self.model, "objective", "causal")
        if getattr(datamodule, "objective", objective) != objective:
            raise ValueError(
                f"{type(self.model).__name__} trains with the '{objective}' objective but the data module "
                f"builds '{datamodule.objective}' batches: set data.objective: {objective}"
            )
        if getattr(datamodule, "packed", False) and not getattr(self.model, "accepts_packed", False):
            raise ValueError(
                f"data.packed is true but {type(self.model).__name__} cannot read packed batches "
                "(several windows per row): set data.packed: false"
            )
        popularity = datamodule.item_popularity()
        if hasattr(self.loss, "set_item_popularity"):
            self.loss.set_item_popularity(torch.as_tensor(popularity))
        self._setup_evaluator(datamodule.n_items, popularity)

    # -- training -------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        targets = batch["targets"]
        mask = targets > 0
        packing = (batch["segments"], batch["positions"]) if "segments" in batch else ()
        if getattr(self.model, "accepts_select", False) and selecting_pays(mask):
            hidden = self.model(batch["item_seq"], *packing, select=mask)  # [P, d]
        else:
            hidden = self.model(batch["item_seq"], *packing)[mask]
        # Only FullSoftmaxCE takes `exclude` (checked at construction), so the others get no extra argument.
        extra = {}
        if self.hparams.train_exclude_seen or self.hparams.train_seen_margin:
            extra["exclude"] = earlier_items(batch["item_seq"], batch.get("segments"))[mask]
        if self.hparams.train_seen_margin:
            extra["exclude_offset"] = float(self.hparams.train_seen_margin)
        loss = self.loss(hidden, targets[mask], self.model.item_embeddings(), **extra)
        self.log("train/loss", loss, prog_bar=True, batch_size=int(mask.sum()))
        return loss


def selecting_pays(mask: torch.Tensor) -> bool:
    """Whether the last layer should run only at the loss positions `mask` marks rather than everywhere.

    Selecting gathers rows to save the last layer's output projection and feed-forward at the other positions.
    In float32 on CPU that paid even with 82% of positions selected (ML-100K SASRec windows; AVX2 EPYC, one
    thread, batch 32: 82.7 -> 77.2 ms per step, median of 15 interleaved runs; 76.9 -> 69.8 ms at 56%, the
    share of overlapping windows with `train_stride` 25). Under bf16 autocast the matrix products are cheap
    enough that the gathers dominate: at 81% selecting made an AVX-512 BF16 epoch slower (2.6 -> 2.9-3.1 s),
    so there it is kept to at most half of the positions (BERT4Rec's masked fifth, mostly padded windows).
    """
    share = 0.5 if torch.is_autocast_enabled(mask.device.type) else 0.85
    return int(mask.sum()) <= share * mask.numel()


def earlier_items(item_seq: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
    """[B, L] left-padded windows (several per row when `segments` is given) -> [B, L, L]: at [b, t], the
    items of positions <= t in the same window, 0 elsewhere (what position t has already seen)."""
    length = item_seq.shape[1]
    visible = torch.ones(length, length, dtype=torch.bool, device=item_seq.device).tril()[None]
    if segments is not None:
        visible = visible & (segments[:, :, None] == segments[:, None, :])
    return item_seq[:, None, :].expand(-1, length, -1).masked_fill(~visible, 0)
