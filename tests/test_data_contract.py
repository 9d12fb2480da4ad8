from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from recsys.data.contract import (
    PREP_VERSION,
    ContractError,
    PreparedDataset,
    cast_interactions,
    read_prepared,
    sort_interactions,
    write_prepared,
)


def _dataset(**overrides: object) -> PreparedDataset:
    interactions = cast_interactions(
        pl.DataFrame({"user_idx": [0, 0, 1, 1, 1], "item_idx": [1, 2, 2, 3, 1], "timestamp": [1, 2, 5, 6, 6]})
    )
    items = pl.DataFrame(
        {"item_idx": [1, 2, 3], "item_id": ["a", "b", "c"], "text": ["x", "y", "z"]},
        schema={"item_idx": pl.Int32, "item_id": pl.String, "text": pl.String},
    )
    users = pl.DataFrame({"user_idx": [0, 1], "user_id": ["u0", "u1"]}, schema={"user_idx": pl.Int32, "user_id": pl.String})
    meta = {"name": "toy", "n_users": 2, "n_items": 3, "n_interactions": 5, "prep_version": PREP_VERSION}
    fields = {"interactions": interactions, "items": items, "users": users, "meta": meta}
    fields.update(overrides)
    return PreparedDataset(**fields)  # type: ignore[arg-type]


def test_round_trip(tmp_path: Path) -> None:
    ds = _dataset()
    out = write_prepared(ds, tmp_path / "toy")
    back = read_prepared(out)
    assert back.interactions.equals(ds.interactions)
    assert back.items.equals(ds.items)
    assert back.users.equals(ds.users)
    assert back.meta == ds.meta
    assert back.n_items == 3 and back.n_users == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    write_prepared(_dataset(), tmp_path / "toy")
    with pytest.raises(FileExistsError):
        write_prepared(_dataset(), tmp_path / "toy")
    write_prepared(_dataset(), tmp_path / "toy", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: {"interactions": d.interactions.with_columns(pl.col("item_idx").cast(pl.Int64))}, "item_idx.*Int32"),
        (lambda d: {"interactions": d.interactions.drop("timestamp")}, "missing column 'timestamp'"),
        (lambda d: {"interactions": d.interactions.reverse()}, "sorted by user_idx"),
        (lambda d: {"items": d.items.filter(pl.col("item_idx") < 3)}, "item_idx' must lie in 1..2"),
        (lambda d: {"items": d.items.with_columns(pl.lit(7, pl.Int32).alias("item_idx"))}, "must run 1..3"),
        (lambda d: {"meta": {**d.meta, "n_interactions": 9}}, "n_interactions"),
        (lambda d: {"meta": {k: v for k, v in d.meta.items() if k != "name"}}, "missing key 'name'"),
    ],
)
def test_violations_are_named_and_nothing_is_written(tmp_path: Path, change, message: str) -> None:
    base = _dataset()
    bad = _dataset(**change(base))
    with pytest.raises(ContractError, match=message):
        write_prepared(bad, tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []


def test_reader_names_the_file(tmp_path: Path) -> None:
    out = write_prepared(_dataset(), tmp_path / "toy")
    (out / "users.parquet").unlink()
    with pytest.raises(ContractError, match="users.parquet"):
        read_prepared(out)
    with pytest.raises(ContractError, match="no such prepared-dataset folder"):
        read_prepared(tmp_path / "nowhere")


def test_reader_names_bad_meta_json(tmp_path: Path) -> None:
    out = write_prepared(_dataset(), tmp_path / "toy")
    (out / "meta.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ContractError, match=r"meta.json: not valid JSON \(line 1"):
        read_prepared(out)


def test_sort_keeps_ties_in_file_order() -> None:
    df = cast_interactions(
        pl.DataFrame({"user_idx": [1, 0, 1, 0], "item_idx": [9, 8, 7, 6], "timestamp": [3, 3, 3, 1]})
    )
    out = sort_interactions(df)
    assert out["item_idx"].to_list() == [6, 8, 9, 7]
