"""The synthetic dataset: deterministic, fast, learnable by a sequential model and not by popularity."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest

from data_prep import PrepError, prepare_dataset
from data_prep.synthetic import generate
from recsys.data.contract import read_prepared


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = generate(300, 100, seed=7)
    b = generate(300, 100, seed=7)
    c = generate(300, 100, seed=8)
    for x, y in zip(a, b, strict=True):
        assert x.equals(y)
    assert not a[0].equals(c[0])


def test_prepared_folders_are_identical_by_seed(tmp_path: Path) -> None:
    first = prepare_dataset("synthetic", users=100, items=40, seed=1)
    second = prepare_dataset("synthetic", users=100, items=40, seed=1)
    assert first.interactions.equals(second.interactions) and first.items.equals(second.items)
    assert first.meta == second.meta


def test_generation_is_fast() -> None:
    start = time.perf_counter()
    generate(2000, 500, seed=0)
    assert time.perf_counter() - start < 1.0


def test_shape(prepared_synthetic: Path) -> None:
    ds = read_prepared(prepared_synthetic)
    assert (ds.n_users, ds.n_items) == (1000, 300)
    lengths = ds.interactions.group_by("user_idx").len()["len"]
    assert lengths.min() >= 10 and lengths.max() <= 40
    strictly_increasing = ds.interactions.select(
        ((pl.col("timestamp").diff() > 0) | (pl.col("user_idx").diff() != 0)).fill_null(True).all()
    ).item()
    assert strictly_increasing
    assert ds.items["text"][0].startswith("category: ")
    assert ds.meta["generator"]["seed"] == 0 and ds.meta["item_text"].startswith("category, color and size")


def test_sequence_beats_popularity(prepared_synthetic: Path) -> None:
    """Predicting the successor item is right most of the time; predicting the top-10 popular items is not."""
    ds = read_prepared(prepared_synthetic)
    items = ds.items.select("item_idx", "cluster", "cluster_position")
    sizes = items.group_by("cluster").len()
    successor = (
        items.join(sizes, on="cluster")
        .with_columns(((pl.col("cluster_position") + 1) % pl.col("len")).alias("next_position"))
        .join(items.rename({"item_idx": "successor", "cluster_position": "next_position"}),
              on=["cluster", "next_position"])
        .select("item_idx", "successor")
    )
    pairs = ds.interactions.with_columns(pl.col("item_idx").shift(-1).over("user_idx").alias("next")).drop_nulls("next")
    hits = pairs.join(successor, on="item_idx").select((pl.col("next") == pl.col("successor")).mean()).item()
    assert hits > 0.7

    counts = ds.interactions.group_by("item_idx").len()
    top10 = counts.sort("len", descending=True).head(10)["item_idx"]
    popular_hits = pairs.select(pl.col("next").is_in(top10.implode()).mean()).item()
    assert popular_hits < 0.06  # flat popularity: 10 of 300 items is about 3.3%
    assert counts["len"].max() < 2.0 * counts["len"].mean()


@pytest.mark.parametrize(("users", "items"), [(0, 100), (10, 5)])
def test_bad_sizes(users: int, items: int) -> None:
    with pytest.raises(PrepError):
        prepare_dataset("synthetic", users=users, items=items)
