"""RecformerTask: Recformer's pre-training and fine-tuning stages as one LightningModule (two configs).

- Fine-tuning (`loss: item_table`, the paper's stage 2): user vectors are scored against the encoded item
  table (cosine / temperature, softmax over the whole catalogue); the table is frozen between refreshes,
  so gradients reach the encoder through the users only, and it is re-encoded every `refresh_every` epochs.
- Pre-training (`loss: in_batch`, plus `mlm_weight` > 0): the next item of each history is encoded by the
  same encoder in the batch and the other targets of the batch are the negatives (item-item contrastive
  with in-batch negatives), plus masked-language modelling on the history tokens.

Training examples are (history, next item) pairs: every `targets > 0` position of a causal batch
(`next_item_pairs`), or with `train_pairs: last` only each row's last one. Each pair is a whole encoder pass,
so the choice sets the epoch's cost: `train_windows: every` visits every pair of the training split once
(about 130k on Beauty), `train_windows: last` + `train_pairs: last` one pair per user (22k on Beauty); note
that `train_windows: last` alone still makes a pair of every position of the user's last window.

With the model's `causal` layout a batch row is read once and every one of its target positions is a pair
(`prefix_targets`): the cost of an epoch is that of its windows, not of its pairs.

Evaluation is never done against a stale table: before validation the catalogue is re-encoded when the
encoder has changed since it was last encoded, and before testing always (a `recsys test` of a checkpoint
trained elsewhere, zero-shot, gets this catalogue's items encoded by its encoder).

`pretrained_checkpoint` starts the encoder from a `recsys fit` checkpoint (any catalogue): its `model.*`
weights are loaded except the catalogue buffers (token table and item table), which belong to the data.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from recsys.models.recformer import Recformer
from recsys.tasks.base import RankingTask
from recsys.tasks.generative import next_item_pairs
from recsys.tasks.optim import Schedule

warnings.filterwarnings("ignore", message=r".*is an instance of `nn.Module` and is already saved.*")

RecformerLoss = Literal["item_table", "in_batch"]
ITEM_ID_WEIGHTS = ("item_id_embeddings.weight", "history_item_embeddings.weight")


def load_pretrained(model: Recformer, checkpoint: str | Path) -> list[str]:
    """Copy a `recsys fit` checkpoint's Recformer weights into `model`, catalogue buffers excepted.

    Read with `weights_only=True` (no code runs). Returns the names loaded; any weight of the model that the
    checkpoint lacks, or a shape that differs (n_layers, sizes, max_items, tokens_per_item), is an error
    naming the parameters, since a silently half-loaded encoder would train from a random start.
    """
    from recsys.scoring.checkpoint import MODEL_PREFIX, read_checkpoint

    path = Path(checkpoint)
    state = read_checkpoint(path).get("state_dict")
    if not isinstance(state, dict):
        raise ValueError(f"{path}: no state_dict; expected a checkpoint written by `recsys fit`")
    skip = {*model.catalogue_buffers, *ITEM_ID_WEIGHTS}  # both belong to one catalogue, not to the encoder
    weights = {k[len(MODEL_PREFIX):]: v for k, v in state.items()
               if k.startswith(MODEL_PREFIX) and k[len(MODEL_PREFIX):] not in skip}
    if not weights:
        raise ValueError(f"{path}: no '{MODEL_PREFIX}*' weights in the state_dict")
    own = {k: v for k, v in model.state_dict().items() if k not in skip}
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong = sorted(k for k in set(own) & set(weights) if own[k].shape != weights[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path} does not fit this Recformer (check backbone_path, n_layers, sizes, max_items): "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, shape differs {wrong[:5]}"
        )
    model.load_state_dict(weights, strict=False)
    return sorted(weights)


def _targets(batch: dict[str, torch.Tensor], which: Literal["all", "last"]) -> torch.Tensor:
    targets = batch["targets"]
    if which == "last":
        targets = torch.cat([torch.zeros_like(targets[:, :-1]), targets[:, -1:]], dim=1)
    return targets


def training_pairs(batch: dict[str, torch.Tensor], which: Literal["all", "last"]) -> tuple[torch.Tensor, torch.Tensor]:
    """(histories [N, L], next items [N]) of a causal batch: every target position, or each row's last one."""
    history, target, _ = next_item_pairs(batch["item_seq"], _targets(batch, which))
    return history, target


