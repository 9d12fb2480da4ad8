"""Ranking metrics computed from where the targets landed, never from a users x items score matrix.

Two compact inputs cover every protocol:
- one target per user: `ranks` [B], the 1-based rank of the target, 0 when it is not in the top K_max,
  negative when the row has no target (such rows are skipped, not counted as misses);
- several targets per user: `hits` [B, K] bool (position j of the top-K list holds a target) and
  `n_targets` [B] (rows with 0 targets are skipped).

Definitions (binary relevance, everything truncated at K):
- Recall@K = hits in the top K / number of targets (= HR@K with one target);
- NDCG@K = DCG@K / ideal DCG@K, where the ideal list puts min(n_targets, K) targets first;
- MRR@K = 1 / rank of the first target in the top K, 0 if none is there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric


def ranks_from_topk(topk: Tensor, target: Tensor) -> Tensor:
    """1-based position of each row's target in its top-K list, 0 when absent, -1 when the row has no target.

    Ids <= 0 in `topk` (padding or "no result") never match, so a target can't be found in a padded slot.
    """
    hits = (topk == target[:, None]) & (topk > 0)
    position = hits.to(torch.int64).argmax(dim=1) + 1
    ranks = torch.where(hits.any(dim=1), position, torch.zeros_like(position))
    return torch.where(target < 0, torch.full_like(ranks, -1), ranks)


def hits_from_topk(topk: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Hit matrix [B, K] and target counts [B] for several targets per row (`targets` [B, T], <= 0 = padding).

    Targets within a row are assumed distinct; a duplicated target would be counted twice in n_targets.
    """
    real = targets > 0
    hits = ((topk[:, :, None] == targets[:, None, :]) & real[:, None, :]).any(dim=2) & (topk > 0)
    return hits, real.sum(dim=1)


