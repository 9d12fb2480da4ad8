from __future__ import annotations

from pathlib import Path

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


def test_datamodule_shuffles_plainly_unless_grouping_is_asked(prepared_synthetic: Path) -> None:
    from recsys.data import SequenceDataModule

    plain = SequenceDataModule(str(prepared_synthetic), max_len=20, batch_size=32).train_dataloader()
    assert plain.batch_sampler is not None and not isinstance(plain.batch_sampler, LengthGroupedBatches)
    first = [b["item_seq"] for b in plain]
    assert sum(len(b) for b in first) == len(plain.dataset)
    grouped = SequenceDataModule(str(prepared_synthetic), max_len=20, batch_size=32, length_grouped=True, length_pool=4)
    sampler = grouped.train_dataloader().batch_sampler
    assert isinstance(sampler, LengthGroupedBatches) and sampler.pool == 32 * 4
