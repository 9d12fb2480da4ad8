"""Against which items a target is ranked: all of them (the default), or a sample, as some papers do.

Sampled negatives are a function of (seed, user, draw number) through a counter-based hash, not of a
stateful generator, so a user gets the same negatives whatever the batch size, batch order or DDP shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from recsys.eval.seen import SeenItems, drop_masked

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MAX_ROUNDS = 64


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash of each element (wrapping uint64 arithmetic is intended)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class FullRanking:
    """Each target is ranked against every item in the catalogue."""

    def describe(self, n_items: int) -> str:
        return f"full ranking over {n_items:,} items"


@dataclass(frozen=True)
class SampledRanking:
    """Each target is ranked against `n_negatives` sampled items, never including the target itself.

    Args:
        n_negatives: negatives per target (100 in most papers that sample).
        distribution: `uniform` over items, or `popularity`: proportional to the item counts the evaluator
            is given (items with count 0 are then never drawn).
        seed: fixes the negatives for every user.
    """

    n_negatives: int = 100
    distribution: Literal["uniform", "popularity"] = "uniform"
    seed: int = 0

    def describe(self, n_items: int) -> str:
        return f"sampled: {self.n_negatives} {self.distribution} negatives (seed {self.seed}) of {n_items:,} items"

    def candidates(
        self,
        users: np.ndarray,
        targets: np.ndarray,
        n_items: int,
        popularity: np.ndarray | None = None,
        seen: SeenItems | None = None,
    ) -> np.ndarray:
        """[B, 1 + n_negatives] item ids: column 0 the target, then distinct negatives in draw order.

        Negatives exclude the target and, when `seen` is given, the user's history. Fails rather than
        returning fewer negatives when a user's allowed pool is smaller than n_negatives.
        """
        if self.n_negatives >= n_items:
            raise ValueError(f"{self.n_negatives} negatives need more than {n_items} items")
        cdf = self._cdf(n_items, popularity)
        users = np.asarray(users, dtype=np.int64)
        targets = np.asarray(targets, dtype=np.int64)
        n = self.n_negatives
        chosen = np.full((users.shape[0], n), -1, dtype=np.int64)
        pending = np.arange(users.shape[0])
        per_round = n + n // 2 + 8
        for round_ in range(_MAX_ROUNDS):
            if pending.size == 0:
                return np.concatenate([targets[:, None], chosen], axis=1)
            draws = self._draw(users[pending], round_, per_round, n_items, cdf)
            pool = np.concatenate([chosen[pending], draws], axis=1)
            bad = (pool <= 0) | (pool == targets[pending, None]) | _repeats(pool)
            if seen is not None:
                bad |= seen.slice_rows(pending).mask(pool)
            kept, _ = drop_masked(pool, None, bad, n)
            chosen[pending] = kept
            pending = pending[(kept < 0).any(axis=1)]
        if pending.size:
            raise ValueError(
                f"could not draw {n} distinct {self.distribution} negatives for {pending.size} users in "
                f"{_MAX_ROUNDS} rounds: their allowed items are too few"
            )
        return np.concatenate([targets[:, None], chosen], axis=1)

    def _cdf(self, n_items: int, popularity: np.ndarray | None) -> np.ndarray | None:
        if self.distribution == "uniform":
            return None
        if self.distribution != "popularity":
            raise ValueError(f"distribution '{self.distribution}': expected uniform or popularity")
        if popularity is None or len(popularity) != n_items + 1:
            raise ValueError(f"popularity sampling needs item counts of length n_items + 1 = {n_items + 1}")
        counts = np.asarray(popularity, dtype=np.float64)[1:]
        if counts.sum() <= 0 or np.any(counts < 0):
            raise ValueError("popularity counts must be non-negative with a positive total")
        cdf = np.cumsum(counts)
        return cdf / cdf[-1]

    def _draw(self, users: np.ndarray, round_: int, width: int, n_items: int, cdf: np.ndarray | None) -> np.ndarray:
        key = _splitmix64(users.astype(np.uint64) ^ _splitmix64(np.full(1, self.seed, dtype=np.uint64)))
        counter = np.uint64(round_ * width) + np.arange(width, dtype=np.uint64)
        with np.errstate(over="ignore"):
            h = _splitmix64(key[:, None] * np.uint64(0x100000001B3) + counter[None, :])
        if cdf is None:
            return (h % np.uint64(n_items)).astype(np.int64) + 1
        uniform = (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
        return np.minimum(np.searchsorted(cdf, uniform, side="right"), n_items - 1).astype(np.int64) + 1


def _repeats(pool: np.ndarray) -> np.ndarray:
    """True where an id already appeared earlier in its row."""
    order = np.argsort(pool, axis=1, kind="stable")
    sorted_ids = np.take_along_axis(pool, order, axis=1)
    repeat_sorted = np.zeros_like(pool, dtype=bool)
    repeat_sorted[:, 1:] = sorted_ids[:, 1:] == sorted_ids[:, :-1]
    out = np.zeros_like(repeat_sorted)
    np.put_along_axis(out, order, repeat_sorted, axis=1)
    return out


Protocol = FullRanking | SampledRanking
