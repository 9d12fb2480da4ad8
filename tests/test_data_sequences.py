from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys.data.sequences import Sequences


def _seqs(rows: list[list[int]], users: list[int] | None = None) -> Sequences:
    users = users if users is not None else list(range(len(rows)))
    df = pl.DataFrame(
        {
            "user_idx": [u for u, r in zip(users, rows, strict=True) for _ in r],
            "item_idx": [i for r in rows for i in r],
        }
    )
    return Sequences.from_interactions(df)


def test_from_interactions_groups_rows_in_order() -> None:
    s = _seqs([[5, 6, 7], [1], [2, 3]], users=[0, 3, 4])
    assert s.users.tolist() == [0, 3, 4]
    assert s.lengths.tolist() == [3, 1, 2]
    assert s.row(0).tolist() == [5, 6, 7]
    assert s.row(2).tolist() == [2, 3]


def test_windows_left_pad_and_keep_most_recent() -> None:
    s = _seqs([[1, 2, 3, 4, 5], [7], []][:2])
    w = s.windows(3)
    assert w.tolist() == [[3, 4, 5], [0, 0, 7]]
    assert s.windows(6, np.array([1])).tolist() == [[0, 0, 0, 0, 0, 7]]


def test_drop_last_and_last() -> None:
    s = _seqs([[1, 2, 3], [4, 5], [6]])
    dropped = s.drop_last(2)
    assert [dropped.row(r).tolist() for r in range(3)] == [[1], [], []]
    assert s.last(1).tolist() == [3, 5, 6]
    with pytest.raises(ValueError):
        s.last(2)


def test_select_reorders_rows() -> None:
    s = _seqs([[1, 2], [3], [4, 5, 6]])
    sel = s.select(np.array([2, 0]))
    assert sel.users.tolist() == [2, 0]
    assert [sel.row(r).tolist() for r in range(2)] == [[4, 5, 6], [1, 2]]
