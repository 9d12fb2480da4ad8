"""The prepared-dataset contract: the one wall every dataset, real or generated, crosses.

`data_prep` writes it, everything in `recsys` reads it, and both go through this file so that the two
sides can never disagree about a column. See DESIGN.md, "The prepared-dataset contract".

Ordering rule (it changes test targets, so it is written down): interactions are sorted by user, then
timestamp, with ties kept in the order the raw file gave them (a stable sort).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

PREP_VERSION = "1"

INTERACTIONS_FILE = "interactions.parquet"
ITEMS_FILE = "items.parquet"
USERS_FILE = "users.parquet"
PREFERENCES_FILE = "preferences.parquet"
META_FILE = "meta.json"

INTERACTION_COLUMNS: dict[str, pl.DataType] = {
    "user_idx": pl.Int32(),
    "item_idx": pl.Int32(),
    "timestamp": pl.Int64(),
    "rating": pl.Float32(),
}
ITEM_COLUMNS: dict[str, pl.DataType] = {"item_idx": pl.Int32(), "item_id": pl.String(), "text": pl.String()}
USER_COLUMNS: dict[str, pl.DataType] = {"user_idx": pl.Int32(), "user_id": pl.String()}
PREFERENCE_COLUMNS: dict[str, pl.DataType] = {
    "user_idx": pl.Int32(),
    "position": pl.Int32(),
    "text": pl.String(),
}
META_KEYS = ("name", "n_users", "n_items", "n_interactions", "prep_version")


class ContractError(ValueError):
    """A prepared folder (or a table about to be written as one) breaks the contract."""


@dataclass(frozen=True)
class PreparedDataset:
    """The four tables of a prepared folder, validated."""

    interactions: pl.DataFrame
    items: pl.DataFrame
    users: pl.DataFrame
    meta: dict[str, Any]
    preferences: pl.DataFrame | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def n_items(self) -> int:
        return self.items.height

    @property
    def n_users(self) -> int:
        return self.users.height

    @property
    def name(self) -> str:
        return str(self.meta["name"])


def sort_interactions(interactions: pl.DataFrame) -> pl.DataFrame:
    """Apply the contract's ordering rule: user, then time, ties in file order."""
    return interactions.sort(["user_idx", "timestamp"], maintain_order=True)


def cast_interactions(interactions: pl.DataFrame) -> pl.DataFrame:
    """Cast to the contract dtypes, adding a null `rating` column when the source has none."""
    if "rating" not in interactions.columns:
        interactions = interactions.with_columns(pl.lit(None, dtype=pl.Float32).alias("rating"))
    return interactions.select([pl.col(c).cast(t) for c, t in INTERACTION_COLUMNS.items()])


def dataset_statistics(interactions: pl.DataFrame, n_users: int, n_items: int) -> dict[str, float | int]:
    """The figures a paper prints in its dataset table."""
    lengths = interactions.group_by("user_idx").len()["len"]
    n = interactions.height
    return {
        "users": n_users,
        "items": n_items,
        "interactions": n,
        "avg_length": round(n / max(n_users, 1), 4),
        "median_length": float(lengths.median()) if lengths.len() else 0.0,
        "min_length": int(lengths.min()) if lengths.len() else 0,
        "max_length": int(lengths.max()) if lengths.len() else 0,
        "density": round(n / max(n_users * n_items, 1), 6),
    }


def _check_columns(df: pl.DataFrame, required: Mapping[str, pl.DataType], where: str) -> None:
    for column, dtype in required.items():
        if column not in df.columns:
            raise ContractError(f"{where}: missing column '{column}' (expected {dtype}); found {df.columns}")
        if df.schema[column] != dtype:
            raise ContractError(f"{where}: column '{column}' has dtype {df.schema[column]}, expected {dtype}")


def _check_range_index(column: pl.Series, start: int, where: str) -> None:
    expected = pl.int_range(start, start + column.len(), eager=True, dtype=pl.Int64)
    bad = (column.cast(pl.Int64) != expected).arg_true()
    if bad.len():
        row = int(bad[0])
        raise ContractError(
            f"{where}: column '{column.name}' must run {start}..{start + column.len() - 1} in order; "
            f"row {row} holds {column[row]}, expected {start + row}"
        )


