from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys.data.collate import CausalCollator, ClozeCollator, EvalCollator, TrainWindows
from recsys.data.sequences import Sequences
from recsys.data.split import leave_one_out


def _seqs(rows: list[list[int]]) -> Sequences:
    df = pl.DataFrame(
        {"user_idx": [u for u, r in enumerate(rows) for _ in r], "item_idx": [i for r in rows for i in r]}
    )
    return Sequences.from_interactions(df)


def test_causal_targets_are_the_next_item() -> None:
    batch = CausalCollator(_seqs([[1, 2, 3, 4], [5, 6]]), max_len=3)([0, 1])
    assert batch["item_seq"].tolist() == [[1, 2, 3], [0, 0, 5]]
    assert batch["targets"].tolist() == [[2, 3, 4], [0, 0, 6]]
    assert batch["user_idx"].tolist() == [0, 1]


def test_cloze_masks_only_real_items_and_at_least_one() -> None:
    seqs = _seqs([[1, 2, 3, 4, 5, 6], [7, 8]] * 50)
    batch = ClozeCollator(seqs, max_len=5, mask_token=99, mask_prob=0.3, seed=1)(list(range(100)))
    item_seq, targets = batch["item_seq"].numpy(), batch["targets"].numpy()
    masked = item_seq == 99
    assert masked.any(axis=1).all()
    window = seqs.windows(5)
    assert np.array_equal(targets[masked], window[masked])
    assert (targets[~masked] == 0).all()
    assert (window[masked] > 0).all()
    assert 0.15 < masked[window > 0].mean() < 0.5


def test_cloze_masks_are_a_function_of_the_batch() -> None:
    """A resumed run rebuilds its remaining batches in order and must mask them as the interrupted run did:
    the same batch gets the same masks whatever was collated before it; other batches or seeds get others."""
    seqs = _seqs([list(range(1, 21)), list(range(30, 50))] * 20)

    def masked(collator: ClozeCollator, indices: list[int]) -> np.ndarray:
        return (collator(indices)["item_seq"] == 99).numpy()

    first = ClozeCollator(seqs, max_len=20, mask_token=99, mask_prob=0.3, seed=3)
    second = ClozeCollator(seqs, max_len=20, mask_token=99, mask_prob=0.3, seed=3)
    batch = [5, 17, 2, 33, 8]
    masked(first, [0, 1, 2])  # the first collator has already made a batch; the second has not
    assert np.array_equal(masked(first, batch), masked(second, batch))
    assert not np.array_equal(masked(first, batch), masked(first, [17, 5, 2, 33, 8]))
    other_seed = ClozeCollator(seqs, max_len=20, mask_token=99, mask_prob=0.3, seed=4)
    assert not np.array_equal(masked(first, batch), masked(other_seed, batch))
    with pytest.raises(ValueError, match="seed=-1"):
        ClozeCollator(seqs, max_len=20, mask_token=99, mask_prob=0.3, seed=-1)


def test_eval_batch_carries_history_and_target() -> None:
    split = leave_one_out(_seqs([[1, 2, 3, 4, 5], [6, 7, 8]]))
    batch = EvalCollator(split.test, max_len=3)([1, 0])
    assert batch["item_seq"].tolist() == [[0, 6, 7], [2, 3, 4]]
    assert batch["target"].tolist() == [8, 5]
    assert batch["row"].tolist() == [1, 0]


def test_all_windows_make_every_item_a_target_once() -> None:
    rows = [list(range(1, 12)), [20, 21], [30], list(range(40, 45))]
    seqs = _seqs(rows)
    windows = TrainWindows(seqs, max_len=3, mode="all")
    batch = CausalCollator(seqs, max_len=3, windows=windows)(list(range(len(windows))))
    targets = batch["targets"].numpy()
    expected = sorted(i for r in rows for i in r[1:])
    assert sorted(targets[targets > 0].tolist()) == expected
    # inputs precede their targets within the same user
    for inputs, outs in zip(batch["item_seq"].tolist(), targets.tolist(), strict=True):
        for i, t in zip(inputs, outs, strict=True):
            if t:
                assert t == i + 1


