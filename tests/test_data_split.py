"""Leave-one-out on hand-made cases: the targets are what every reported number depends on."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys.data.sequences import Sequences
from recsys.data.split import leave_one_out


def _seqs(rows: list[list[int]]) -> Sequences:
    df = pl.DataFrame(
        {"user_idx": [u for u, r in enumerate(rows) for _ in r], "item_idx": [i for r in rows for i in r]}
    )
    return Sequences.from_interactions(df)


def test_leave_one_out_targets_and_histories() -> None:
    split = leave_one_out(_seqs([[1, 2, 3, 4, 5], [6, 7, 8]]))
    assert [split.train.row(r).tolist() for r in range(2)] == [[1, 2, 3], [6]]
    assert split.valid.targets.tolist() == [4, 7]
    assert [split.valid.history.row(r).tolist() for r in range(2)] == [[1, 2, 3], [6]]
    assert split.test.targets.tolist() == [5, 8]
    # the test target is predicted from everything before it, the validation item included
    assert [split.test.history.row(r).tolist() for r in range(2)] == [[1, 2, 3, 4], [6, 7]]
    assert split.test.users.tolist() == [0, 1]


def test_short_users_train_only() -> None:
    split = leave_one_out(_seqs([[1, 2], [3, 4, 5], [6]]))
    assert split.test.users.tolist() == [1]
    assert split.valid.users.tolist() == [1]
    assert split.train.users.tolist() == [0, 1, 2]
    assert [split.train.row(r).tolist() for r in range(3)] == [[1, 2], [3], [6]]


def test_no_target_leaks_into_training() -> None:
    rng = np.random.default_rng(0)
    rows = [list(rng.integers(1, 50, size=rng.integers(3, 12))) for _ in range(40)]
    split = leave_one_out(_seqs(rows))
    for r, row in enumerate(rows):
        assert split.train.row(r).tolist() == row[:-2]
        assert split.test.targets[r] == row[-1]
        assert split.valid.targets[r] == row[-2]


def test_min_length_below_three_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        leave_one_out(_seqs([[1, 2, 3]]), min_length=2)