def validate(ds: PreparedDataset) -> None:
    """Check every rule of the contract; the message names the file, the column and what was expected."""
    root = ds.path or Path("<memory>")
    inter_where, items_where, users_where = (str(root / f) for f in (INTERACTIONS_FILE, ITEMS_FILE, USERS_FILE))
    _check_columns(ds.interactions, INTERACTION_COLUMNS, inter_where)
    _check_columns(ds.items, ITEM_COLUMNS, items_where)
    _check_columns(ds.users, USER_COLUMNS, users_where)
    _check_range_index(ds.items["item_idx"], 1, items_where)
    _check_range_index(ds.users["user_idx"], 0, users_where)
    for column in ("user_idx", "item_idx", "timestamp"):
        nulls = ds.interactions[column].null_count()
        if nulls:
            raise ContractError(f"{inter_where}: column '{column}' has {nulls} nulls, expected none")
    if ds.items["text"].null_count():
        raise ContractError(f"{items_where}: column 'text' has nulls; every item needs a sentence (may be empty)")
    inter = ds.interactions
    if inter.height:
        item_min, item_max = inter["item_idx"].min(), inter["item_idx"].max()
        if item_min < 1 or item_max > ds.n_items:
            raise ContractError(
                f"{inter_where}: column 'item_idx' must lie in 1..{ds.n_items} (0 is padding); "
                f"found {item_min}..{item_max}"
            )
        user_min, user_max = inter["user_idx"].min(), inter["user_idx"].max()
        if user_min < 0 or user_max >= ds.n_users:
            raise ContractError(
                f"{inter_where}: column 'user_idx' must lie in 0..{ds.n_users - 1}; found {user_min}..{user_max}"
            )
        ordered = inter.select(
            (
                (pl.col("user_idx").diff() > 0)
                | ((pl.col("user_idx").diff() == 0) & (pl.col("timestamp").diff() >= 0))
            ).fill_null(True)
        ).to_series()
        bad = (~ordered).arg_true()
        if bad.len():
            raise ContractError(
                f"{inter_where}: rows must be sorted by user_idx, then timestamp; row {int(bad[0])} breaks the order"
            )
    for key in META_KEYS:
        if key not in ds.meta:
            raise ContractError(f"{root / META_FILE}: missing key '{key}'")
    for key, actual in (("n_users", ds.n_users), ("n_items", ds.n_items), ("n_interactions", inter.height)):
        if int(ds.meta[key]) != actual:
            raise ContractError(f"{root / META_FILE}: '{key}' is {ds.meta[key]} but the tables hold {actual}")
    if ds.preferences is not None:
        _check_columns(ds.preferences, PREFERENCE_COLUMNS, str(root / PREFERENCES_FILE))


def read_prepared(path: str | os.PathLike[str]) -> PreparedDataset:
    """Read and validate a prepared folder."""
    root = Path(path)
    if not root.is_dir():
        raise ContractError(f"{root}: no such prepared-dataset folder (run `recsys prep` first)")
    for name in (INTERACTIONS_FILE, ITEMS_FILE, USERS_FILE, META_FILE):
        if not (root / name).is_file():
            raise ContractError(f"{root / name}: missing; a prepared folder holds {INTERACTIONS_FILE}, "
                                f"{ITEMS_FILE}, {USERS_FILE} and {META_FILE}")
    try:
        meta = json.loads((root / META_FILE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ContractError(f"{root / META_FILE}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    prefs_path = root / PREFERENCES_FILE
    ds = PreparedDataset(
        interactions=pl.read_parquet(root / INTERACTIONS_FILE),
        items=pl.read_parquet(root / ITEMS_FILE),
        users=pl.read_parquet(root / USERS_FILE),
        meta=meta,
        preferences=pl.read_parquet(prefs_path) if prefs_path.is_file() else None,
        path=root,
    )
    validate(ds)
    return ds


def write_prepared(ds: PreparedDataset, out: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Validate, then write into a temporary sibling folder and rename it into place.

    A crash or a bad table leaves no half-written output folder behind.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass overwrite=True (--overwrite) to replace it")
    validate(ds)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        ds.interactions.write_parquet(tmp / INTERACTIONS_FILE)
        ds.items.write_parquet(tmp / ITEMS_FILE)
        ds.users.write_parquet(tmp / USERS_FILE)
        if ds.preferences is not None:
            ds.preferences.write_parquet(tmp / PREFERENCES_FILE)
        (tmp / META_FILE).write_text(json.dumps(ds.meta, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        if out.exists():
            trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            out.rename(trash)
            tmp.rename(out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
