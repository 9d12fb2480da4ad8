"""What every recsys LightningModule shares: evaluation through the one Evaluator, the metrics file, AdamW.

A task subclass owns its training step and its setup; validation and test rank each held-out target with
`Evaluator.rank_batch` (retrieval models by full ranking, generative models through `generate`), the
monitored metric is `val/ndcg@{monitor_k}`, and testing writes `test_metrics.json` beside the logs.
Subclasses keep `lr`, `weight_decay`, `schedule`, `warmup_steps`, `monitor_k` and `exclude_seen` among their
hyperparameters (`save_hyperparameters()`), and `ties` where they offer the evaluator's tie policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn

from recsys.eval.evaluator import Evaluator
from recsys.eval.metrics import RankingMetrics
from recsys.eval.protocols import FullRanking
from recsys.tasks.optim import build_optimizer, can_fuse
from recsys.tasks.precision import bf16_cpu_warning, cpu_has_native_bf16


class RankingTask(pl.LightningModule):
    """Base of RetrievalTask and GenerativeTask: `self.model` is ranked by the Evaluator at every eval step."""

    model: torch.nn.Module

    def _init_ranking(self, ks: list[int] | None, monitor_k: int) -> None:
        self.ks = sorted(set(ks or [10, 20]) | {monitor_k})
        self.evaluator: Evaluator | None = None
        self.val_metrics: RankingMetrics | None = None
        self.test_metrics: RankingMetrics | None = None

    def _setup_evaluator(self, n_items: int, popularity: np.ndarray) -> None:
        self.evaluator = Evaluator(
            n_items=n_items, ks=self.ks, protocol=FullRanking(),
            exclude_seen=self.hparams.exclude_seen, item_popularity=popularity,
            ties=self.hparams.get("ties", "pessimistic"),
        )
        self.val_metrics = self.evaluator.metric()
        self.test_metrics = self.evaluator.metric()

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        total = int(self.trainer.estimated_stepping_batches) if self.trainer else 1
        precision = self.trainer.precision if self.trainer else "32-true"
        clip = self.trainer.gradient_clip_val if self.trainer else None
        return build_optimizer(self, hp.lr, hp.weight_decay, hp.schedule, hp.warmup_steps, total,
                               fused=can_fuse(self, precision, clip), own_lr=self._own_lr(),
                               optimizer=hp.get("optimizer", "adamw"))

    def _own_lr(self) -> dict[str, float]:
        """Parameters (by name) that a task trains at a learning rate of their own; none by default."""
        return {}

    def on_fit_start(self) -> None:
        warning = bf16_cpu_warning(str(self.trainer.precision), self.device.type, cpu_has_native_bf16())
        if warning:
            rank_zero_warn(warning)

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

    def _extra_metrics_record(self) -> dict:
        """Fields a task adds to test_metrics.json (none by default)."""
        return {}

    def _write_metrics(self, values: dict[str, float], n_users: int, run_dir: Path) -> None:
        datamodule = self.trainer.datamodule
        record = {
            "dataset": datamodule.dataset.name,
            "model": type(self.model).__name__,
            "protocol": self.evaluator.describe(datamodule.eval_split("test")),
            "n_users": n_users,
            "metrics": values,
            "checkpoint": getattr(self.trainer, "ckpt_path", None),
            **self._extra_metrics_record(),
        }
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / "test_metrics.json.tmp"
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        tmp.replace(run_dir / "test_metrics.json")
