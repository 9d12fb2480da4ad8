"""Ragged per-user item sequences held as flat arrays, so batching is array slicing, not Python loops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Sequences:
    """Row r holds the items of user `users[r]`, oldest first: `items[offsets[r]:offsets[r + 1]]`."""

    items: np.ndarray  # int64 [total]
    offsets: np.ndarray  # int64 [rows + 1]
    users: np.ndarray  # int64 [rows]

    def __post_init__(self) -> None:
        if self.offsets.shape != (self.users.shape[0] + 1,):
            raise ValueError(f"offsets has shape {self.offsets.shape}, expected ({self.users.shape[0] + 1},)")

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, r: int) -> np.ndarray:
        return self.items[self.offsets[r] : self.offsets[r + 1]]

    @classmethod
    def from_interactions(cls, interactions: pl.DataFrame) -> Sequences:
        """Group contract-ordered interactions (sorted by user, then time) into one row per user present."""
        users_col = interactions["user_idx"].to_numpy().astype(np.int64, copy=False)
        items = interactions["item_idx"].to_numpy().astype(np.int64, copy=True)
        if users_col.size == 0:
            return cls(items, np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64))
        starts = np.flatnonzero(np.r_[True, users_col[1:] != users_col[:-1]])
        offsets = np.r_[starts, users_col.size].astype(np.int64)
        return cls(items, offsets, users_col[starts].copy())

    def select(self, rows: np.ndarray) -> Sequences:
        """A new Sequences holding only `rows` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        gather = np.repeat(self.offsets[rows] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Sequences(self.items[gather], offsets, self.users[rows].copy())

    def drop_last(self, n: int) -> Sequences:
        """Each row without its last `n` items (rows shorter than that become empty)."""
        lengths = np.maximum(self.lengths - n, 0)
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        gather = np.repeat(self.offsets[:-1] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Sequences(self.items[gather], offsets, self.users.copy())

    def last(self, n: int = 1) -> np.ndarray:
        """The item `n` places from the end of every row (1 = the last); rows must be long enough."""
        if np.any(self.lengths < n):
            raise ValueError(f"some rows have fewer than {n} items")
        return self.items[self.offsets[1:] - n]

    def windows(self, max_len: int, rows: np.ndarray | None = None, ends: np.ndarray | None = None) -> np.ndarray:
        """The last `max_len` items of each row, left-padded with 0: shape [rows, max_len], int64.

        Left padding keeps the most recent item in the last column for every row. `ends` (absolute offsets
        into `items`, one per row) cuts each window off earlier than the row's end.
        """
        rows = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        begins = self.offsets[rows]
        ends = self.offsets[rows + 1] if ends is None else np.asarray(ends, dtype=np.int64)
        src = ends[:, None] - max_len + np.arange(max_len)[None, :]
        valid = src >= begins[:, None]
        if self.items.size == 0:
            return np.zeros((rows.size, max_len), dtype=np.int64)
        return np.where(valid, self.items[np.clip(src, 0, None)], 0)

    def strided_ends(self, size: int, stride: int, min_items: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, end offset, owned targets) of windows of `size + 1` items ending every `stride` items from
        each row's end, the earliest reaching the row's start; rows shorter than `min_items` get none.

        With stride == size the windows tile each row, overlapping by one item, so with the causal objective
        every item after a row's first is a target exactly once. With stride < size they overlap more, and
        each owns only the targets no later window covers: its last `stride` (the earliest window: all of its
        own). Every item after a row's first is still owned exactly once, and every owned target past the first
        `size - stride` of a row has at least `size - stride` items of history in its window.
        """
        if not 1 <= stride <= size:
            raise ValueError(f"stride={stride}: expected 1 <= stride <= {size} (the window length)")
        lengths = self.lengths
        counts = np.where(lengths >= min_items, 1 + -(-np.maximum(lengths - 1 - size, 0) // stride), 0)
        rows = np.repeat(np.arange(len(self)), counts)
        step = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        ends = self.offsets[rows + 1] - step * stride
        earliest = step == counts[rows] - 1
        owned = np.where(earliest, ends - self.offsets[rows] - 1, stride)
        return rows, ends, owned