def hits_from_ranks(ranks: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The hit-matrix form of a rank vector, so one-target results can be checked against the general path."""
    positions = torch.arange(1, k + 1, device=ranks.device)
    return ranks[:, None] == positions[None, :], (ranks >= 0).to(torch.int64)


def _in_top(ranks: Tensor, k: int) -> Tensor:
    return (ranks >= 1) & (ranks <= k)


def recall_at_k(ranks: Tensor, k: int) -> Tensor:
    """Per-row Recall@K for one target per row: 1 if the target is in the top K, else 0."""
    return _in_top(ranks, k).to(torch.float64)


def ndcg_at_k(ranks: Tensor, k: int) -> Tensor:
    """Per-row NDCG@K for one target per row: the ideal DCG is 1, so it is 1/log2(rank + 1) inside the top K.

    The gain is looked up in a K + 2 table (0 for "absent" and for ranks past K) rather than computed per
    row: fewer elementwise transcendental ops on the batch, which are slow when cores are contended.
    """
    table = torch.zeros(k + 2, dtype=torch.float64, device=ranks.device)
    table[1 : k + 1] = _discounts(k, ranks.device)
    return table[ranks.clamp(min=0, max=k + 1)]


def mrr_at_k(ranks: Tensor, k: int) -> Tensor:
    """Per-row reciprocal rank, truncated at K."""
    reciprocal = 1.0 / ranks.to(torch.float64).clamp(min=1.0)
    return torch.where(_in_top(ranks, k), reciprocal, torch.zeros_like(reciprocal))


def _discounts(k: int, device: torch.device) -> Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, device=device, dtype=torch.float64))


def recall_from_hits(hits: Tensor, n_targets: Tensor, k: int) -> Tensor:
    found = hits[:, :k].sum(dim=1).to(torch.float64)
    return torch.where(n_targets > 0, found / n_targets.clamp(min=1), torch.zeros_like(found))


def ndcg_from_hits(hits: Tensor, n_targets: Tensor, k: int) -> Tensor:
    discounts = _discounts(k, hits.device)
    dcg = (hits[:, :k].to(torch.float64) * discounts[: hits[:, :k].shape[1]]).sum(dim=1)
    ideal = torch.cumsum(discounts, dim=0)[n_targets.to(torch.int64).clamp(min=1, max=k) - 1]
    return torch.where(n_targets > 0, dcg / ideal, torch.zeros_like(dcg))


def mrr_from_hits(hits: Tensor, n_targets: Tensor, k: int) -> Tensor:
    top = hits[:, :k]
    first = top.to(torch.int64).argmax(dim=1) + 1
    reciprocal = 1.0 / first.to(torch.float64)
    return torch.where(top.any(dim=1) & (n_targets > 0), reciprocal, torch.zeros_like(reciprocal))


def _item_counts(ids: Tensor, size: int) -> Tensor:
    """float64 [size]: how often each item id appears; ids <= 0 (padding, no result) are not counted.

    On CPU this is one single-threaded numpy bincount: torch's parallel bincount and the reshape before it
    stalled for ~15 ms a batch when another process held one of the two cores.
    """
    if ids.device.type == "cpu":
        flat = np.ascontiguousarray(ids.numpy()).ravel()
        counts = torch.from_numpy(np.bincount(np.maximum(flat, 0), minlength=size).astype(np.float64))
    else:
        counts = torch.bincount(ids.reshape(-1).clamp(min=0), minlength=size).to(torch.float64)
    counts[0] = 0.0
    return counts.to(ids.device)


class RankingMetrics(Metric):
    """Recall/NDCG/MRR@K (+ coverage and popularity of what was recommended) as sums and a count.

    Every state is a sum with dist_reduce_fx="sum", so under DDP `compute()` adds the ranks' sums before
    dividing, which gives the same number as one process would. Coverage keeps per-item recommendation
    counts (a [len(ks), n_items + 1] sum state), because a union of sets does not survive averaging.

    Args:
        ks: cut-offs, e.g. (10,) or (5, 10, 20).
        n_items: catalogue size; enables coverage@K (distinct items recommended / n_items).
        item_popularity: [n_items + 1] interaction counts (index 0 = padding); enables popularity@K, the mean
            count of the recommended items (average recommendation popularity).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(
        self,
        ks: Sequence[int] = (10,),
        n_items: int | None = None,
        item_popularity: Tensor | np.ndarray | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks={tuple(ks)}: expected one or more cut-offs >= 1")
        self.ks = tuple(sorted(set(int(k) for k in ks)))
        self.n_items = n_items
        n_ks = len(self.ks)
        for name in ("recall", "ndcg", "mrr"):
            self.add_state(name, default=torch.zeros(n_ks, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        if n_items is not None:
            self.add_state(
                "recommended", default=torch.zeros(n_ks, n_items + 1, dtype=torch.float64), dist_reduce_fx="sum"
            )
        self.popularity_table: Tensor | None
        if item_popularity is not None:
            table = torch.as_tensor(np.asarray(item_popularity), dtype=torch.float64)
            self.register_buffer("popularity_table", table, persistent=False)
            self.add_state("popularity", default=torch.zeros(n_ks, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("n_recommended", default=torch.zeros(n_ks, dtype=torch.float64), dist_reduce_fx="sum")
        else:
            self.popularity_table = None

    @property
    def k_max(self) -> int:
        return self.ks[-1]

    def update(
        self,
        ranks: Tensor | None = None,
        topk: Tensor | None = None,
        hits: Tensor | None = None,
        n_targets: Tensor | None = None,
    ) -> None:
        """Add one batch: either `ranks` [B] or `hits` [B, >= K_max] with `n_targets` [B]; `topk` [B, >= K_max]
        item ids (<= 0 = none) feeds coverage and popularity."""
        if (ranks is None) == (hits is None):
            raise ValueError("pass exactly one of `ranks` (one target per row) or `hits` + `n_targets`")
        # Skipped rows (no target) score 0 in every per-row function, so they only need leaving out of the
        # count; no boolean indexing, which is slow on contended cores.
        if ranks is not None:
            ranks = ranks.to(self.device)
            kept = ranks >= 0
            per_k = [(recall_at_k(ranks, k), ndcg_at_k(ranks, k), mrr_at_k(ranks, k)) for k in self.ks]
        else:
            if n_targets is None:
                raise ValueError("`hits` needs `n_targets`")
            if hits.shape[1] < self.k_max:
                raise ValueError(f"hits has {hits.shape[1]} columns but K_max is {self.k_max}")
            hits, n_targets = hits.to(self.device, torch.bool), n_targets.to(self.device, torch.int64)
            kept = n_targets > 0
            per_k = [
                (recall_from_hits(hits, n_targets, k), ndcg_from_hits(hits, n_targets, k),
                 mrr_from_hits(hits, n_targets, k))
                for k in self.ks
            ]
        self.recall += torch.stack([r.sum() for r, _, _ in per_k])
        self.ndcg += torch.stack([n.sum() for _, n, _ in per_k])
        self.mrr += torch.stack([m.sum() for _, _, m in per_k])
        self.count += kept.sum()
        if topk is not None:
            self._update_recommended(topk.to(self.device))

    def _update_recommended(self, topk: Tensor) -> None:
        if topk.shape[1] < self.k_max:
            raise ValueError(f"topk has {topk.shape[1]} columns but K_max is {self.k_max}")
        size = self.n_items + 1 if self.n_items is not None else self.popularity_table.shape[0]  # type: ignore[union-attr]
        for i, k in enumerate(self.ks):
            counts = _item_counts(topk[:, :k], size)
            if self.n_items is not None:
                self.recommended[i] += counts
            if self.popularity_table is not None:
                self.popularity[i] += (counts * self.popularity_table).sum()
                self.n_recommended[i] += counts.sum()

    def compute(self) -> dict[str, Tensor]:
        """Means over the counted rows (NaN when none was counted, rather than a misleading 0)."""
        out: dict[str, Tensor] = {}
        count = self.count
        for i, k in enumerate(self.ks):
            out[f"recall@{k}"] = self.recall[i] / count
            out[f"ndcg@{k}"] = self.ndcg[i] / count
            out[f"mrr@{k}"] = self.mrr[i] / count
            if self.n_items is not None:
                out[f"coverage@{k}"] = (self.recommended[i, 1:] > 0).sum().to(torch.float64) / self.n_items
            if self.popularity_table is not None:
                out[f"popularity@{k}"] = self.popularity[i] / self.n_recommended[i]
        return out
