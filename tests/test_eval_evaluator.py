"""The Evaluator end to end on tiny splits with fake models whose every score is chosen by the test."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from recsys.data.collate import EvalCollator
from recsys.data.sequences import Sequences
from recsys.data.split import EvalSplit, full_history, leave_one_out
from recsys.eval import (
    EvalResult,
    Evaluator,
    IndexSpec,
    PopularityModel,
    RankingMetrics,
    SampledRanking,
    format_table,
)

N_ITEMS = 12


def _split() -> EvalSplit:
    """Test split of three users: histories [1,2,3,4] -> 5, [6,7,8] -> 9, [2,4] -> 6."""
    items = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 2, 4, 6])
    sequences = Sequences(items, np.array([0, 5, 9, 12]), np.array([0, 1, 2]))
    return leave_one_out(sequences).test


def _loader(split: EvalSplit, batch_size: int = 2, max_len: int = 50) -> DataLoader:
    return DataLoader(list(range(len(split))), batch_size=batch_size, collate_fn=EvalCollator(split, max_len))


class ScoreModel(nn.Module):
    """score(user, item) = scores[user, item], through one-hot item vectors, so tests set every rank."""

    def __init__(self, scores: Tensor) -> None:
        super().__init__()
        self.user_scores = nn.Parameter(scores.float())
        self.register_buffer("items", torch.eye(scores.shape[1]))
        self.exports = 0

    def encode(self, batch: dict[str, Tensor]) -> Tensor:
        assert not torch.is_grad_enabled()
        assert not self.training
        return self.user_scores[batch["user_idx"]]

    def item_embeddings(self) -> Tensor:
        self.exports += 1
        return self.items


def _scores_with_targets_at(ranks: dict[int, int], users: int = 3) -> Tensor:
    """Each user's target (5, 9, 6) lands at the given 1-based rank among items 1..12."""
    targets = {0: 5, 1: 9, 2: 6}
    scores = torch.zeros(users, N_ITEMS + 1)
    for user, rank in ranks.items():
        others = [i for i in range(1, N_ITEMS + 1) if i != targets[user]]
        order = others[: rank - 1] + [targets[user]] + others[rank - 1 :]
        for position, item in enumerate(order):
            scores[user, item] = 100.0 - position
    return scores


def test_known_ranks_give_known_metrics() -> None:
    split = _split()
    model = ScoreModel(_scores_with_targets_at({0: 1, 1: 3, 2: 11}))
    result = Evaluator(N_ITEMS, ks=(1, 10)).evaluate(model, _loader(split), split)
    assert result.n_users == 3
    assert result.metrics["recall@1"] == pytest.approx(1 / 3)
    assert result.metrics["recall@10"] == pytest.approx(2 / 3)
    assert result.metrics["mrr@10"] == pytest.approx((1 + 1 / 3) / 3)
    assert result.metrics["ndcg@10"] == pytest.approx((1 + 1 / np.log2(4)) / 3)
    assert result.protocol == "full ranking over 12 items, leave-one-out (test), seen items kept, K=1,10"
    assert model.training  # put back the way it came


def test_index_is_built_once_per_pass_and_batches_match_evaluate() -> None:
    """The per-batch path a LightningModule uses gives what evaluate() gives."""
    split = _split()
    model = ScoreModel(_scores_with_targets_at({0: 2, 1: 5, 2: 1})).eval()
    evaluator = Evaluator(N_ITEMS, ks=(3, 5))
    metric = evaluator.metric()
    evaluator.prepare(model, split)
    for batch in _loader(split, batch_size=1):
        ranked = evaluator.rank_batch(model, batch)
        metric.update(ranks=ranked.ranks, topk=ranked.topk)
    assert model.exports == 1
    expected = evaluator.evaluate(model, _loader(split, batch_size=3), split).metrics
    assert {key: value.item() for key, value in metric.compute().items()} == pytest.approx(expected)


def test_sharded_batches_merge_like_ddp() -> None:
    split = _split()
    model = ScoreModel(_scores_with_targets_at({0: 2, 1: 7, 2: 1})).eval()
    evaluator = Evaluator(N_ITEMS, ks=(5,))
    evaluator.prepare(model, split)
    shards = [evaluator.metric(), evaluator.metric()]
    for i, batch in enumerate(_loader(split, batch_size=1)):
        ranked = evaluator.rank_batch(model, batch)
        shards[i % 2].update(ranks=ranked.ranks, topk=ranked.topk)
    shards[0].merge_state(shards[1])
    expected = evaluator.evaluate(model, _loader(split), split).metrics
    assert {key: value.item() for key, value in shards[0].compute().items()} == pytest.approx(expected)


