"""Interaction filters (rating threshold, iterative k-core, minimum sequence length) and re-indexing.

Filter order, fixed because it changes the result:
1. `min_rating`: keep interactions with rating >= R (explicit ratings read as implicit feedback).
2. k-core and minimum length together, repeated until nothing changes: a user needs at least
   max(k, min_length) interactions and an item at least k. Removing a user can push an item under k
   and the other way round, so one pass is not enough; repeating until stable gives the unique largest
   subset where every rule holds. Counts are rows, so a repeated (user, item) pair counts twice.

Re-indexing: the items that remain are numbered 1..n in ascending order of the source's own numeric id
(0 stays padding), the users 0..n-1 likewise. With no filters, sources whose ids already run 1..n (the
S3-Rec files, MovieLens items) keep them: item_idx equals the published id, which keeps results
comparable with papers that use those files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from data_prep.errors import PrepError


@dataclass(frozen=True)
class Filters:
    """Which filters to apply; None means off. The defaults reproduce the published datasets."""

    k_core: int | None = None
    min_length: int | None = None
    min_rating: float | None = None

    def __post_init__(self) -> None:
        for name in ("k_core", "min_length"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise PrepError(None, f"{name.replace('_', '-')} must be a positive integer, got {value!r}")

    @property
    def user_min(self) -> int:
        return max(self.k_core or 0, self.min_length or 0)

    @property
    def item_min(self) -> int:
        return self.k_core or 0

    def as_meta(self) -> dict[str, Any]:
        return {
            "min_rating": self.min_rating,
            "k_core": self.k_core,
            "min_length": self.min_length,
            "order": "min_rating, then k-core and min_length repeated until stable "
            "(users need max(k_core, min_length) rows, items need k_core rows)",
        }


def apply_filters(
    interactions: pl.DataFrame, filters: Filters, *, dataset: str, has_ratings: bool
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Filter `interactions` (columns user_key, item_key, ...); row order is kept.

    Returns the filtered rows and a report of how many rows each step removed.
    """
    report: dict[str, Any] = {"interactions_before": interactions.height}
    if filters.min_rating is not None:
        if not has_ratings:
            raise PrepError(None, f"--min-rating was given, but {dataset} has no ratings (its feedback is implicit)")
        interactions = interactions.filter(pl.col("rating") >= filters.min_rating)
        report["after_min_rating"] = interactions.height
    if filters.user_min > 1 or filters.item_min > 1:
        passes = 0
        while True:
            passes += 1
            kept = interactions.filter(
                (pl.len().over("user_key") >= filters.user_min) & (pl.len().over("item_key") >= filters.item_min)
            )
            if kept.height == interactions.height:
                break
            interactions = kept
        report["after_core"] = interactions.height
        report["core_passes"] = passes
    if interactions.height == 0:
        raise PrepError(None, f"the filters removed every interaction of {dataset} ({filters.as_meta()})")
    report["interactions_after"] = interactions.height
    return interactions, report


def reindex(
    interactions: pl.DataFrame, items: pl.DataFrame, users: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Number the used items 1..n and users 0..n-1 by ascending source key; drop the unused rest.

    `interactions` keeps its row order (file order), which the contract's stable sort relies on for ties.
    """
    item_map = interactions.select(pl.col("item_key").unique().sort()).with_row_index("item_idx", offset=1)
    user_map = interactions.select(pl.col("user_key").unique().sort()).with_row_index("user_idx")
    missing = item_map.join(items.select("item_key"), on="item_key", how="anti")
    if missing.height:
        raise PrepError(None, f"item {missing['item_key'][0]} has interactions but no row in the item table")
    missing = user_map.join(users.select("user_key"), on="user_key", how="anti")
    if missing.height:
        raise PrepError(None, f"user {missing['user_key'][0]} has interactions but no row in the user table")
    interactions = (
        interactions.join(item_map, on="item_key", maintain_order="left")
        .join(user_map, on="user_key", maintain_order="left")
        .drop("item_key", "user_key")
    )
    items = items.join(item_map, on="item_key").sort("item_idx").drop("item_key")
    users = users.join(user_map, on="user_key").sort("user_idx").drop("user_key")
    items = items.select("item_idx", "item_id", pl.exclude("item_idx", "item_id"))
    users = users.select("user_idx", "user_id", pl.exclude("user_idx", "user_id"))
    return interactions, items, users
