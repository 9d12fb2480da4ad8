"""Metrics from ranks: hand-computed cases, torchmetrics' retrieval metrics as a reference, properties."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.retrieval import RetrievalMRR, RetrievalNormalizedDCG, RetrievalRecall

from recsys.eval.metrics import (
    RankingMetrics,
    hits_from_ranks,
    hits_from_topk,
    mrr_at_k,
    mrr_from_hits,
    ndcg_at_k,
    ndcg_from_hits,
    ranks_from_topk,
    recall_at_k,
    recall_from_hits,
)


def test_hand_computed_single_target() -> None:
    ranks = torch.tensor([1, 2, 0, 10, 11])
    assert recall_at_k(ranks, 10).tolist() == [1, 1, 0, 1, 0]
    assert ndcg_at_k(ranks, 10).tolist() == pytest.approx([1.0, 1 / math.log2(3), 0.0, 1 / math.log2(11), 0.0])
    assert mrr_at_k(ranks, 10).tolist() == pytest.approx([1.0, 0.5, 0.0, 0.1, 0.0])
    metric = RankingMetrics((1, 10))
    metric.update(ranks=ranks)
    out = metric.compute()
    assert out["recall@1"].item() == pytest.approx(0.2)
    assert out["recall@10"].item() == pytest.approx(0.6)
    assert out["mrr@10"].item() == pytest.approx((1 + 0.5 + 0.1) / 5)
    assert out["ndcg@10"].item() == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 5)


def test_rank_k_counts_and_rank_k_plus_1_does_not() -> None:
    """Catches an off-by-one between 0-based positions and 1-based ranks."""
    topk = torch.tensor([[5, 6, 7], [5, 6, 7], [5, 6, 7]])
    ranks = ranks_from_topk(topk, torch.tensor([5, 7, 8]))
    assert ranks.tolist() == [1, 3, 0]
    assert recall_at_k(ranks, 3).tolist() == [1, 1, 0]
    assert recall_at_k(ranks, 2).tolist() == [1, 0, 0]
    assert ndcg_at_k(ranks, 3)[0].item() == 1.0  # rank 1 has gain 1/log2(2), not 1/log2(3)
    assert mrr_at_k(ranks, 3).tolist() == pytest.approx([1.0, 1 / 3, 0.0])


def test_ndcg_is_truncated_at_k() -> None:
    """A target at rank 11 contributes nothing to NDCG@10 (an untruncated NDCG would give 1/log2(12))."""
    assert ndcg_at_k(torch.tensor([11]), 10).item() == 0.0
    hits = torch.zeros(1, 20, dtype=torch.bool)
    hits[0, 10] = True
    assert ndcg_from_hits(hits, torch.tensor([1]), 10).item() == 0.0


def test_ideal_dcg_uses_min_of_targets_and_k() -> None:
    """15 targets filling the top 10 is a perfect top-10: the ideal DCG stops at K, not at 15."""
    hits = torch.ones(1, 10, dtype=torch.bool)
    assert ndcg_from_hits(hits, torch.tensor([15]), 10).item() == pytest.approx(1.0)
    assert recall_from_hits(hits, torch.tensor([15]), 10).item() == pytest.approx(10 / 15)
    two = torch.tensor([[False, True, True]])
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_from_hits(two, torch.tensor([2]), 3).item() == pytest.approx(expected)


def test_padding_and_missing_ids_never_hit() -> None:
    """Item 0 (padding) and -1 (no result) in a top-K list must not match anything, not even padded targets."""
    topk = torch.tensor([[0, -1, 3], [0, 0, 0]])
    assert ranks_from_topk(topk, torch.tensor([-1, 4])).tolist() == [-1, 0]
    hits, n_targets = hits_from_topk(topk, torch.tensor([[0, 3], [0, -1]]))
    assert hits.tolist() == [[False, False, True], [False, False, False]]
    assert n_targets.tolist() == [1, 0]


def test_rows_without_target_are_skipped_not_missed() -> None:
    metric = RankingMetrics((10,))
    metric.update(ranks=torch.tensor([1, -1, -1]))
    assert metric.compute()["recall@10"].item() == 1.0
    assert metric.count.item() == 1
    hits_metric = RankingMetrics((2,))
    hits_metric.update(hits=torch.tensor([[True, False], [False, False]]), n_targets=torch.tensor([1, 0]))
    assert hits_metric.compute()["recall@2"].item() == 1.0


def test_empty_metric_is_nan() -> None:
    metric = RankingMetrics((10,))
    metric.update(ranks=torch.tensor([-1]))
    assert math.isnan(metric.compute()["recall@10"].item())


def _reference(scores: torch.Tensor, relevant: torch.Tensor, k: int) -> dict[str, float]:
    indexes = torch.arange(scores.shape[0])[:, None].expand_as(scores)
    out = {}
    for name, cls in (("recall", RetrievalRecall), ("ndcg", RetrievalNormalizedDCG), ("mrr", RetrievalMRR)):
        metric = cls(top_k=k)
        metric.update(scores.flatten(), relevant.flatten(), indexes=indexes.flatten())
        out[name] = metric.compute().item()
    return out


@pytest.mark.parametrize("k", [1, 5, 10])
def test_single_target_matches_torchmetrics(k: int) -> None:
    g = torch.Generator().manual_seed(k)
    users, items = 64, 40
    scores = torch.rand(users, items, generator=g)
    target = torch.randint(1, items, (users,), generator=g)
    relevant = torch.zeros(users, items, dtype=torch.bool)
    relevant[torch.arange(users), target] = True
    topk = torch.topk(scores, 12).indices  # column j is item j; item 0 is never a target here
    ranks = ranks_from_topk(topk, target)
    metric = RankingMetrics((k,))
    metric.update(ranks=ranks)
    ours = metric.compute()
    ref = _reference(scores, relevant, k)
    for name in ("recall", "ndcg", "mrr"):
        assert ours[f"{name}@{k}"].item() == pytest.approx(ref[name], abs=1e-6), name


@pytest.mark.parametrize("k", [3, 10])
def test_several_targets_match_torchmetrics(k: int) -> None:
    g = torch.Generator().manual_seed(100 + k)
    users, items = 48, 30
    scores = torch.rand(users, items, generator=g)
    relevant = torch.rand(users, items, generator=g) < 0.15
    relevant[:, 0] = False
    relevant[torch.arange(users), torch.randint(1, items, (users,), generator=g)] = True  # >= 1 target each
    topk = torch.topk(scores, k).indices
    hits = relevant.gather(1, topk)
    metric = RankingMetrics((k,))
    metric.update(hits=hits, n_targets=relevant.sum(dim=1))
    ours = metric.compute()
    ref = _reference(scores, relevant, k)
    for name in ("recall", "ndcg", "mrr"):
        assert ours[f"{name}@{k}"].item() == pytest.approx(ref[name], abs=1e-6), name


def test_rank_and_hit_paths_agree() -> None:
    ranks = torch.tensor([0, 1, 2, 5, 9, 10, 3])
    hits, n_targets = hits_from_ranks(ranks, 10)
    for k in (1, 3, 10):
        assert torch.allclose(recall_at_k(ranks, k), recall_from_hits(hits, n_targets, k))
        assert torch.allclose(ndcg_at_k(ranks, k), ndcg_from_hits(hits, n_targets, k))
        assert torch.allclose(mrr_at_k(ranks, k), mrr_from_hits(hits, n_targets, k))


def test_coverage_and_popularity() -> None:
    popularity = torch.tensor([0, 10, 20, 30, 40, 50])
    metric = RankingMetrics((1, 2), n_items=5, item_popularity=popularity)
    metric.update(ranks=torch.tensor([1, 0]), topk=torch.tensor([[1, 2], [1, -1]]))
    out = metric.compute()
    assert out["coverage@1"].item() == pytest.approx(1 / 5)
    assert out["coverage@2"].item() == pytest.approx(2 / 5)
    assert out["popularity@1"].item() == pytest.approx(10.0)
    assert out["popularity@2"].item() == pytest.approx((10 + 20 + 10) / 3)


def test_narrow_hit_matrix_is_rejected() -> None:
    with pytest.raises(ValueError, match="K_max"):
        RankingMetrics((10,)).update(hits=torch.ones(2, 5, dtype=torch.bool), n_targets=torch.ones(2))


def test_batches_and_ranks_merge_like_one_pass() -> None:
    """Sum states: splitting the data over batches or over DDP ranks (merge_state) gives the same numbers."""
    g = torch.Generator().manual_seed(1)
    ranks = torch.randint(0, 30, (200,), generator=g)
    topk = torch.randint(1, 50, (200, 20), generator=g)
    whole = RankingMetrics((5, 20), n_items=50)
    whole.update(ranks=ranks, topk=topk)
    rank0, rank1 = RankingMetrics((5, 20), n_items=50), RankingMetrics((5, 20), n_items=50)
    rank0.update(ranks=ranks[:77], topk=topk[:77])
    rank1.update(ranks=ranks[77:], topk=topk[77:])
    rank0.merge_state(rank1)
    expected, merged = whole.compute(), rank0.compute()
    for key in expected:
        assert merged[key].item() == pytest.approx(expected[key].item()), key
    assert set(whole._reductions) >= {"recall", "ndcg", "mrr", "count", "recommended"}
    assert all(fn.__name__ == "dim_zero_sum" for fn in whole._reductions.values())


ranks_strategy = st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=80)


@settings(max_examples=60, deadline=None, database=None)
@given(ranks_strategy)
def test_recall_never_decreases_with_k_and_all_in_unit_interval(values: list[int]) -> None:
    ranks = torch.tensor(values)
    metric = RankingMetrics((1, 5, 10, 20, 50))
    metric.update(ranks=ranks)
    out = metric.compute()
    recalls = [out[f"recall@{k}"].item() for k in metric.ks]
    assert recalls == sorted(recalls)
    assert all(0.0 <= v.item() <= 1.0 for v in out.values())
    for k in metric.ks:  # MRR <= NDCG <= Recall for one target
        assert out[f"mrr@{k}"].item() <= out[f"ndcg@{k}"].item() + 1e-12 <= out[f"recall@{k}"].item() + 2e-12


@st.composite
def hit_matrices(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor]:
    rows = draw(st.integers(1, 20))
    width = 12
    flat = draw(st.lists(st.booleans(), min_size=rows * width, max_size=rows * width))
    hits = torch.tensor(flat).reshape(rows, width)
    extra = torch.tensor(draw(st.lists(st.integers(0, 5), min_size=rows, max_size=rows)))
    return hits, hits.sum(dim=1) + extra


@settings(max_examples=60, deadline=None, database=None)
@given(hit_matrices())
def test_hit_metrics_in_unit_interval(sample: tuple[torch.Tensor, torch.Tensor]) -> None:
    hits, n_targets = sample
    for k in (1, 4, 12):
        for fn in (recall_from_hits, ndcg_from_hits, mrr_from_hits):
            values = fn(hits, n_targets, k)
            assert torch.all((values >= 0) & (values <= 1 + 1e-12)), fn.__name__


@settings(max_examples=40, deadline=None, database=None)
@given(st.lists(st.integers(1, 8), min_size=1, max_size=30), st.sampled_from([1, 3, 10]))
def test_perfect_ranker_scores_one(n_targets_list: list[int], k: int) -> None:
    n_targets = torch.tensor(n_targets_list)
    hits = torch.arange(k)[None, :] < n_targets[:, None]  # every target ahead of every non-target
    metric = RankingMetrics((k,))
    metric.update(hits=hits, n_targets=n_targets)
    out = metric.compute()
    assert out[f"ndcg@{k}"].item() == pytest.approx(1.0)
    assert out[f"mrr@{k}"].item() == pytest.approx(1.0)
    expected_recall = (n_targets.clamp(max=k) / n_targets).double().mean().item()
    assert out[f"recall@{k}"].item() == pytest.approx(expected_recall)
    single = RankingMetrics((k,))
    single.update(ranks=torch.ones(len(n_targets_list), dtype=torch.int64))
    assert all(v.item() == pytest.approx(1.0) for v in single.compute().values())


@settings(max_examples=40, deadline=None, database=None)
@given(st.lists(st.integers(11, 500), min_size=1, max_size=30))
def test_ranker_that_never_returns_the_target_scores_zero(far_ranks: list[int]) -> None:
    metric = RankingMetrics((1, 5, 10))
    metric.update(ranks=torch.tensor(far_ranks))
    assert all(v.item() == 0.0 for v in metric.compute().values())
    missing = RankingMetrics((10,))
    missing.update(hits=torch.zeros(len(far_ranks), 10, dtype=torch.bool), n_targets=torch.ones(len(far_ranks)))
    assert all(v.item() == 0.0 for v in missing.compute().values())
