"""One LightningModule for every retrieval model (SASRec, BERT4Rec, Recformer).

The model is a plain nn.Module with the retrieval contract; this wrapper owns what is common: the loss over
target positions, validation and test through the shared Evaluator, the optimiser and the metrics file.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from recsys.eval.evaluator import Evaluator
from recsys.eval.metrics import RankingMetrics
from recsys.eval.protocols import FullRanking
from recsys.losses import FullSoftmaxCE
from recsys.tasks.optim import Schedule, build_optimizer

warnings.filterwarnings("ignore", message=r".*is an instance of `nn.Module` and is already saved.*")


class RetrievalTask(pl.LightningModule):
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
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = model
        self.loss = loss if loss is not None else FullSoftmaxCE()
        self.ks = sorted(set(ks or [10, 20]) | {monitor_k})
        self.evaluator: Evaluator | None = None
        self.val_metrics: RankingMetrics | None = None
        self.test_metrics: RankingMetrics | None = None

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
        popularity = datamodule.item_popularity()
        if hasattr(self.loss, "set_item_popularity"):
            self.loss.set_item_popularity(torch.as_tensor(popularity))
        self.evaluator = Evaluator(
            n_items=datamodule.n_items, ks=self.ks, protocol=FullRanking(),
            exclude_seen=self.hparams.exclude_seen, item_popularity=popularity,
        )
        self.val_metrics = self.evaluator.metric()
        self.test_metrics = self.evaluator.metric()

    # -- training -------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        hidden = self.model(batch["item_seq"])
        targets = batch["targets"]
        mask = targets > 0
        loss = self.loss(hidden[mask], targets[mask], self.model.item_embeddings())
        self.log("train/loss", loss, prog_bar=True, batch_size=int(mask.sum()))
        return loss

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        total = int(self.trainer.estimated_stepping_batches) if self.trainer else 1
        return build_optimizer(self, hp.lr, hp.weight_decay, hp.schedule, hp.warmup_steps, total)

    # -- evaluation -----------------------------------------------------------------------------------
    def _start(self, split_name: str) -> None:
        if self.evaluator is None:
            raise RuntimeError("evaluation needs a data module: run through `recsys` or trainer.fit/test(datamodule=...)")
        self.evaluator.prepare(self.model, self.trainer.datamodule.eval_split(split_name))

    def _step(self, batch: dict[str, torch.Tensor], metrics: RankingMetrics) -> None:
        ranked = self.evaluator.rank_batch(self.model, batch)
        metrics.update(ranks=ranked.ranks, topk=ranked.topk)

    def _finish(self, metrics: RankingMetrics) -> tuple[dict[str, float], int]:
        """Metrics summed over every rank (torchmetrics syncs the sums), and the users they cover."""
        values = {k: float(v) for k, v in metrics.compute().items()}
        count = self.trainer.strategy.reduce(metrics.count.detach().clone(), reduce_op="sum")
        metrics.reset()
        return values, int(count)

    def on_validation_epoch_start(self) -> None:
        self._start("valid")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        values, _ = self._finish(self.val_metrics)
        monitored = f"ndcg@{self.hparams.monitor_k}"
        self.log_dict({f"val/{k}": v for k, v in values.items() if k != monitored})
        self.log(f"val/{monitored}", values[monitored], prog_bar=True)

    def on_test_epoch_start(self) -> None:
        self._start("test")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        values, n_users = self._finish(self.test_metrics)
        self.log_dict({f"test/{k}": v for k, v in values.items()})
        run_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)  # collective: every rank asks
        if self.trainer.is_global_zero:
            self._write_metrics(values, n_users, run_dir)

    def _write_metrics(self, values: dict[str, float], n_users: int, run_dir: Path) -> None:
        datamodule = self.trainer.datamodule
        record = {
            "dataset": datamodule.dataset.name,
            "model": type(self.model).__name__,
            "protocol": self.evaluator.describe(datamodule.eval_split("test")),
            "n_users": n_users,
            "metrics": values,
            "checkpoint": getattr(self.trainer, "ckpt_path", None),
        }
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / "test_metrics.json.tmp"
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        tmp.replace(run_dir / "test_metrics.json")
