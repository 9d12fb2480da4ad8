"""Readers for the S3-Rec sequence files (Amazon Beauty/Sports/Toys, Yelp, LastFM).

Format: `<Name>.txt` holds one line per user, `user item item ...`, items in time order, and
`<Name>_item2attributes.json` maps each item id to its attribute ids. The files carry no times, so the
timestamp is the item's position in its user's line. Item and user numbers stay the S3-Rec numbers
(item_idx equals the S3-Rec item id when nothing is filtered out), which is what S3-Rec, P5, TIGER and
later papers evaluate on.

Where P5's datamaps.json belongs to the same numbering (Beauty, Sports), item_id and user_id become the
Amazon ASINs and reviewer ids. Beauty's attribute ids also map to brand and category names (see
`beauty_attribute_names`); elsewhere the attributes are anonymous tokens.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from data_prep.errors import PrepError
from data_prep.raw import RawDataset, ReadOptions
from data_prep.rawfiles import LINE_NO, check_unique, parse_numbers, read_json, read_lines
from data_prep.text import attribute_tokens, key_value_text

ITEM_TEXT_NAMES = "brand and category names"
ITEM_TEXT_TOKENS = "attribute tokens (no names available)"
# S3-Rec kept only the P5 attributes seen at least this often (derivation checked in the Beauty SOURCE.md).
S3REC_MIN_ATTRIBUTE_COUNT = 5


@dataclass(frozen=True)
class S3RecLayout:
    """Which files make up one dataset, and what they can tell."""

    sequences: str
    attributes: str | None
    datamaps: str | None = None
    attribute_names: bool = False
    numbering: str = "s3rec"

    @property
    def numbering_label(self) -> str:
        return {"s3rec": "S3-Rec", "p5": "P5"}.get(self.numbering, self.numbering)


def read_sequences(path: Path) -> pl.DataFrame:
    """`user item item ...` lines into rows (line_no, user_key, item_key, timestamp = position in the line)."""
    what = "one line per user: a user id, then that user's item ids in time order, separated by spaces"
    lines = read_lines(path, "utf-8", what)
    tokens = lines.select(LINE_NO, pl.col("line").str.extract_all(r"\S+").alias("tokens"))
    short = tokens.filter(pl.col("tokens").list.len() < 2)
    if short.height:
        raise PrepError(path, "a user id with no items", line=int(short[LINE_NO][0]), expected=what)
    users = tokens.select(LINE_NO, pl.col("tokens").list.first().alias("user_key"), pl.col("tokens").list.slice(1).alias("item_key"))
    users = parse_numbers(users.drop("item_key"), path, ["user_key"], pl.Int64(), "user id").with_columns(users["item_key"])
    check_unique(users, path, "user_key", "one line per user")
    rows = users.with_columns(pl.int_ranges(pl.col("item_key").list.len()).alias("timestamp")).explode(
        ["item_key", "timestamp"]
    )
    return parse_numbers(rows, path, ["item_key"], pl.Int64(), "item ids")


def read_item_attributes(path: Path) -> pl.DataFrame:
    """`{"item": [attr, ...]}` into rows (item_key, attributes: list[int])."""
    what = 'a JSON object {"item id": [attribute id, ...]}'
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise PrepError(path, f"the top level is a JSON {type(data).__name__}", expected=what)
    if not data:
        raise PrepError(path, "the JSON object has no items", expected=what)
    keys = pl.Series("item_key", list(data.keys()))
    try:
        attributes = pl.Series("attributes", list(data.values()), dtype=pl.List(pl.Int64), strict=True)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        attributes = None
    if attributes is None or attributes.null_count():
        # Slow path, only to name the culprit.
        for key, value in data.items():
            if not isinstance(value, list) or not all(isinstance(a, int) for a in value):
                raise PrepError(path, f"the value is {value!r}", key=key, expected="a list of integer attribute ids") from None
    int_keys = keys.cast(pl.Int64, strict=False)
    if int_keys.null_count():
        bad = keys.filter(int_keys.is_null())[0]
        raise PrepError(path, "the key is not an integer item id", key=bad, expected=what)
    return pl.DataFrame([int_keys, attributes.cast(pl.List(pl.Int32))])


def _check_items_have_attributes(sequences: pl.DataFrame, seq_path: Path, attributes: pl.DataFrame, attr_path: Path) -> None:
    missing = sequences.join(attributes.select("item_key"), on="item_key", how="anti")
    if missing.height:
        line, item = missing.select(LINE_NO, "item_key").row(0)
        raise PrepError(seq_path, f"item {item} has no entry in {attr_path.name}", line=int(line),
                        expected=f"every item in the sequences to be a key of {attr_path}")


def _id_map(datamaps: dict[str, Any], path: Path, section: str, keys: pl.Series, column: str) -> pl.DataFrame:
    """(key, original id) for every key in `keys`, from datamaps[section] ("id" -> ASIN or reviewer id)."""
    mapping = datamaps.get(section)
    if not isinstance(mapping, dict):
        raise PrepError(path, f"no '{section}' object", expected=f"P5 datamaps with '{section}'")
    table = pl.DataFrame({"key": list(mapping.keys()), column: [str(v) for v in mapping.values()]})
    table = table.with_columns(pl.col("key").cast(pl.Int64, strict=False)).drop_nulls("key")
    missing = keys.to_frame("key").join(table, on="key", how="anti")
    if missing.height:
        raise PrepError(path, f"id {missing['key'][0]} has no entry", key=section,
                        expected=f"'{section}' to cover every id in the sequence file")
    return table


def beauty_attribute_names(datamaps: dict[str, Any], path: Path, attributes: pl.DataFrame) -> list[str]:
    """Names for S3-Rec attribute ids 1..n, index k-1 for id k, HTML entities decoded.

    S3-Rec kept the P5 attributes counted at least 5 times and renumbered them 1..n in P5's
    `attribute2id` order. The rule is checked, not trusted: the number of kept attributes and each id's
    occurrence count must match the attribute file, else the names would silently be wrong.
    """
    order, counts = datamaps.get("attribute2id"), datamaps.get("attributeid2num")
    if not isinstance(order, dict) or not isinstance(counts, dict):
        raise PrepError(path, "no 'attribute2id'/'attributeid2num' objects", expected="P5 datamaps with attribute maps")
    kept = [(name, counts.get(str(pid), 0)) for name, pid in order.items()
            if counts.get(str(pid), 0) >= S3REC_MIN_ATTRIBUTE_COUNT]
    observed = (
        attributes.select(pl.col("attributes").explode().alias("attribute"))
        .group_by("attribute").len().sort("attribute")
    )
    expected_counts = pl.DataFrame(
        {"attribute": range(1, len(kept) + 1), "count": [c for _, c in kept]}, schema={"attribute": pl.Int32, "count": pl.UInt32}
    )
    joined = observed.join(expected_counts, on="attribute", how="full")
    if joined.height != len(kept) or not (joined["len"] == joined["count"]).all():
        raise PrepError(path, "its attribute counts do not line up with the S3-Rec attribute ids",
                        expected=f"the {len(kept)} attributes counted >= {S3REC_MIN_ATTRIBUTE_COUNT} times to be "
                        "S3-Rec ids 1..n in attribute2id order")
    return [html.unescape(name) for name, _ in kept]


def _named_attribute_columns(items: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """brand (str) and categories (list[str]) per item.

    In S3-Rec lists the brand comes first, followed by the category path. An attribute id that never
    stands anywhere but first in any item's list is a brand; the rest are categories (435 brands in
    Beauty). An item whose first attribute is a category simply has no brand.
    """
    positions = items.select(
        pl.col("attributes").explode().alias("attribute"),
        pl.int_ranges(pl.col("attributes").list.len()).explode().alias("position"),
    )
    brands = positions.group_by("attribute").agg((pl.col("position").max() == 0).alias("is_brand"))
    brand_ids = brands.filter("is_brand")["attribute"].to_list()
    name_of = pl.element().replace_strict(list(range(1, len(names) + 1)), names, return_dtype=pl.String)
    unique = pl.col("attributes").list.unique(maintain_order=True)
    is_brand = pl.element().is_in(brand_ids)
    return items.with_columns(
        unique.list.filter(is_brand).list.eval(name_of).list.join(", ").replace("", None).alias("brand"),
        unique.list.filter(~is_brand).list.eval(name_of).alias("categories"),
    )


def read_s3rec(raw: Path, name: str, layout: S3RecLayout, options: ReadOptions) -> RawDataset:
    """One S3-Rec dataset folder into a RawDataset."""
    seq_path = raw / layout.sequences
    sequences = read_sequences(seq_path)
    sources = [seq_path]
    item_keys = sequences["item_key"].unique().sort()
    user_keys = sequences["user_key"].unique().sort()
    id_column = f"{layout.numbering}_id"

    if layout.attributes is not None:
        attr_path = raw / layout.attributes
        items = read_item_attributes(attr_path)
        sources.append(attr_path)
        _check_items_have_attributes(sequences, seq_path, items, attr_path)
        items = items.with_columns(attribute_tokens(pl.col("attributes")).alias("_tokens"))
    else:
        items = item_keys.to_frame()

    items = items.with_columns(pl.col("item_key").cast(pl.String).alias("item_id"), pl.col("item_key").cast(pl.Int32).alias(id_column))
    users = user_keys.to_frame().with_columns(
        pl.col("user_key").cast(pl.String).alias("user_id"), pl.col("user_key").cast(pl.Int32).alias(id_column)
    )
    facts: dict[str, Any] = {
        "timestamp": f"position of the item in its user's line of {layout.sequences} (0, 1, 2, ...); the S3-Rec "
        "files keep the time order but not the times, so positions stand in for timestamps",
        "rating": "none (implicit feedback); the column is null",
        "ids": f"item_id and user_id are the {layout.numbering_label} numbers (also in column {id_column})",
    }

    if layout.datamaps is not None:
        maps_path = raw / layout.datamaps
        datamaps = read_json(maps_path, "P5 datamaps.json (id2item, id2user)")
        if not isinstance(datamaps, dict):
            raise PrepError(maps_path, "the top level is not a JSON object", expected="P5 datamaps.json")
        sources.append(maps_path)
        asins = _id_map(datamaps, maps_path, "id2item", item_keys, "asin")
        reviewers = _id_map(datamaps, maps_path, "id2user", user_keys, "reviewer")
        items = items.join(asins.rename({"key": "item_key"}), on="item_key", how="left").with_columns(
            pl.col("asin").alias("item_id")
        ).drop("asin")
        users = users.join(reviewers.rename({"key": "user_key"}), on="user_key", how="left").with_columns(
            pl.col("reviewer").alias("user_id")
        ).drop("reviewer")
        facts["ids"] = (
            f"item_id is the Amazon ASIN and user_id the reviewer id, through {layout.datamaps} "
            f"(id2item, id2user); the {layout.numbering_label} numbers are in column {id_column}"
        )
        if layout.attribute_names and layout.attributes is not None:
            names = beauty_attribute_names(datamaps, maps_path, items)
            items = _named_attribute_columns(items, names)

    if "brand" in items.columns:
        items = items.with_columns(key_value_text(items, [("brand", "brand"), ("categories", "categories")],
                                                  options.text_max_chars))
        facts["item_text"] = ITEM_TEXT_NAMES
        facts["attributes"] = ("S3-Rec attribute ids as listed (repeats kept); brand = an id never seen after "
                               "position 0 of any item's list, categories = the others, names from P5 id2attribute")
    elif "_tokens" in items.columns:
        items = items.with_columns(key_value_text(items, [("attributes", "_tokens")], options.text_max_chars))
        facts["item_text"] = ITEM_TEXT_TOKENS
        facts["attributes"] = "S3-Rec attribute ids as listed (repeats kept); no names exist for them"
    else:
        items = items.with_columns(pl.lit("").alias("text"))
        facts["item_text"] = "none: this numbering has no attribute file (text is empty)"
    items = items.drop("_tokens", strict=False)
    return RawDataset(
        name=name,
        interactions=sequences.select("user_key", "item_key", "timestamp"),
        items=items,
        users=users,
        sources=sources,
        facts=facts,
    )
