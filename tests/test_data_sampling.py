from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.data.sampling import EpochBatches, LengthGroupedBatches, ResumableLoader


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


def _epoch(sampler: EpochBatches) -> list[list[int]]:
    return list(sampler)


def test_datamodule_strides_causal_windows_only(prepared_synthetic: Path) -> None:
    from recsys.data import SequenceDataModule

    plain = SequenceDataModule(str(prepared_synthetic), max_len=20, batch_size=32).train_dataloader()
    strided = SequenceDataModule(str(prepared_synthetic), max_len=20, batch_size=32, train_stride=5).train_dataloader()
    targets = [int((b["targets"] > 0).sum()) for loader in (plain, strided) for b in loader]
    n_plain = len(plain.batch_sampler)
    assert sum(targets[:n_plain]) == sum(targets[n_plain:])  # every item a target once either way
    assert len(strided.dataset) > len(plain.dataset)
    cloze = SequenceDataModule(str(prepared_synthetic), max_len=20, objective="cloze", train_stride=5)
    with pytest.raises(ValueError, match="train_stride"):
        cloze.train_dataloader()


def test_epoch_order_is_a_function_of_seed_and_epoch() -> None:
    a, b = EpochBatches(1000, 64, seed=5), EpochBatches(1000, 64, seed=5)
    first, second = _epoch(a), _epoch(a)
    assert len(first) == len(a) == 16 and first != second
    for epoch in (first, second):
        assert sorted(i for batch in epoch for i in batch) == list(range(1000))
    b.set_epoch(1)
    assert _epoch(b) == second  # a fresh sampler told "epoch 1" draws what the first drew second
    assert _epoch(EpochBatches(1000, 64, seed=6)) != first


def test_start_at_continues_the_interrupted_epoch_then_moves_on() -> None:
    for sampler, again in (
        (EpochBatches(500, 32, seed=1), EpochBatches(500, 32, seed=1)),
        (LengthGroupedBatches(np.arange(500) % 50 + 1, 32, seed=1, pool_batches=4),
         LengthGroupedBatches(np.arange(500) % 50 + 1, 32, seed=1, pool_batches=4)),
    ):  # fmt: skip
        full = [_epoch(sampler) for _ in range(3)]
        again.start_at(1, 5)
        assert _epoch(again) == full[1][5:]
        assert _epoch(again) == full[2]


def test_ranks_split_each_epoch_evenly_and_cover_every_row() -> None:
    shards = [EpochBatches(1003, 50, seed=2, world=4, rank=r) for r in range(4)]
    epochs = [_epoch(s) for s in shards]
    assert len({len(e) for e in epochs}) == 1 and len(shards[0]) == len(epochs[0])
    rows = [i for e in epochs for batch in e for i in batch]
    assert set(rows) == set(range(1003)) and len(rows) == 4 * 251  # 1,003 wrapped round to 1,004
    assert all(_epoch(s) != e for s, e in zip(shards, epochs, strict=True))  # next epoch: new shards


def test_loader_state_resumes_after_the_batches_handed_out() -> None:
    def loader() -> ResumableLoader:
        return ResumableLoader(list(range(300)), EpochBatches(300, 32, seed=4), collate_fn=lambda rows: rows)

    reference = loader()
    epochs = [list(reference) for _ in range(2)]
    interrupted = loader()
    taken = []
    for batch in interrupted:
        taken.append(batch)
        if len(taken) == 4:
            break
    state = interrupted.state_dict()
    assert state == {"epoch": 0, "batch": 4}
    resumed = loader()
    resumed.load_state_dict(state)
    assert taken + list(resumed) == epochs[0]
    assert resumed.state_dict() == {"epoch": 1, "batch": 0}  # an epoch-end checkpoint starts the next epoch
    assert list(resumed) == epochs[1]
    with pytest.raises(KeyError, match="batch"):
        loader().load_state_dict({"epoch": 0})


def test_loader_following_the_trainer_drops_a_position_in_an_epoch_it_ended() -> None:
    """Lightning ends the epoch a max_time stop falls in and resumes with the next one: a saved position in the
    stopped epoch then gives way to the trainer's epoch, from its first batch; in the same epoch it is kept."""
    trainer_epoch = {"now": 0}

    def loader() -> ResumableLoader:
        return ResumableLoader(list(range(300)), EpochBatches(300, 32, seed=4), trainer_epoch=lambda: trainer_epoch["now"],
                               collate_fn=lambda rows: rows)  # fmt: skip

    reference = loader()
    epochs = []
    for epoch in range(3):
        trainer_epoch["now"] = epoch
        epochs.append(list(reference))
    resumed = loader()
    resumed.load_state_dict({"epoch": 1, "batch": 4})
    trainer_epoch["now"] = 1
    assert list(resumed) == epochs[1][4:]  # the trainer resumes inside epoch 1: the position holds
    stopped = loader()
    stopped.load_state_dict({"epoch": 1, "batch": 4})
    trainer_epoch["now"] = 2
    assert list(stopped) == epochs[2]  # the trainer ended epoch 1 and starts epoch 2 afresh
    assert stopped.state_dict() == {"epoch": 3, "batch": 0}
