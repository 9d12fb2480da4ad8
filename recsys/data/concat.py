"""Several prepared datasets as one: for training a text-based model (Recformer) on more than one source.

Items and users of each part are renumbered after those of the parts before it, so the union is again a
prepared dataset under the contract (items 1..n, users 0..n-1, interactions sorted by user then time) and
every reader, split and collator works on it unchanged. Only the contract's own columns are kept (item
attribute columns differ between sources; the `text` column is what a text model reads).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import polars as pl

from recsys.data.contract import PreparedDataset, dataset_statistics, read_prepared, validate
from recsys.data.datamodule import SequenceDataModule


def concat_prepared(parts: Sequence[PreparedDataset]) -> PreparedDataset:
    """The union of prepared datasets, items and users offset part by part (see the module docstring)."""
    if not parts:
        raise ValueError("concat_prepared needs at least one prepared dataset")
    interactions, items, users = [], [], []
    item_offset = user_offset = 0
    for ds in parts:
        interactions.append(ds.interactions.select(
            (pl.col("user_idx") + user_offset).cast(pl.Int32), (pl.col("item_idx") + item_offset).cast(pl.Int32),
            pl.col("timestamp").cast(pl.Int64), pl.col("rating").cast(pl.Float32),
        ))
        items.append(ds.items.select(
            (pl.col("item_idx") + item_offset).cast(pl.Int32), (pl.lit(ds.name + ":") + pl.col("item_id")).alias("item_id"),
            pl.col("text"),
        ))
        users.append(ds.users.select(
            (pl.col("user_idx") + user_offset).cast(pl.Int32), (pl.lit(ds.name + ":") + pl.col("user_id")).alias("user_id"),
        ))
        item_offset += ds.n_items
        user_offset += ds.n_users
    inter = pl.concat(interactions)  # parts are sorted and their users disjoint and increasing: still sorted
    name = "+".join(ds.name for ds in parts)
    meta = {
        "name": name, "n_users": user_offset, "n_items": item_offset, "n_interactions": inter.height,
        "prep_version": parts[0].meta["prep_version"],
        "parts": [{"name": ds.name, "path": None if ds.path is None else str(ds.path), "n_items": ds.n_items,
                   "n_users": ds.n_users} for ds in parts],
        "statistics": dataset_statistics(inter, user_offset, item_offset),
    }
    merged = PreparedDataset(inter, pl.concat(items), pl.concat(users), meta)
    validate(merged)
    return merged


class ConcatDataModule(SequenceDataModule):
    """SequenceDataModule over the union of several prepared folders (e.g. Recformer pre-training on Sports
    and Toys). Validation and test rank against the union catalogue.

    Args:
        paths: the prepared folders, in order (item indices of later parts come after earlier ones).
        max_len, batch_size, eval_batch_size, objective, mask_prob, min_length, train_windows, length_grouped,
            length_pool, num_workers, seed: as in SequenceDataModule (spelled out so that YAML configs can reach them).
    """

    def __init__(
        self,
        paths: list[str],
        max_len: int = 50,
        batch_size: int = 128,
        eval_batch_size: int = 1024,
        objective: Literal["causal", "cloze"] = "causal",
        mask_prob: float = 0.2,
        min_length: int = 3,
        train_windows: Literal["all", "last", "every"] = "all",
        length_grouped: bool = False,
        length_pool: int = 16,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        if not paths:
            raise ValueError("ConcatDataModule needs at least one prepared folder in `paths`")
        super().__init__(
            path=",".join(paths), max_len=max_len, batch_size=batch_size, eval_batch_size=eval_batch_size,
            objective=objective, mask_prob=mask_prob, min_length=min_length, train_windows=train_windows,
            length_grouped=length_grouped, length_pool=length_pool, num_workers=num_workers, seed=seed,
        )
        self.paths = list(paths)

    @property
    def dataset(self) -> PreparedDataset:
        if self._dataset is None:
            self._dataset = concat_prepared([read_prepared(p) for p in self.paths])
        return self._dataset