def prefix_targets(targets: torch.Tensor, item_position: torch.Tensor) -> torch.Tensor:
    """[B, P] the next item after each row's k-th kept item (k = 1..P; 0 where there is none), for the
    `causal` layout's `prefix_users`. The kept items are the last ones of each left-padded window, so the k-th
    of n kept sits in column L - n + k - 1; targets of columns before them are dropped."""
    length = targets.shape[1]
    kept = item_position.max(dim=1).values  # [B]
    k = torch.arange(1, int(kept.max()) + 1, device=targets.device)
    column = length - kept[:, None] + k - 1
    inside = k <= kept[:, None]
    return torch.where(inside, targets.gather(1, column.clamp(0, length - 1)), 0)


class RecformerTask(RankingTask):
    """Pre-train or fine-tune a Recformer on next-item pairs; evaluate by full ranking of the encoded catalogue.

    Args:
        model: a recsys.models.Recformer (`n_items` comes from the data).
        loss: `item_table` (fine-tuning: softmax over the whole encoded catalogue) or `in_batch` (pre-training:
            the batch's next items, encoded with gradients, are each other's negatives).
        temperature: cosine similarities are divided by it before the softmax.
        mlm_weight: weight of the masked-language-model loss on history tokens (0 turns it off; the paper
            pre-trains with 0.1).
        mlm_prob: share of item tokens masked when `mlm_weight` > 0.
        refresh_every: re-encode the item table for the `item_table` loss every this many epochs (evaluation
            also re-encodes it whenever the encoder has changed, and training then uses that fresher table).
        train_pairs: `all` trains on every target position of a batch, `last` on each row's last one only.
        pretrained_checkpoint: a `recsys fit` checkpoint of a Recformer (e.g. the pre-training run) whose
            encoder weights start this run; the catalogue comes from this run's data.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay (not applied to embeddings, norms and biases).
        schedule: `constant` or `cosine` decay after warm-up.
        warmup_steps: linear warm-up steps.
        ks: cut-offs for Recall@K, NDCG@K and MRR@K.
        monitor_k: the K of the monitored `val/ndcg@K`.
        exclude_seen: drop each user's history items from the ranking (off by default, as for every model).
        ties: `pessimistic` (default: items scoring the same as the target rank above it) or `random` (the
            target takes a random place among them; recsys.eval.ties). Items with the same text score the same
            unless `item_ids` tells them apart, which a zero-shot or text-only model cannot.
        item_id_lr: peak learning rate of the per-item vectors (`item_ids`, `history_item_ids`); None trains
            them at `lr`. They start at zero, like an ID model's item table (SASRec trains its own at 1e-3),
            while a pretrained encoder wants a small rate (1e-4 in the Beauty config).
    """

    def __init__(
        self,
        model: Recformer,
        loss: RecformerLoss = "item_table",
        temperature: float = 0.05,
        mlm_weight: float = 0.0,
        mlm_prob: float = 0.15,
        refresh_every: int = 1,
        train_pairs: Literal["all", "last"] = "all",
        pretrained_checkpoint: str | None = None,
        lr: float = 5e-5,
        weight_decay: float = 0.0,
        schedule: Schedule = "constant",
        warmup_steps: int = 0,
        ks: list[int] | None = None,
        monitor_k: int = 10,
        exclude_seen: bool = False,
        item_id_lr: float | None = None,
        ties: Literal["pessimistic", "random"] = "pessimistic",
    ) -> None:
        super().__init__()
        if loss not in ("item_table", "in_batch"):
            raise ValueError(f"loss='{loss}': expected 'item_table' or 'in_batch'")
        if temperature <= 0:
            raise ValueError(f"temperature={temperature}: expected a positive value")
        if refresh_every < 1:
            raise ValueError(f"refresh_every={refresh_every}: expected at least 1")
        if train_pairs not in ("all", "last"):
            raise ValueError(f"train_pairs='{train_pairs}': expected 'all' or 'last'")
        if item_id_lr is not None and item_id_lr <= 0:
            raise ValueError(f"item_id_lr={item_id_lr}: expected a positive learning rate or null")
        if mlm_weight > 0 and not 0 < mlm_prob < 1:
            raise ValueError(f"mlm_prob={mlm_prob}: expected a value strictly between 0 and 1")
        if loss == "in_batch" and model.item_id_embeddings is not None:
            raise ValueError("model.item_ids learns a vector per catalogue item against the whole table: use it "
                             "with loss='item_table' (fine-tuning), not 'in_batch'")
        self.save_hyperparameters()
        self.model = model
        if pretrained_checkpoint:
            load_pretrained(model, pretrained_checkpoint)
        self._init_ranking(ks, monitor_k)
        self._encoded_at: int | None = None  # global step when the item table was last encoded
        self._mlm_generator = torch.Generator().manual_seed(0)

    def _own_lr(self) -> dict[str, float]:
        lr = self.hparams.item_id_lr
        if lr is None:
            return {}
        names = {f"model.{name}" for name in ITEM_ID_WEIGHTS}
        return {name: lr for name, _ in self.named_parameters() if name in names}

    # -- wiring ---------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return
        if getattr(datamodule, "objective", "causal") != "causal":
            raise ValueError(f"Recformer learns the next item of each history: set data.objective: causal "
                             f"(the data module builds '{datamodule.objective}' batches)")
        if datamodule.n_items != self.model.n_items:
            raise ValueError(f"the model was built for {self.model.n_items:,} items but the data has "
                             f"{datamodule.n_items:,}")
        if not self.model.has_item_tokens:
            self.model.prepare_catalogue(datamodule.dataset)
        self._setup_evaluator(datamodule.n_items, datamodule.item_popularity())

    def refresh(self) -> None:
        """Re-encode the catalogue with the current encoder."""
        self.model.refresh_item_table(progress=False)
        self._encoded_at = int(self.trainer.global_step) if self._trainer is not None else 0

    # -- training -------------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        if self.hparams.loss == "item_table":
            stale = self._encoded_at != self.trainer.global_step
            if self._encoded_at is None or (stale and self.current_epoch % self.hparams.refresh_every == 0):
                self.refresh()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        hp = self.hparams
        causal = self.model.layout == "causal"
        if causal:  # one pass per window: every prefix's vector, each against its next item
            tokens = self.model.tokens_of(batch["item_seq"])
        else:
            history, target = training_pairs(batch, hp.train_pairs)
            tokens = self.model.tokens_of(history)
        labels = None
        if hp.mlm_weight > 0:
            tokens, labels = self.model.mask_tokens(tokens, hp.mlm_prob, self._mlm_generator)
        hidden = self.model.hidden_states(tokens)
        if causal:
            wanted = prefix_targets(_targets(batch, hp.train_pairs), tokens["item_position"])
            pick = wanted > 0
            users = F.normalize(self.model.prefix_users(hidden, tokens)[:, 1:][pick].float(), dim=-1)
            target = wanted[pick]
        else:
            users = F.normalize(self.model.pool(hidden, tokens).float(), dim=-1)
        if hp.loss == "item_table":
            logits = users @ self.model.item_embeddings().T / hp.temperature
            logits[:, 0] = float("-inf")  # padding is never an answer
            loss = F.cross_entropy(logits, target)
        else:
            # Distinct targets only: a repeated item must not be its own negative.
            items, column = torch.unique(target, return_inverse=True)
            logits = users @ self.model.encode_items(items).T / hp.temperature
            loss = F.cross_entropy(logits, column)
        self.log("train/contrastive", loss, batch_size=int(target.numel()))
        if labels is not None:
            picked = labels >= 0
            if bool(picked.any()):
                mlm = F.cross_entropy(self.model.mlm_logits(hidden[picked]).float(), labels[picked])
                self.log("train/mlm", mlm, batch_size=int(picked.sum()))
                loss = loss + hp.mlm_weight * mlm
        self.log("train/loss", loss, prog_bar=True, batch_size=int(target.numel()))
        return loss

    # -- evaluation -----------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        if self._encoded_at is None or self._encoded_at != self.trainer.global_step:
            self.refresh()
        super().on_validation_epoch_start()

    def on_test_epoch_start(self) -> None:
        self.refresh()  # the weights may just have been loaded from a checkpoint of another catalogue
        super().on_test_epoch_start()
        self._cold = self.evaluator.metric().to(self.device)
        self._train_counts = torch.as_tensor(self.trainer.datamodule.item_popularity())

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Every target into the test metrics, and targets never seen in training also into `cold` ones: new
        items are what a text-based model is for, so they are reported apart."""
        ranked = self.evaluator.rank_batch(self.model, batch)
        self.test_metrics.update(ranks=ranked.ranks, topk=ranked.topk)
        target = batch["target"].cpu()
        cold = (target > 0) & (self._train_counts[target.clamp_min(0)] == 0)
        if bool(cold.any()):
            self._cold.update(ranks=ranked.ranks[cold], topk=ranked.topk[cold])

    def on_test_epoch_end(self) -> None:
        self._cold_values, self._cold_users = self._finish(self._cold)
        self.log_dict({f"test/cold/{k}": v for k, v in self._cold_values.items()})
        super().on_test_epoch_end()

    def _extra_metrics_record(self) -> dict:
        """`cold`: the test metrics over users whose target has no training interaction (`n_users` 0 when
        there are none)."""
        return {"cold": {"definition": "test targets with no interaction in the training split",
                         "n_users": self._cold_users,
                         "metrics": {k: None if math.isnan(v) else v for k, v in self._cold_values.items()}}}
