"""Training batch order: a pure function of (seed, epoch, rank), so a run resumed mid-epoch trains on exactly
the batches the interrupted epoch had left.

A DataLoader's usual shuffling draws from a generator whose state is not in the checkpoint, so Lightning
resumes a killed epoch with a fresh order: some windows are trained twice and others not at all in that epoch.
Here each epoch's order is re-derived from the seed and the epoch number, and `ResumableLoader` tells Lightning
(through `state_dict`) how many batches of that order are done.

Length grouping: with left padding and batches trimmed to their longest window, a batch costs its longest
member. Amazon histories average 9 items against a 50-item window, so a random batch almost always contains one
long user and pays for 50 columns; grouping similar lengths cuts most of that padding without changing what is
trained on (every window is still visited once per epoch, in a fresh random order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Sampler


class EpochBatches(Sampler[list[int]]):
    """Shuffled batches of `n` rows; with `world` > 1, this rank's share of every epoch.

    Every rank draws the same permutation (same seed and epoch) and takes every `world`-th row of it, the
    permutation wrapped round to a multiple of `world` so ranks step in lockstep (a few rows train twice per
    epoch, as with torch's DistributedSampler).
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, world: int = 1, rank: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is outside a world of {world}")
        self.n = n
        self.batch_size = batch_size
        self.seed = seed
        self.world = world
        self.rank = rank
        self.epoch = 0
        self._start: tuple[int, int] | None = None

    def __len__(self) -> int:
        return -(-self._shard_size() // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """For callers that number epochs themselves. Lightning calls set_epoch on a loader's `sampler`, not on its
        batch sampler, so under Lightning each iteration simply moves on to the next epoch (see `__iter__`)."""
        self.epoch = epoch

    def start_at(self, epoch: int, batch: int) -> None:
        """The next iteration is `epoch`, from its `batch`-th batch on (a resumed run)."""
        self._start = (epoch, batch)

    def follow(self, epoch: int) -> None:
        """The trainer is starting `epoch`. A resume position saved in another epoch is dropped: that epoch was
        ended early by a stop (Lightning's max_time ends the epoch it stops in, and a run resumed from there goes
        on with the next one), so `epoch` starts from its first batch."""
        if self.upcoming()[0] != epoch:
            self._start = (epoch, 0)

    def upcoming(self) -> tuple[int, int]:
        """(epoch, first batch) the next iteration will produce."""
        return self._start if self._start is not None else (self.epoch, 0)

    def __iter__(self) -> Iterator[list[int]]:
        epoch, skip = self.upcoming()
        self._start = None
        self.epoch = epoch + 1  # the next iteration is the next epoch, in a new order
        rng = np.random.default_rng((self.seed, epoch))
        for batch in self._batches(self._shard(rng), rng)[skip:]:
            yield batch.tolist()

    def _shard_size(self) -> int:
        return -(-self.n // self.world) if self.world > 1 else self.n

    def _shard(self, rng: np.random.Generator) -> np.ndarray:
        order = rng.permutation(self.n)
        if self.world == 1:
            return order
        order = np.resize(order, self._shard_size() * self.world)  # wraps round
        return order[self.rank :: self.world]

    def _batches(self, order: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        return [order[start : start + self.batch_size] for start in range(0, order.size, self.batch_size)]


class LengthGroupedBatches(EpochBatches):
    """Shuffle, cut into pools of `pool_batches` batches, sort each pool by length, batch it, shuffle batches."""

    def __init__(
        self, lengths: np.ndarray, batch_size: int, seed: int = 0, pool_batches: int = 64, world: int = 1,
        rank: int = 0,
    ) -> None:  # fmt: skip
        self.lengths = np.asarray(lengths)
        super().__init__(self.lengths.size, batch_size, seed, world, rank)
        self.pool = batch_size * pool_batches

    def _batches(self, order: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        batches: list[np.ndarray] = []
        for start in range(0, order.size, self.pool):
            pool = order[start : start + self.pool]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches.extend(np.array_split(pool, -(-pool.size // self.batch_size)))
        return [batches[i] for i in rng.permutation(len(batches))]


class ResumableLoader(DataLoader):
    """A DataLoader over an `EpochBatches` whose place in the epoch can be saved and restored.

    `state_dict` holds the epoch and the number of batches this loader has handed out in it (Lightning fetches
    sized loaders without prefetching, so at a checkpoint that is the number trained on); `load_state_dict` makes
    the next iteration continue that epoch's order after them. `trainer_epoch`, when given, says which epoch the
    trainer is starting at each iteration, so a saved position in an epoch the trainer has already ended is not
    replayed into the next one. SequenceDataModule carries this state in its own state_dict, which Lightning
    restores in time; having the methods also marks the loader resumable to Lightning.
    """

    batch_sampler: EpochBatches

    def __init__(self, dataset: Any, batch_sampler: EpochBatches,
                 trainer_epoch: Callable[[], int | None] | None = None, **kwargs: Any) -> None:
        super().__init__(dataset, batch_sampler=batch_sampler, **kwargs)
        self._epoch, self._handed_out = batch_sampler.upcoming()
        self._trainer_epoch = trainer_epoch

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        epoch = self._trainer_epoch() if self._trainer_epoch is not None else None
        if epoch is not None:
            self.batch_sampler.follow(epoch)
        self._epoch, self._handed_out = self.batch_sampler.upcoming()
        for batch in super().__iter__():
            self._handed_out += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        if self._handed_out >= len(self):  # saved at the end of an epoch: the next one starts afresh
            return {"epoch": self._epoch + 1, "batch": 0}
        return {"epoch": self._epoch, "batch": self._handed_out}

    def load_state_dict(self, state: dict[str, int]) -> None:
        missing = {"epoch", "batch"} - set(state)
        if missing:
            raise KeyError(f"training loader state lacks {sorted(missing)}: {state}")
        self.batch_sampler.start_at(int(state["epoch"]), int(state["batch"]))
