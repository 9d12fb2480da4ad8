"""Full and sampled protocols: descriptions, and negatives that are valid, distinct and reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.eval.protocols import FullRanking, SampledRanking
from recsys.eval.seen import SeenItems


def test_descriptions_say_what_was_ranked() -> None:
    assert FullRanking().describe(12101) == "full ranking over 12,101 items"
    text = SampledRanking(100, "popularity", seed=0).describe(12101)
    assert text == "sampled: 100 popularity negatives (seed 0) of 12,101 items"


def test_candidates_hold_target_first_and_distinct_negatives() -> None:
    users = np.arange(50)
    targets = (users % 30) + 1
    cands = SampledRanking(20, seed=3).candidates(users, targets, n_items=30)
    assert cands.shape == (50, 21)
    assert (cands[:, 0] == targets).all()
    negatives = cands[:, 1:]
    assert ((negatives >= 1) & (negatives <= 30)).all()
    assert not (negatives == targets[:, None]).any()
    assert all(len(set(row)) == 20 for row in negatives.tolist())


def test_negatives_are_fixed_per_user_whatever_the_batching() -> None:
    protocol = SampledRanking(10, seed=7)
    users = np.arange(40)
    targets = np.full(40, 5)
    whole = protocol.candidates(users, targets, n_items=1000)
    reordered = protocol.candidates(users[::-1], targets, n_items=1000)[::-1]
    part = protocol.candidates(users[13:17], targets[13:17], n_items=1000)
    assert np.array_equal(whole, reordered)
    assert np.array_equal(whole[13:17], part)
    other_seed = SampledRanking(10, seed=8).candidates(users, targets, n_items=1000)
    assert not np.array_equal(whole, other_seed)


def test_seen_items_are_excluded_on_request() -> None:
    histories = [list(range(1, 16)), [2, 4, 6]]
    offsets = np.r_[0, np.cumsum([len(h) for h in histories])].astype(np.int64)
    seen = SeenItems(np.array([i for h in histories for i in h], dtype=np.int64), offsets)
    cands = SampledRanking(4, seed=0).candidates(np.array([0, 1]), np.array([20, 1]), n_items=20, seen=seen)
    for row, history in enumerate(histories):
        assert not set(cands[row, 1:].tolist()) & set(history)
    # 20 items, target 20, 15 seen: exactly items 16..19 remain, and all of them must be drawn
    assert sorted(cands[0, 1:].tolist()) == [16, 17, 18, 19]


def test_popularity_negatives_follow_counts() -> None:
    counts = np.zeros(101, dtype=np.int64)
    counts[1:51] = 1
    counts[1] = 2000  # item 1 dominates; items 51..100 have no interactions
    cands = SampledRanking(5, "popularity", seed=0).candidates(np.arange(2000), np.full(2000, 2), 100, counts)
    negatives = cands[:, 1:]
    assert negatives.max() <= 50
    assert (negatives == 1).any(axis=1).mean() > 0.95


def test_impossible_requests_fail() -> None:
    with pytest.raises(ValueError, match="need more than"):
        SampledRanking(10).candidates(np.arange(2), np.array([1, 2]), n_items=10)
    with pytest.raises(ValueError, match="item counts"):
        SampledRanking(3, "popularity").candidates(np.arange(2), np.array([1, 2]), n_items=10)
    counts = np.r_[0, np.ones(3), np.zeros(7)].astype(np.int64)
    with pytest.raises(ValueError, match="too few"):
        SampledRanking(5, "popularity").candidates(np.arange(2), np.array([1, 2]), 10, counts)