def test_strided_windows_train_every_item_once_with_a_long_history() -> None:
    rows = [list(range(1, 13)), [20, 21], [30], list(range(40, 45))]
    seqs = _seqs(rows)
    windows = TrainWindows(seqs, max_len=4, mode="all", stride=2)
    batch = CausalCollator(seqs, max_len=4, windows=windows)(list(range(len(windows))))
    item_seq, targets = batch["item_seq"].numpy(), batch["targets"].numpy()
    assert sorted(targets[targets > 0].tolist()) == sorted(i for r in rows for i in r[1:])
    # row 0 (12 items) ends windows at items 12, 10, 8, 6 and 4; the last four own 2 targets each
    first_user = item_seq[batch["user_idx"].numpy() == 0]
    assert first_user[:, -1].tolist() == [11, 9, 7, 5, 3]
    index_in_row = {item: j for r in rows for j, item in enumerate(r)}
    for inputs, outs in zip(item_seq.tolist(), targets.tolist(), strict=True):
        for column, (i, t) in enumerate(zip(inputs, outs, strict=True)):
            if t:
                assert t == i + 1
                # every target sees max_len - stride = 2 items of history, or all that its row has before it
                history = sum(x > 0 for x in inputs[: column + 1])
                assert history >= min(2, index_in_row[t])


def test_stride_of_max_len_is_plain_tiling() -> None:
    """Windows of max_len + 1 items end every max_len items from the row's end, overlapping by one item."""
    seqs = _seqs([list(range(1, 13))])
    for windows in (TrainWindows(seqs, 5, "all"), TrainWindows(seqs, 5, "all", stride=5)):
        assert windows.owned is None  # tiles own every target they hold: nothing is masked
        batch = CausalCollator(seqs, 5, windows)(list(range(len(windows))))
        assert batch["item_seq"].tolist() == [[7, 8, 9, 10, 11], [2, 3, 4, 5, 6], [0, 0, 0, 0, 1]]
        assert batch["targets"].tolist() == [[8, 9, 10, 11, 12], [3, 4, 5, 6, 7], [0, 0, 0, 0, 2]]


def test_stride_is_checked() -> None:
    seqs = _seqs([[1, 2, 3]])
    with pytest.raises(ValueError, match="stride=6"):
        TrainWindows(seqs, 5, "all", stride=6)
    with pytest.raises(ValueError, match="not 'last'"):
        TrainWindows(seqs, 5, "last", stride=2)


def test_last_window_is_the_most_recent() -> None:
    seqs = _seqs([list(range(1, 12))])
    windows = TrainWindows(seqs, max_len=3, mode="last")
    assert len(windows) == 1
    assert CausalCollator(seqs, 3, windows)([0])["targets"].tolist() == [[9, 10, 11]]


def test_batches_drop_columns_that_are_padding_in_every_row() -> None:
    seqs = _seqs([[1, 2, 3], [4, 5]])
    batch = CausalCollator(seqs, max_len=10)([0, 1])
    assert batch["item_seq"].tolist() == [[1, 2], [0, 4]]
    assert batch["targets"].tolist() == [[2, 3], [0, 5]]
    split = leave_one_out(_seqs([[1, 2, 3, 4], [5, 6, 7]]))
    assert EvalCollator(split.test, max_len=10)([0, 1])["item_seq"].tolist() == [[1, 2, 3], [0, 5, 6]]


def test_trimmed_batches_give_the_same_user_vectors() -> None:
    import torch

    from recsys.models import BERT4Rec, SASRec

    split = leave_one_out(_seqs([[1, 2, 3, 4, 5], [6, 7, 8]]))
    trimmed = EvalCollator(split.test, max_len=8)([0, 1])
    full = {**trimmed, "item_seq": torch.from_numpy(split.test.history.windows(8))}
    assert trimmed["item_seq"].shape[1] < full["item_seq"].shape[1]
    for model in (SASRec(9, hidden_size=16, max_len=8), BERT4Rec(9, hidden_size=16, max_len=8)):
        model.eval()
        with torch.no_grad():
            assert torch.allclose(model.encode(trimmed), model.encode(full), atol=1e-5)
