"""The LightningDataModule every sequential model trains from: a prepared folder in, padded batches out."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from recsys.data.collate import CausalCollator, ClozeCollator, EvalCollator, TrainWindows
from recsys.data.contract import PreparedDataset, read_prepared
from recsys.data.sampling import EpochBatches, LengthGroupedBatches, ResumableLoader
from recsys.data.sequences import Sequences
from recsys.data.split import EvalSplit, LeaveOneOut, leave_one_out


class SequenceDataModule(pl.LightningDataModule):
    """Leave-one-out batches from a prepared folder.

    Args:
        path: the prepared-dataset folder (`recsys prep ... --out DIR`); `--data.path DIR` on the command line.
        max_len: the number of most recent items a model sees.
        batch_size: training users per batch.
        eval_batch_size: users per validation/test batch.
        objective: `causal` (next item at every position, SASRec) or `cloze` (masked items, BERT4Rec).
        mask_prob: share of positions masked for the cloze objective.
        min_length: users with fewer interactions are trained on but never evaluated.
        train_windows: `all` tiles each training sequence into windows of max_len so every item is a target
            once per epoch (long histories are not cut); `last` keeps only each user's most recent window, as
            the original SASRec code does. Neither duplicates targets (no prefix augmentation). `every` makes one
            example per (history, next item) pair, each target once per epoch with its full max_len history: for
            encoder-decoder models (TIGER), which encode every history separately anyway (causal objective only).
        train_stride: with `all`, start a window every `train_stride` items from each sequence's end instead of
            every max_len: windows overlap and each trains only the targets no later window covers, so every
            item is still a target once per epoch but with at least max_len - train_stride items of history
            (except a sequence's first ones), closer to what evaluation gives the model. The transformer work
            grows with the windows (ML-100K at 25: 3,564 windows against 2,412, epochs 1.2-1.3x as long); the
            loss work is unchanged. There SASRec with the shared benchmark settings reached RecBole's validation
            NDCG@10 in 23 epochs instead of 35 (benchmarks/results/train_speed_avx2.md). Causal objective only.
        length_grouped: batch windows of similar length (shuffled pools of `length_pool` batches, sorted by
            length), so trimmed batches carry little padding: faster on short-history data such as Amazon, but
            on ML-100K it slowed convergence (best val NDCG@10 0.066 after 127 epochs against 0.071 after 31 with
            plain shuffling, benchmarks/train_speed.py), so it is off by default.
        length_pool: batches per sorted pool when `length_grouped` (smaller pools vary batches more).
        packed: pack each batch's windows several to a row of max_len columns, each attending only within
            itself with its own positions (SASRec and BERT4Rec): the same batches and the same outputs at
            every real position, without computing the padding (most of a batch on Amazon data, whose windows
            hold 6 items on average). Training batches only; evaluation is unchanged.
        num_workers: DataLoader worker processes (batches are built with array ops; 0 is usually fastest).
        seed: seeds shuffling and masking.
        val_users: validate on this many users drawn at random (seeded by `seed`, the same users every pass)
            instead of all of them: a cheaper validation that still stands for the split. The trainer's
            `limit_val_batches` keeps the first users in split order instead, which need not: on Amazon Beauty
            the first 5,120 have longer histories (8.9 items against 6.9) and half the NDCG@10 of all users
            under the same Recformer. The test always uses every user.
    """

    def __init__(
        self,
        path: str,
        max_len: int = 50,
        batch_size: int = 128,
        eval_batch_size: int = 1024,
        objective: Literal["causal", "cloze"] = "causal",
        mask_prob: float = 0.2,
        min_length: int = 3,
        train_windows: Literal["all", "last", "every"] = "all",
        train_stride: int | None = None,
        length_grouped: bool = False,
        length_pool: int = 16,
        packed: bool = False,
        num_workers: int = 0,
        seed: int = 0,
        val_users: int | None = None,
    ) -> None:
        super().__init__()
        self.path = path
        self.max_len = max_len
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.objective = objective
        self.mask_prob = mask_prob
        self.min_length = min_length
        self.train_windows = train_windows
        self.train_stride = train_stride
        self.length_grouped = length_grouped
        self.length_pool = length_pool
        self.packed = packed
        self.num_workers = num_workers
        self.seed = seed
        if val_users is not None and val_users < 1:
            raise ValueError(f"val_users={val_users}: expected a positive number of users, or null for all")
        self.val_users = val_users
        self._dataset: PreparedDataset | None = None
        self._split: LeaveOneOut | None = None
        self._train_loader: ResumableLoader | None = None
        self._resume_at: dict[str, int] | None = None

    @property
    def dataset(self) -> PreparedDataset:
        if self._dataset is None:
            self._dataset = read_prepared(self.path)
        return self._dataset

    @property
    def split(self) -> LeaveOneOut:
        if self._split is None:
            self._split = leave_one_out(Sequences.from_interactions(self.dataset.interactions), self.min_length)
        return self._split

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    @property
    def mask_token(self) -> int:
        """The cloze objective's [MASK] index: one past the last item."""
        return self.n_items + 1

    def item_popularity(self) -> np.ndarray:
        """Training-split interaction counts per item index (index 0 is padding and counts 0)."""
        return np.bincount(self.split.train.items, minlength=self.n_items + 1).astype(np.int64)

    def setup(self, stage: str | None = None) -> None:
        self.split  # noqa: B018 - read and split once, before the loaders ask

    def eval_split(self, name: str) -> EvalSplit:
        if name not in ("valid", "test"):
            raise ValueError(f"split '{name}': expected 'valid' or 'test'")
        return self.split.valid if name == "valid" else self.split.test

    def train_dataloader(self) -> DataLoader:
        train = self.split.train
        if self.train_windows == "every" and self.objective != "causal":
            raise ValueError("train_windows='every' predicts the next item of each history: it needs objective='causal'")
        if self.packed and self.train_windows == "every":
            raise ValueError("packed=true packs windows for SASRec/BERT4Rec; train_windows='every' is for "
                             "encoder-decoder models, which read one history per row: set packed: false")
        if self.train_stride is not None and self.objective != "causal":
            raise ValueError("train_stride overlaps causal windows (each target trained once, with a longer "
                             "history); cloze batches mask positions instead: leave train_stride unset")
        windows = TrainWindows(train, self.max_len, self.train_windows, self.train_stride)
        rows = np.arange(len(windows))
        if self.objective == "causal":
            collate = CausalCollator(train, self.max_len, windows, pack=self.packed)
        else:
            collate = ClozeCollator(
                train, self.max_len, self.mask_token, self.mask_prob, self.seed, windows, pack=self.packed
            )
        world, rank = self._world()
        if self.length_grouped:
            lengths = np.minimum(windows.ends - train.offsets[windows.rows], self.max_len + 1)
            sampler: EpochBatches = LengthGroupedBatches(
                lengths, self.batch_size, seed=self.seed, pool_batches=self.length_pool, world=world, rank=rank
            )
        else:
            sampler = EpochBatches(len(windows), self.batch_size, seed=self.seed, world=world, rank=rank)
        loader = ResumableLoader(rows.tolist(), sampler, trainer_epoch=self._trainer_epoch, collate_fn=collate,
                                 num_workers=self.num_workers)
        if self._resume_at is not None:
            loader.load_state_dict(self._resume_at)
            self._resume_at = None
        self._train_loader = loader
        return loader

    def state_dict(self) -> dict[str, Any]:
        """Where training stands in its epoch's batch order. Lightning restores a datamodule's state before it
        builds the training loader (its own loader-state restore comes too late when the optimiser setup has
        already asked for the loader's length), so `--ckpt_path` resumes the interrupted epoch exactly."""
        return {} if self._train_loader is None else {"train_batches": self._train_loader.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_at = state_dict.get("train_batches")

    def _trainer_epoch(self) -> int | None:
        """The epoch the attached trainer is in (None without one)."""
        trainer = getattr(self, "trainer", None)
        return None if trainer is None else int(trainer.current_epoch)

    def _world(self) -> tuple[int, int]:
        """(world size, rank) of the attached trainer; the CLI turns Lightning's own sampler replacement off
        so that evaluation shards carry no padded duplicates (they would change the metrics)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _eval_loader(self, split: EvalSplit, limit: int | float | None = None, by_length: bool = True,
                     users: int | None = None) -> DataLoader:
        """This rank's share of `split`. With `by_length` (validation, test) rows go shortest history first, so
        each batch, trimmed to its longest row, carries little padding: metrics are per-user averages and do not
        depend on the order, and on Amazon data (histories of 7 against windows of 50) encoding the users was
        most of a validation pass. Under the trainer's `limit_{val,test}_batches` (`limit`) the evaluated users
        stay the first ones in split order, as without the sorting; only their order changes. `recsys predict`
        keeps the split's order. `users` draws that many rows at random (seeded) before the ranks share them."""
        world, rank = self._world()
        rows = np.arange(len(split))
        if users is not None and users < len(split):
            rows = np.sort(np.random.default_rng(self.seed).choice(len(split), users, replace=False))
        rows = rows[rank::world]
        if limit is not None:
            batches = -(-rows.size // self.eval_batch_size)
            kept = min(limit, batches) if isinstance(limit, int) else max(int(batches * limit), 1 if limit > 0 else 0)
            rows = rows[: kept * self.eval_batch_size]
        if by_length:
            rows = rows[np.argsort(np.minimum(split.history.lengths[rows], self.max_len), kind="stable")]
        return DataLoader(
            rows.tolist(), batch_size=self.eval_batch_size, shuffle=False,
            collate_fn=EvalCollator(split, self.max_len), num_workers=self.num_workers,
        )  # fmt: skip

    def _limit(self, name: str) -> int | float | None:
        trainer = getattr(self, "trainer", None)
        return None if trainer is None else getattr(trainer, f"limit_{name}_batches", None)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.split.valid, self._limit("val"), users=self.val_users)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.split.test, self._limit("test"))

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self.split.test, by_length=False)
