"""Ranks with ties in score broken at random: the expected outcome when a model cannot tell items apart.

The evaluator's default is pessimistic (every item tying the target counts as ranked above it), which
keeps a constant-score model at zero. It is also a lower bound that can sit far below what any order of
the tied items would give: a text-only model scores items with the same text identically, and on the
offline Amazon catalogues most test targets share their text with 10 or more other items, so pessimistic
ranking puts such a target outside the top 10 whatever the model does. Breaking ties uniformly at random
(seeded) is the unbiased alternative (McSherry and Najork, ECIR 2008, average over the orders of tied
items): a constant-score model gets chance, K / N, and a model that orders the tie group's text first
gets its fair share of hits.

Ranks are computed from one exact score matrix per chunk of users (never mixed with the faiss list, whose
scores may differ from a second computation in the last bits), and scores within `TIE_TOLERANCE`
(relative) of the target's count as tied, so rounding cannot split items with identical vectors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from recsys.eval.seen import SeenItems

TIE_TOLERANCE = 1e-6
TIE_POLICIES = ("pessimistic", "random")


def tie_tolerance(target_scores: Tensor) -> Tensor:
    """How close a score must be to the target's to count as a tie (relative, at least absolute 1e-6)."""
    return TIE_TOLERANCE * (1.0 + target_scores.abs())


def random_tie_rank(others: Tensor, own: Tensor, rng: np.random.Generator) -> Tensor:
    """1-based ranks [B] of targets scoring `own` [B] against `others` [B, C] (the other candidates' scores):
    after the items scoring higher, at a uniformly drawn place among the target and the items tying it."""
    tol = tie_tolerance(own)[:, None]
    greater = (others > own[:, None] + tol).sum(dim=1)
    tied = ((others - own[:, None]).abs() <= tol).sum(dim=1)
    draw = torch.from_numpy(rng.random(greater.shape[0])).to(greater.device)
    return greater + 1 + torch.floor(draw * (tied + 1).to(draw.dtype)).to(greater.dtype)


def random_tie_ranks(
    users: Tensor, table: Tensor, target: Tensor, k_max: int, rng: np.random.Generator,
    seen: SeenItems | None = None, chunk: int = 1024,
) -> Tensor:
    """Ranks [B] of each row's target against every item 1..N of `table` ([N + 1, d], row 0 padding), ties
    broken at random: 1..k_max, 0 outside the top k_max (or when the target is a seen item left out of the
    ranking), -1 for rows without a target. Memory: `chunk` x N scores at a time."""
    users = users.float()
    table = table.to(users.device, torch.float32)
    target = target.to(users.device)
    out = torch.empty(users.shape[0], dtype=torch.int64, device=users.device)
    for start in range(0, users.shape[0], chunk):
        stop = min(start + chunk, users.shape[0])
        scores = users[start:stop] @ table.T
        scores[:, 0] = float("-inf")
        if seen is not None:
            part = seen.slice(start, stop)
            rows = np.repeat(np.arange(stop - start), np.diff(part.offsets))
            scores[torch.from_numpy(rows).to(scores.device), torch.from_numpy(part.items).to(scores.device)] = \
                float("-inf")
        t = target[start:stop]
        column = t.clamp(min=0)[:, None]
        own = scores.gather(1, column).squeeze(1)
        rank = random_tie_rank(scores.scatter(1, column, float("-inf")), own, rng)  # the target against the rest
        ranks = torch.where(torch.isfinite(own) & (rank <= k_max), rank, torch.zeros_like(rank))
        out[start:stop] = torch.where(t > 0, ranks, torch.full_like(ranks, -1))
    return out.cpu()
