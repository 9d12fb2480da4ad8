"""Filters, re-indexing, item text and the contract round trip, on small hand-made data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from data_prep import Filters, PrepError, prepare_dataset
from data_prep.filters import apply_filters, reindex
from data_prep.text import attribute_tokens, key_value_text
from recsys.data.contract import read_prepared, write_prepared


def _reference_core(pairs: list[tuple[int, int]], user_min: int, item_min: int) -> list[tuple[int, int]]:
    """The obvious loop: drop one offending node's rows at a time until none is left."""
    rows = list(pairs)
    while True:
        users: dict[int, int] = {}
        items: dict[int, int] = {}
        for u, i in rows:
            users[u] = users.get(u, 0) + 1
            items[i] = items.get(i, 0) + 1
        kept = [(u, i) for u, i in rows if users[u] >= user_min and items[i] >= item_min]
        if len(kept) == len(rows):
            return kept
        rows = kept


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("k", "min_length"), [(2, None), (3, None), (2, 4), (None, 3)])
def test_core_matches_reference(seed: int, k: int | None, min_length: int | None) -> None:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 40, size=300)
    items = (rng.zipf(1.6, size=300) % 60).astype(np.int64)
    frame = pl.DataFrame({"user_key": users, "item_key": items, "timestamp": np.arange(300)})
    filters = Filters(k_core=k, min_length=min_length)
    expected = _reference_core(list(zip(users.tolist(), items.tolist(), strict=True)), filters.user_min,
                               filters.item_min)
    try:
        kept, report = apply_filters(frame, filters, dataset="test", has_ratings=False)
    except PrepError:
        assert expected == []
        return
    assert list(zip(kept["user_key"].to_list(), kept["item_key"].to_list(), strict=True)) == expected
    assert kept["timestamp"].is_sorted()  # row order kept
    assert report["interactions_after"] == len(expected)


def test_core_needs_more_than_one_pass() -> None:
    # u3 (one row) goes first; then i3 drops to one row, then u2 drops to one row, ...
    frame = pl.DataFrame(
        {"user_key": [1, 1, 2, 2, 3, 4, 4, 5, 5], "item_key": [1, 2, 1, 3, 3, 4, 5, 4, 5], "timestamp": range(9)}
    )
    kept, report = apply_filters(frame, Filters(k_core=2), dataset="test", has_ratings=False)
    assert sorted(set(kept["user_key"].to_list())) == [4, 5]
    assert report["core_passes"] > 2


def test_min_rating_applies_first() -> None:
    frame = pl.DataFrame({"user_key": [1, 1, 2], "item_key": [1, 2, 1], "timestamp": [0, 1, 0],
                          "rating": [5.0, 2.0, 4.0]})
    kept, report = apply_filters(frame, Filters(min_rating=4), dataset="test", has_ratings=True)
    assert kept["rating"].to_list() == [5.0, 4.0] and report["after_min_rating"] == 2


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_filter_values_are_checked(bad: object) -> None:
    with pytest.raises(PrepError, match="k-core must be a positive integer"):
        Filters(k_core=bad)  # type: ignore[arg-type]


def test_reindex_by_source_key_keeps_row_order() -> None:
    interactions = pl.DataFrame({"user_key": [20, 10, 20], "item_key": [7, 30, 30], "timestamp": [5, 1, 5]})
    items = pl.DataFrame({"item_key": [30, 7, 99], "item_id": ["c", "a", "z"], "text": ["", "", ""]})
    users = pl.DataFrame({"user_key": [10, 20, 30], "user_id": ["x", "y", "w"]})
    inter, items_out, users_out = reindex(interactions, items, users)
    assert items_out.select("item_idx", "item_id").rows() == [(1, "a"), (2, "c")]  # 99 had no interactions
    assert users_out.select("user_idx", "user_id").rows() == [(0, "x"), (1, "y")]
    assert inter.select("user_idx", "item_idx").rows() == [(1, 1), (0, 2), (1, 2)]


def test_ties_keep_file_order(mini_ml100k: Path) -> None:
    ds = prepare_dataset("ml-100k", mini_ml100k)
    user1 = ds.interactions.filter(pl.col("user_idx") == 0)
    # u.data lists (1, 2) then (1, 1) at 881250950, after (1, 3) at 881250900
    assert user1["item_idx"].to_list() == [3, 2, 1]
    assert ds.meta["tie_rule"] == "equal timestamps keep raw-file order"


def test_key_value_text_order_lists_and_nulls() -> None:
    frame = pl.DataFrame({"t": ["Heat", None], "g": [["Action", "Crime"], []], "y": [1995, 2001]})
    text = key_value_text(frame, [("title", "t"), ("year", "y"), ("genres", "g")]).to_list()
    assert text == ["title: Heat; year: 1995; genres: Action, Crime", "year: 2001"]


@pytest.mark.parametrize("cap", [16, 20, 23, 30, 41, 60])
def test_text_cap_cuts_on_word_boundary(cap: int) -> None:
    frame = pl.DataFrame({"t": ["Star Trek: First Contact"], "g": [["Action", "Sci-Fi", "Adventure"]]})
    full = key_value_text(frame, [("title", "t"), ("genres", "g")], 500)[0]
    capped = key_value_text(frame, [("title", "t"), ("genres", "g")], cap)[0]
    assert len(capped) <= cap
    assert full.startswith(capped)
    assert full[len(capped):][:1] in ("", " ", ";", ",", ":")  # ends at a word boundary
    assert not capped.endswith((":", ";", ",", "genres"))  # no key without its value


def test_text_cap_single_long_word_is_cut_hard() -> None:
    frame = pl.DataFrame({"t": ["x" * 50]})
    assert key_value_text(frame, [("title", "t")], 20)[0] == "title: " + "x" * 13


def test_attribute_tokens_dedupe_in_order() -> None:
    frame = pl.DataFrame({"a": [[12, 407, 12, 3]]})
    assert frame.select(attribute_tokens(pl.col("a")))[0, 0] == "a12 a407 a3"


def test_round_trip(tmp_path: Path) -> None:
    ds = prepare_dataset("synthetic", users=200, items=50, seed=3, k_core=3)
    back = read_prepared(write_prepared(ds, tmp_path / "syn"))
    assert back.interactions.equals(ds.interactions)
    assert back.items.equals(ds.items)
    assert back.users.equals(ds.users)
    assert back.meta == ds.meta


def test_round_trip_real(prepared_ml100k: Path, data_root: Path) -> None:
    written = read_prepared(prepared_ml100k)
    again = prepare_dataset("ml-100k", data_root / "ml-100k")
    assert written.interactions.equals(again.interactions)
    assert written.items.equals(again.items) and written.users.equals(again.users)
    assert written.meta == again.meta