def test_seen_items_come_from_the_full_history_not_the_window() -> None:
    """User 0 has seen 1..4; with a window of 2 the model input only shows 3, 4, but 1 and 2 are seen too."""
    split = _split()
    scores = torch.zeros(3, N_ITEMS + 1)
    scores[0, [1, 2, 5]] = torch.tensor([10.0, 9.0, 8.0])  # seen 1 and 2 outrank the target 5
    model = ScoreModel(scores)
    loader = _loader(split, max_len=2)
    kept = Evaluator(N_ITEMS, ks=(1, 3)).evaluate(model, loader, split)
    excluded = Evaluator(N_ITEMS, ks=(1, 3), exclude_seen=True).evaluate(model, loader, split)
    ranked_first = Evaluator(N_ITEMS, ks=(1,), exclude_seen=True)
    ranked_first.prepare(model.eval(), split)
    batch = next(iter(_loader(split, batch_size=1, max_len=2)))
    assert batch["item_seq"].tolist() == [[3, 4]]
    assert ranked_first.rank_batch(model, batch).ranks.tolist() == [1]
    assert kept.metrics["recall@1"] == 0.0 and kept.metrics["mrr@3"] == pytest.approx(1 / 9)
    assert "seen items excluded" in excluded.protocol
    assert excluded.metrics["recall@1"] == pytest.approx(1 / 3)


def test_constant_scores_cannot_win_by_tie_order() -> None:
    """With every score equal, the index's tie order would put item 1 first; ties count against the target."""
    split = _split()
    model = ScoreModel(torch.ones(3, N_ITEMS + 1))
    result = Evaluator(N_ITEMS, ks=(10,)).evaluate(model, _loader(split), split)
    assert result.metrics["recall@10"] == 0.0
    flat_popularity = PopularityModel(np.r_[0, np.ones(N_ITEMS)])
    assert Evaluator(N_ITEMS, ks=(10,)).evaluate(flat_popularity, _loader(split), split).metrics["recall@10"] == 0.0


def test_ties_below_the_target_do_not_hurt_it() -> None:
    split = _split()
    scores = torch.zeros(3, N_ITEMS + 1)
    scores[:, [5, 9, 6]] = 1.0  # targets 5, 9, 6 score 1 for everyone; the rest tie at 0
    result = Evaluator(N_ITEMS, ks=(3,)).evaluate(ScoreModel(scores), _loader(split), split)
    assert result.metrics["recall@3"] == 1.0 and result.metrics["mrr@3"] == pytest.approx(1 / 3)


def test_rows_without_target_are_not_counted() -> None:
    split = full_history(Sequences(np.array([1, 2, 3]), np.array([0, 3]), np.array([0])))
    evaluator = Evaluator(N_ITEMS, ks=(5,))
    model = ScoreModel(torch.rand(1, N_ITEMS + 1)).eval()
    evaluator.prepare(model, split)
    ranked = evaluator.rank_batch(model, next(iter(_loader(split))))
    assert ranked.ranks.tolist() == [-1]
    assert ranked.topk.shape == (1, 5) and (ranked.topk > 0).all()


class ListModel(nn.Module):
    """A generative model that returns fixed lists, recording the k it was asked for."""

    def __init__(self, lists: dict[int, list[int]]) -> None:
        super().__init__()
        self.lists = lists
        self.asked: list[int] = []

    def generate(self, batch: dict[str, Tensor], k: int) -> Tensor:
        self.asked.append(k)
        rows = [(self.lists[int(u)] + [0] * k)[:k] for u in batch["user_idx"]]
        return torch.tensor(rows)


