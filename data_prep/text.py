"""Item attributes flattened into one sentence, in Recformer's key-value form.

Text-based recommenders (Recformer, and TIGER/Mender through their semantic-ID tokenizers) read an
item as `key: value; key: value`. Keys come in a fixed order so the same item always gives the same
string, list values are joined with ", ", empty values are dropped, and the sentence is capped on a word
boundary so a long title cannot crowd out the attributes in a fixed token budget. Everything is a
polars expression, evaluated once per item table.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

DEFAULT_MAX_CHARS = 256
MIN_MAX_CHARS = 16


def _as_text(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.List):
        joined = value.list.eval(pl.element().cast(pl.String)).list.join(", ")
    else:
        joined = value.cast(pl.String)
    joined = joined.str.strip_chars()
    return pl.when(joined.str.len_chars() > 0).then(joined)


def cap_words(text: pl.Expr, max_chars: int) -> pl.Expr:
    """At most max_chars characters, cut at the last whitespace that fits, without dangling separators.

    A single word longer than the cap is cut hard, since there is no boundary to cut at.
    """
    head = text.str.slice(0, max_chars + 1)
    # Drop the partial last word (and the whitespace before it); if character max_chars is itself a
    # space, only that space goes. Then drop a key left without its value ("; genres:") and any
    # trailing separator; a sentence reduced to a bare key falls back to the hard cut.
    on_boundary = (
        head.str.replace(r"\s*\S*$", "")
        .str.replace(r";\s*[^;:]*:?\s*$", "")
        .str.replace(r"[\s;:,]+$", "")
        .str.replace(r"^[^;:]*:?$", "")
    )
    hard = text.str.slice(0, max_chars)
    capped = pl.when(on_boundary.str.len_chars() > 0).then(on_boundary).otherwise(hard)
    return pl.when(text.str.len_chars() <= max_chars).then(text).otherwise(capped)


def key_value_text(
    frame: pl.DataFrame, fields: Sequence[tuple[str, str]], max_chars: int = DEFAULT_MAX_CHARS
) -> pl.Series:
    """`key: value; key: value` for each row, from (key, column) pairs in the given order.

    String, number and list columns are accepted; nulls and empty lists leave their key out. The
    result is never null (an item with no attributes gets ""), as the contract requires.
    """
    if max_chars < MIN_MAX_CHARS:
        raise ValueError(f"text max chars must be at least {MIN_MAX_CHARS}, got {max_chars}")
    parts = [
        pl.concat_str(pl.lit(f"{key}: "), _as_text(pl.col(column), frame.schema[column]))
        for key, column in fields
    ]
    sentence = pl.concat_str(parts, separator="; ", ignore_nulls=True).fill_null("")
    return frame.select(cap_words(sentence, max_chars).alias("text")).to_series()


def attribute_tokens(attributes: pl.Expr, prefix: str = "a") -> pl.Expr:
    """Anonymous attribute ids as word-like tokens (`a12 a407`), each once, in list order.

    Used where a dataset gives attribute ids but no names: a text model can still learn that two items
    share `a407`, and the prefix keeps the ids from reading as quantities.
    """
    return (
        attributes.list.unique(maintain_order=True)
        .list.eval(pl.lit(prefix) + pl.element().cast(pl.String))
        .list.join(" ")
    )
