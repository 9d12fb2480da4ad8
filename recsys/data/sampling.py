"""Length-grouped batches: shuffled like any epoch, but each batch holds windows of similar length.

With left padding and batches trimmed to their longest window, a batch costs its longest member. Amazon
histories average 9 items against a 50-item window, so a random batch almost always contains one long user
and pays for 50 columns; grouping similar lengths cuts most of that padding without changing what is trained
on (every window is still visited once per epoch, in a fresh random order).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class LengthGroupedBatches(Sampler[list[int]]):
    """Shuffle, cut into pools of `pool_batches` batches, sort each pool by length, batch it, shuffle batches."""

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int = 0, pool_batches: int = 64) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool = batch_size * pool_batches
        self.epoch = 0

    def __len__(self) -> int:
        return -(-self.lengths.size // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        order = rng.permutation(self.lengths.size)
        batches: list[np.ndarray] = []
        for start in range(0, order.size, self.pool):
            pool = order[start : start + self.pool]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches.extend(np.array_split(pool, -(-pool.size // self.batch_size)))
        for i in rng.permutation(len(batches)):
            yield batches[i].tolist()
