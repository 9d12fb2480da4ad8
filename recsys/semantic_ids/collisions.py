"""The extra digit that makes semantic IDs unique.

Two items with the same codes would be one ID, and a generative model could never tell them apart.
TIGER appends one more level: 0, 1, 2, ... among items that share a code tuple. Its size is the
largest collision group, so it grows with duplicates in the catalogue; callers should look at it.
Which item of a group gets which digit is arbitrary to the model unless the order means something:
ordered by a priority (say training popularity), digit 0 is the likeliest item of every group, one
pattern the decoder can learn once instead of a lookup per group.
"""

from __future__ import annotations

import numpy as np


def collision_groups(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group id [n], group size [n]) of each row among rows with identical code tuples."""
    codes = np.asarray(codes, dtype=np.int64)
    if codes.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    return inverse, counts[inverse]


def add_collision_digit(codes: np.ndarray, priority: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Append the dedup digit: ([n, L+1] codes, size of the extra level = largest group).

    Within a group the digit follows row order, so the first item keeps digit 0 and the result is
    deterministic for a given item order; with `priority` [n] the highest priority gets digit 0 and
    ties keep row order.
    """
    codes = np.asarray(codes, dtype=np.int64)
    group, _ = collision_groups(codes)
    if priority is None:
        order = np.argsort(group, kind="stable")
    else:
        priority = np.asarray(priority, dtype=np.float64)
        if priority.shape != group.shape:
            raise ValueError(f"priority has shape {priority.shape}, expected ({group.shape[0]},): one per code row")
        order = np.lexsort((np.arange(group.size), -priority, group))
    sorted_group = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_group)) + 1] if len(order) else np.zeros(0, np.int64)
    first = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    digit = np.empty(len(order), dtype=np.int64)
    digit[order] = np.arange(len(order)) - first
    size = int(digit.max()) + 1 if len(digit) else 1
    return np.concatenate([codes, digit[:, None]], axis=1), size