def test_generative_model_ranks_by_position() -> None:
    split = _split()
    model = ListModel({0: [1, 5, 2], 1: [9], 2: [0, 6]})  # 0 = "no item": a wasted slot, never a hit
    result = Evaluator(N_ITEMS, ks=(1, 3)).evaluate(model, _loader(split, batch_size=3), split)
    assert result.metrics["recall@1"] == pytest.approx(1 / 3)
    assert result.metrics["recall@3"] == pytest.approx(1.0)
    assert result.metrics["mrr@3"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert model.asked == [3]


def test_generative_model_with_seen_exclusion_asks_for_more() -> None:
    split = _split()
    model = ListModel({0: [1, 2, 3, 5], 1: [9], 2: [2, 6]})
    result = Evaluator(N_ITEMS, ks=(1,), exclude_seen=True).evaluate(model, _loader(split, batch_size=3), split)
    # histories of 2, 3 and 4 items: users go in groups of similar length, each asked for k + its longest history
    assert model.asked == [1 + 3, 1 + 4]
    assert result.metrics["recall@1"] == pytest.approx(1.0)


def test_generation_groups_cover_every_row_once_within_the_budget() -> None:
    from recsys.eval.evaluator import generation_groups

    counts = np.random.default_rng(0).integers(0, 300, size=1000)
    counts[7] = 5000  # one history longer than the budget allows with anyone else
    groups = generation_groups(counts, k=20, budget=4096)
    assert sorted(np.concatenate(groups).tolist()) == list(range(1000))
    for rows in groups:
        want = 20 + counts[rows].max()
        assert len(rows) == 1 or len(rows) * want <= 4096
        assert want <= 1.5 * (20 + counts[rows].min()) or len(rows) == 1
    assert [7] in [g.tolist() for g in groups]


def test_sampled_protocol_perfect_and_hopeless_models() -> None:
    split = _split()
    perfect = _scores_with_targets_at({0: 1, 1: 1, 2: 1})
    protocol = SampledRanking(5, seed=0)
    evaluator = Evaluator(N_ITEMS, ks=(1, 5), protocol=protocol)
    result = evaluator.evaluate(ScoreModel(perfect), _loader(split), split)
    assert all(result.metrics[f"{m}@{k}"] == 1.0 for m in ("recall", "ndcg", "mrr") for k in (1, 5))
    assert result.protocol.startswith("sampled: 5 uniform negatives (seed 0) of 12 items")
    hopeless = Evaluator(N_ITEMS, ks=(5,), protocol=protocol).evaluate(ScoreModel(-perfect), _loader(split), split)
    assert hopeless.metrics["recall@5"] == 0.0  # last among 1 + 5 candidates
    with pytest.raises(ValueError, match="generative"):
        Evaluator(N_ITEMS, protocol=protocol).prepare(ListModel({}), split)


def test_popularity_sampling_needs_counts() -> None:
    with pytest.raises(ValueError, match="item_popularity"):
        Evaluator(N_ITEMS, protocol=SampledRanking(5, "popularity"))


def test_misuse_fails_with_a_message() -> None:
    split = _split()
    with pytest.raises(RuntimeError, match="prepare"):
        Evaluator(N_ITEMS).rank_batch(ScoreModel(torch.zeros(3, N_ITEMS + 1)), next(iter(_loader(split))))
    with pytest.raises(ValueError, match="item_embeddings"):
        Evaluator(N_ITEMS + 1).prepare(ScoreModel(torch.zeros(3, N_ITEMS + 1)), split)
    with pytest.raises(TypeError, match="generate"):
        Evaluator(N_ITEMS).prepare(nn.Linear(2, 2), split)


def test_approximate_index_is_named_in_the_protocol() -> None:
    split = _split()
    evaluator = Evaluator(N_ITEMS, index=IndexSpec(kind="hnsw"))
    result = evaluator.evaluate(ScoreModel(_scores_with_targets_at({0: 1, 1: 1, 2: 1})), _loader(split), split)
    assert "approximate HNSW" in result.protocol and result.metrics["recall@10"] == 1.0


def test_result_renders_with_its_protocol() -> None:
    split = _split()
    result = Evaluator(N_ITEMS, ks=(10,), item_popularity=np.arange(N_ITEMS + 1)).evaluate(
        PopularityModel(np.arange(N_ITEMS + 1)), _loader(split), split
    )
    assert result.model == "PopularityModel" and "popularity@10" in result.metrics
    assert EvalResult.from_dict(json.loads(result.to_json())) == result
    table = format_table([result])
    assert result.protocol in table and "recall@10" in table and result.protocol in str(result)


def test_popularity_model_ranks_by_count() -> None:
    counts = np.array([0, 5, 50, 1, 20])
    model = PopularityModel(counts)
    assert model.item_embeddings().shape == (5, 1)
    scores = (model.encode({"item_seq": torch.zeros(2, 3)}) @ model.item_embeddings().T)[0, 1:]
    assert torch.argsort(scores, descending=True).add(1).tolist() == [2, 4, 1, 3]


def test_metric_object_carries_evaluator_settings() -> None:
    metric = Evaluator(N_ITEMS, ks=(20, 5), item_popularity=np.ones(N_ITEMS + 1)).metric()
    assert isinstance(metric, RankingMetrics) and metric.ks == (5, 20) and metric.n_items == N_ITEMS
