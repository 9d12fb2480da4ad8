"""The extra digit that makes semantic IDs unique.

Two items with the same codes would be one ID, and a generative model could never tell them apart.
TIGER appends one more level: 0, 1, 2, ... among items that share a code tuple. Its size is the
largest collision group, so it grows with duplicates in the catalogue; callers should look at it.
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


def add_collision_digit(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Append the dedup digit: ([n, L+1] codes, size of the extra level = largest group).

    Within a group the digit follows row order, so the first item keeps digit 0 and the result is
    deterministic for a given item order.
    """
    codes = np.asarray(codes, dtype=np.int64)
    group, _ = collision_groups(codes)
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_group)) + 1] if len(order) else np.zeros(0, np.int64)
    first = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    digit = np.empty(len(order), dtype=np.int64)
    digit[order] = np.arange(len(order)) - first
    size = int(digit.max()) + 1 if len(digit) else 1
    return np.concatenate([codes, digit[:, None]], axis=1), size
