from __future__ import annotations

import numpy as np

from recsys.data.sampling import LengthGroupedBatches


def test_every_index_once_per_epoch_in_a_new_order() -> None:
    lengths = np.random.default_rng(0).integers(1, 51, size=1000)
    sampler = LengthGroupedBatches(lengths, batch_size=32, seed=3, pool_batches=4)
    first, second = list(sampler), list(sampler)
    assert len(first) == len(sampler) == 32
    for epoch in (first, second):
        assert sorted(i for batch in epoch for i in batch) == list(range(1000))
    assert first != second


def test_batches_group_similar_lengths() -> None:
    lengths = np.random.default_rng(1).integers(1, 51, size=4096)
    grouped = list(LengthGroupedBatches(lengths, batch_size=64, seed=0))
    spread = np.mean([np.ptp(lengths[b]) for b in grouped])
    random_spread = np.mean([np.ptp(lengths[b]) for b in np.array_split(np.random.default_rng(2).permutation(4096), 64)])
    assert spread < random_spread / 4
