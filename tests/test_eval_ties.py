"""Random tie-breaking: ranks land uniformly inside the tie group, nowhere else, and match the pessimistic
ranks whenever nothing ties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.data.sequences import Sequences
from recsys.eval import Evaluator, IndexSpec, SampledRanking, SeenItems, tie_aware_ranks
from recsys.eval.ties import random_tie_ranks


def _table(n_items: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    table = torch.randn(n_items + 1, dim, generator=generator)
    table[0] = 0
    return table


def test_constant_scores_give_chance() -> None:
    """A model that scores every item the same gets Recall@10 = 10 / N on average, not 0 and not 1."""
    n_items, users = 50, 4000
    table = torch.ones(n_items + 1, 4)
    target = torch.randint(1, n_items + 1, (users,), generator=torch.Generator().manual_seed(0))
    ranks = random_tie_ranks(torch.ones(users, 4), table, target, k_max=10, rng=np.random.default_rng(0))
    hit = ((ranks >= 1) & (ranks <= 10)).double().mean().item()
    assert hit == pytest.approx(10 / n_items, abs=0.02)
    assert set(ranks.tolist()) == set(range(11))  # every place 1..10 occurs, and misses (0)


def test_rank_stays_inside_the_tie_group() -> None:
    """3 items above the target, 5 identical to it (6 with it): its rank is always one of 4..9, each about
    equally often."""
    dim, n_items = 8, 30
    g = torch.Generator().manual_seed(1)
    user = torch.randn(1, dim, generator=g)
    table = _table(n_items, dim, g)
    table[1:] = -user / user.norm() * torch.rand(n_items, 1, generator=g)  # every item scores below 0
    for item in (2, 3, 4):
        table[item] = user  # strictly above
    for item in (10, 11, 12, 13, 14, 15):
        table[item] = 0.5 * user  # the tie group, target 12 among them
    users = user.repeat(6000, 1)
    ranks = random_tie_ranks(users, table, torch.full((6000,), 12), k_max=20, rng=np.random.default_rng(0))
    counts = np.bincount(ranks.numpy(), minlength=21)
    assert counts[:4].sum() == 0 and counts[10:].sum() == 0
    assert counts[4:10].min() > 6000 / 6 * 0.85


def test_without_ties_random_equals_pessimistic() -> None:
    dim, n_items, users = 16, 200, 64
    g = torch.Generator().manual_seed(2)
    table = _table(n_items, dim, g)
    vectors = torch.randn(users, dim, generator=g)
    target = torch.randint(1, n_items + 1, (users,), generator=g)
    target[:3] = -1
    scores = vectors @ table[1:].T
    top = torch.topk(scores, 21, dim=1)
    expected = tie_aware_ranks((top.indices + 1).numpy(), top.values.numpy(), target.numpy(), 20)
    got = random_tie_ranks(vectors, table, target, k_max=20, rng=np.random.default_rng(0))
    assert got.tolist() == expected.tolist()
    assert got[:3].tolist() == [-1, -1, -1]


def test_seen_items_leave_the_ranking() -> None:
    """Seen items above the target no longer count; a seen target is a miss."""
    table = torch.zeros(6, 1)
    table[1:, 0] = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])  # item i scores 6 - i for a user vector [1]
    seen = SeenItems(np.array([1, 2, 4]), np.array([0, 2, 3]))  # row 0 saw 1 and 2, row 1 saw 4
    ranks = random_tie_ranks(torch.ones(2, 1), table, torch.tensor([3, 4]), k_max=5,
                             rng=np.random.default_rng(0), seen=seen)
    assert ranks.tolist() == [1, 0]


def test_evaluator_option() -> None:
    with pytest.raises(ValueError, match="ties='sometimes'"):
        Evaluator(10, ties="sometimes")
    with pytest.raises(ValueError, match="exact index"):
        Evaluator(100, ties="random", index=IndexSpec(kind="ivf"))
    assert "ties broken at random" in Evaluator(10, ties="random").describe()
    assert "ties" not in Evaluator(10).describe()


def test_sampled_protocol_breaks_ties_at_random() -> None:
    """Sampled ranking with every candidate scoring the same: the target's place is uniform over 1..101."""
    from recsys.data.split import leave_one_out

    users, n_items = 3000, 500
    items = np.tile(np.array([1, 2]), users)
    split = leave_one_out(Sequences(items, np.arange(0, 2 * users + 1, 2), np.arange(users))).test

    class Constant(torch.nn.Module):
        def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return torch.ones(batch["user_idx"].shape[0], 2)

        def item_embeddings(self) -> torch.Tensor:
            return torch.ones(n_items + 1, 2)

    evaluator = Evaluator(n_items, ks=(10,), protocol=SampledRanking(100, seed=0), ties="random")
    model = Constant()
    evaluator.prepare(model, split)
    batch = {"row": torch.arange(users), "user_idx": torch.arange(users), "target": torch.full((users,), 2)}
    ranks = evaluator.rank_batch(model, batch).ranks
    assert ((ranks >= 1) & (ranks <= 10)).double().mean().item() == pytest.approx(10 / 101, abs=0.02)


def test_full_ranking_through_the_evaluator() -> None:
    """Popularity with every count equal: pessimistic ranking never hits, random ties give chance, and the
    same seed gives the same ranks on every pass."""
    from torch.utils.data import DataLoader

    from recsys.data.collate import EvalCollator
    from recsys.data.split import leave_one_out
    from recsys.eval import PopularityModel

    users, n_items = 2000, 40
    rng = np.random.default_rng(0)
    items = rng.integers(1, n_items + 1, size=3 * users)
    split = leave_one_out(Sequences(items, np.arange(0, 3 * users + 1, 3), np.arange(users))).test
    loader = DataLoader(list(range(users)), batch_size=512, collate_fn=EvalCollator(split, 5))
    model = PopularityModel(np.r_[0, np.ones(n_items, dtype=np.int64)])
    pessimistic = Evaluator(n_items, ks=(10,)).evaluate(model, loader, split)
    assert pessimistic.metrics["recall@10"] == 0
    evaluator = Evaluator(n_items, ks=(10,), ties="random")
    first, second = (evaluator.evaluate(model, loader, split) for _ in range(2))
    assert first.metrics["recall@10"] == pytest.approx(10 / n_items, abs=0.03)
    assert first.metrics == second.metrics
    assert "ties broken at random" in first.protocol
