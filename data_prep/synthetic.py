"""A generated dataset with known sequential structure, written through the same contract.

Why it exists: a test or a sweep needs data on which a sequential model must beat a popularity model
by a wide, known margin, in seconds and without downloads. Items fall into clusters; each cluster
has a fixed item order. A user starts on a random item and then, at each step,
- with probability P_SUCCESSOR moves to the next item of the current cluster's order (cyclic),
- with probability P_NEXT_CLUSTER moves to a random item of the next cluster (cyclic),
- otherwise moves to an item drawn uniformly from the catalogue.
The transition matrix is (nearly, when cluster sizes differ by one) doubly stochastic and the start is
uniform, so item popularity is flat: popularity cannot predict the next item, the previous item can
(about P_SUCCESSOR of next items are the successor). Item text names the cluster, so text-based models
see the cluster structure too.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from data_prep.errors import PrepError
from data_prep.raw import RawDataset, ReadOptions
from data_prep.text import key_value_text

P_SUCCESSOR = 0.75
P_NEXT_CLUSTER = 0.15
MIN_LENGTH, MAX_LENGTH = 10, 40
MAX_CLUSTERS = 20
START_TIME = 1_600_000_000  # 2020-09-13, arbitrary but fixed
CATEGORIES = (
    "books", "kitchen", "garden", "music", "toys", "sports", "beauty", "tools", "games", "office",
    "travel", "pets", "baby", "outdoor", "camera", "shoes", "jewelry", "grocery", "health", "auto",
)  # fmt: skip
COLORS = ("red", "blue", "green", "black", "white", "yellow", "purple", "orange")
SIZES = ("S", "M", "L", "XL")


def n_clusters(n_items: int) -> int:
    """About ten items per cluster, between 2 and MAX_CLUSTERS clusters."""
    return max(2, min(MAX_CLUSTERS, n_items // 10))


def generate(n_users: int, n_items: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(interactions, items, users) with 1-based item keys and 1-based user keys; deterministic in `seed`."""
    if n_users < 1:
        raise PrepError(None, f"--users must be at least 1, got {n_users}")
    if n_items < 20:
        raise PrepError(None, f"--items must be at least 20 (two clusters of ten), got {n_items}")
    rng = np.random.default_rng(seed)
    clusters = n_clusters(n_items)

    # Items 0..n_items-1 are shuffled and dealt into clusters; within a cluster the shuffled order is
    # the successor order, so item numbers reveal nothing.
    order = rng.permutation(n_items)
    sizes = np.array([len(part) for part in np.array_split(np.arange(n_items), clusters)])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    slot_cluster = np.repeat(np.arange(clusters), sizes)
    slot_position = np.arange(n_items) - starts[slot_cluster]
    cluster_of = np.empty(n_items, dtype=np.int64)
    position_of = np.empty(n_items, dtype=np.int64)
    cluster_of[order] = slot_cluster
    position_of[order] = slot_position
    successor = order[starts[cluster_of] + (position_of + 1) % sizes[cluster_of]]

    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=n_users)
    steps = np.empty((n_users, MAX_LENGTH), dtype=np.int64)
    steps[:, 0] = rng.integers(0, n_items, size=n_users)
    for t in range(1, MAX_LENGTH):
        current = steps[:, t - 1]
        draw = rng.random(n_users)
        next_cluster = (cluster_of[current] + 1) % clusters
        in_next = order[starts[next_cluster] + (rng.random(n_users) * sizes[next_cluster]).astype(np.int64)]
        uniform = rng.integers(0, n_items, size=n_users)
        steps[:, t] = np.where(
            draw < P_SUCCESSOR, successor[current], np.where(draw < P_SUCCESSOR + P_NEXT_CLUSTER, in_next, uniform)
        )
    gaps = rng.integers(60, 7 * 86_400, size=(n_users, MAX_LENGTH))
    times = START_TIME + rng.integers(0, 365 * 86_400, size=(n_users, 1)) + np.cumsum(gaps, axis=1)

    keep = np.arange(MAX_LENGTH)[None, :] < lengths[:, None]
    users_of = np.broadcast_to(np.arange(1, n_users + 1)[:, None], keep.shape)
    interactions = pl.DataFrame(
        {"user_key": users_of[keep], "item_key": steps[keep] + 1, "timestamp": times[keep]},
        schema={"user_key": pl.Int64, "item_key": pl.Int64, "timestamp": pl.Int64},
    )
    items = pl.DataFrame(
        {
            "item_key": np.arange(1, n_items + 1),
            "item_id": [f"item-{k}" for k in range(1, n_items + 1)],
            "category": np.array(CATEGORIES)[cluster_of],
            "color": np.array(COLORS)[rng.integers(0, len(COLORS), size=n_items)],
            "size": np.array(SIZES)[rng.integers(0, len(SIZES), size=n_items)],
            "cluster": cluster_of.astype(np.int32),
            "cluster_position": position_of.astype(np.int32),
        }
    )
    users = pl.DataFrame(
        {"user_key": np.arange(1, n_users + 1), "user_id": [f"user-{k}" for k in range(1, n_users + 1)]}
    )
    return interactions, items, users


def read_synthetic(options: ReadOptions) -> RawDataset:
    interactions, items, users = generate(options.users, options.items, options.seed)
    items = items.with_columns(
        key_value_text(items, [("category", "category"), ("color", "color"), ("size", "size")], options.text_max_chars)
    )
    return RawDataset(
        name="synthetic",
        interactions=interactions,
        items=items,
        users=users,
        sources=[],
        facts={
            "timestamp": "generated unix seconds, strictly increasing within each user",
            "rating": "none (implicit feedback); the column is null",
            "item_text": "category, color and size (generated; category names the cluster)",
            "ids": "item_id is item-<k>, user_id is user-<k>; the chain favours the item with the same cluster "
            "and the next cluster_position (cyclic)",
            "generator": {
                "users": options.users,
                "items": options.items,
                "seed": options.seed,
                "clusters": n_clusters(options.items),
                "p_successor": P_SUCCESSOR,
                "p_next_cluster": P_NEXT_CLUSTER,
                "p_uniform": round(1 - P_SUCCESSOR - P_NEXT_CLUSTER, 6),
                "length_range": [MIN_LENGTH, MAX_LENGTH],
                "numpy": np.__version__,
            },
        },
    )
