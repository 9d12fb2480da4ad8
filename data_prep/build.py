"""A reader's RawDataset into the prepared-dataset contract: filter, re-index, sort, describe.

The contract itself (columns, dtypes, ordering, atomic writing) lives in recsys.data.contract and is
only used here, never restated.
"""

from __future__ import annotations

import platform
from typing import Any

import polars as pl

from data_prep.filters import Filters, apply_filters, reindex
from data_prep.raw import RawDataset
from data_prep.rawfiles import sha256_file
from recsys.data.contract import (
    PREP_VERSION,
    PreparedDataset,
    cast_interactions,
    dataset_statistics,
    sort_interactions,
    validate,
)

TIE_RULE = (
    "rows are sorted by user_idx, then timestamp; rows with equal timestamps keep the order of the raw "
    "file (stable sort)"
)
ITEM_INDEX_RULE = (
    "items left after filtering are numbered 1..n_items in ascending order of the source's numeric item id "
    "(0 is padding)"
)
USER_INDEX_RULE = "users left after filtering are numbered 0..n_users-1 in ascending order of the source's numeric user id"


def _runs_one_to_n(keys: pl.Series, start: int) -> bool:
    return keys.n_unique() == keys.len() and int(keys.min()) == start and int(keys.max()) == start + keys.len() - 1


def build_prepared(raw: RawDataset, filters: Filters, text_max_chars: int) -> PreparedDataset:
    """Filtered, re-indexed, validated tables plus meta.json; nothing is written."""
    interactions, report = apply_filters(raw.interactions, filters, dataset=raw.name, has_ratings=raw.has_ratings)
    item_keys = interactions["item_key"].unique()
    item_idx_is_source_id = _runs_one_to_n(item_keys, 1)
    interactions, items, users = reindex(interactions, raw.items, raw.users)
    interactions = sort_interactions(cast_interactions(interactions))
    items = items.with_columns(
        pl.col("item_idx").cast(pl.Int32), pl.col("item_id").cast(pl.String), pl.col("text").cast(pl.String)
    )
    users = users.with_columns(pl.col("user_idx").cast(pl.Int32), pl.col("user_id").cast(pl.String))
    meta: dict[str, Any] = {
        "name": raw.name,
        "n_users": users.height,
        "n_items": items.height,
        "n_interactions": interactions.height,
        "prep_version": PREP_VERSION,
        "source_files": [
            {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)} for path in raw.sources
        ],
        "filters": filters.as_meta(),
        "filter_report": report,
        "ordering": TIE_RULE,
        "tie_rule": "equal timestamps keep raw-file order",
        "item_index": ITEM_INDEX_RULE,
        "item_idx_equals_source_id": item_idx_is_source_id,
        "user_index": USER_INDEX_RULE,
        "items_without_interactions_dropped": raw.items.height - items.height,
        "users_without_interactions_dropped": raw.users.height - users.height,
        "text_max_chars": text_max_chars,
        **raw.facts,
        "statistics": dataset_statistics(interactions, users.height, items.height),
        "prepared_with": {"python": platform.python_version(), "polars": pl.__version__},
    }
    dataset = PreparedDataset(interactions=interactions, items=items, users=users, meta=meta)
    validate(dataset)
    return dataset
