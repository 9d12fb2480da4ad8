"""Membership of candidate ids in each row's history, without a dense users x items mask.

A batch's histories are kept as CSR (flat items + offsets); membership is a sorted-key lookup on
`row * (n_items + 1) + item`, so memory grows with the ids checked, not with the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.data.sequences import Sequences


@dataclass(frozen=True)
class SeenItems:
    """Row r of a batch has seen `items[offsets[r]:offsets[r + 1]]` (duplicates allowed)."""

    items: np.ndarray  # int64 [total]
    offsets: np.ndarray  # int64 [rows + 1]

    @classmethod
    def of_rows(cls, history: Sequences, rows: np.ndarray) -> SeenItems:
        """The full histories of `rows` of a split (not the model's possibly truncated input window)."""
        return cls(history.items, history.offsets).slice_rows(rows)

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def max_count(self) -> int:
        """An upper bound on distinct seen items per row: how many extra results a search must ask for."""
        return int(np.diff(self.offsets).max(initial=0))

    def slice(self, start: int, stop: int) -> SeenItems:
        lo, hi = self.offsets[start], self.offsets[stop]
        return SeenItems(self.items[lo:hi], self.offsets[start : stop + 1] - lo)

    def slice_rows(self, rows: np.ndarray) -> SeenItems:
        """The histories of `rows` (any order), e.g. the users still short of negatives."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = np.diff(self.offsets)[rows]
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        gather = np.repeat(self.offsets[rows] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return SeenItems(self.items[gather], offsets)

    def mask(self, ids: np.ndarray) -> np.ndarray:
        """Bool [rows, m]: ids[r, j] is in row r's history. Ids < 0 (no result) are never 'seen'."""
        rows, _ = ids.shape
        if rows != len(self):
            raise ValueError(f"ids has {rows} rows but there are {len(self)} histories")
        width = np.int64(max(int(ids.max(initial=0)), int(self.items.max(initial=0))) + 1)
        seen_rows = np.repeat(np.arange(rows, dtype=np.int64), np.diff(self.offsets))
        seen_keys = np.sort(seen_rows * width + self.items)
        if seen_keys.size == 0:
            return np.zeros(ids.shape, dtype=bool)
        keys = np.arange(rows, dtype=np.int64)[:, None] * width + ids
        # Binary search into the (small) sorted history keys: no sort of the (larger) candidate keys.
        found = seen_keys[np.minimum(np.searchsorted(seen_keys, keys), seen_keys.size - 1)] == keys
        return found & (ids >= 0)


def drop_masked(ids: np.ndarray, scores: np.ndarray | None, drop: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Keep the first `k` undropped entries of each row in order; rows left short are padded with -1 / -inf."""
    order = np.argsort(drop, axis=1, kind="stable")[:, :k]
    kept_ids = np.take_along_axis(ids, order, axis=1)
    still_dropped = np.take_along_axis(drop, order, axis=1)
    kept_ids = np.where(still_dropped, -1, kept_ids)
    kept_scores = None
    if scores is not None:
        kept_scores = np.where(still_dropped, -np.inf, np.take_along_axis(scores, order, axis=1)).astype(np.float32)
    if kept_ids.shape[1] < k:
        pad = k - kept_ids.shape[1]
        kept_ids = np.pad(kept_ids, ((0, 0), (0, pad)), constant_values=-1)
        if kept_scores is not None:
            kept_scores = np.pad(kept_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return kept_ids, kept_scores
