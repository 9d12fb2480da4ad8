from __future__ import annotations

import numpy as np
import polars as pl

from recsys.data.collate import CausalCollator, ClozeCollator, EvalCollator
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


def test_eval_batch_carries_history_and_target() -> None:
    split = leave_one_out(_seqs([[1, 2, 3, 4, 5], [6, 7, 8]]))
    batch = EvalCollator(split.test, max_len=3)([1, 0])
    assert batch["item_seq"].tolist() == [[0, 6, 7], [2, 3, 4]]
    assert batch["target"].tolist() == [8, 5]
    assert batch["row"].tolist() == [1, 0]
