"""The checkpoint callback of `recsys fit`: the best checkpoints by the monitored metric, and a `last.ckpt`
that really is the latest one.

Lightning 2.6's ModelCheckpoint rewrites `last.ckpt` only when it has just saved a new best, so a run killed
after its best epoch and resumed with `--ckpt_path last` would silently redo every epoch since that best.
"""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


class BestAndLatestCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose `last.ckpt` (with `save_last`) is rewritten at every point where it checks for a
    new best: after each validation, or at the end of each training epoch when that is where it saves."""

    @property
    def state_key(self) -> str:
        # Stored under ModelCheckpoint's key, so runs checkpointed before this class existed resume with their
        # best score and paths, and its checkpoints still resume under a plain ModelCheckpoint.
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def _save_latest(self, trainer: pl.Trainer) -> None:
        # Skipped when this step was just saved (a new best rewrote last.ckpt already), while sanity
        # checking, and outside fitting.
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
