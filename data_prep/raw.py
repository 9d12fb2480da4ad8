"""What every reader hands to the builder: the source's tables under its own ids, before filtering.

Readers know file formats; the builder (build.py) knows filters, re-indexing and the contract. This
dataclass is the seam between them, so a new format needs only a reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from data_prep.text import DEFAULT_MAX_CHARS


@dataclass(frozen=True)
class ReadOptions:
    """Reader settings that change what is read (not how it is filtered)."""

    text_max_chars: int = DEFAULT_MAX_CHARS
    numbering: str | None = None  # Toys only: "s3rec" (default) or "p5"
    users: int = 2000  # synthetic only
    items: int = 500  # synthetic only
    seed: int = 0  # synthetic only


@dataclass(frozen=True)
class RawDataset:
    """A source's tables keyed by its own integer ids.

    interactions: user_key:int64, item_key:int64, timestamp:int64, rating:float32 (may be all null),
        in file order (the contract keeps that order for equal timestamps).
    items: item_key:int64 (unique), item_id:str, attribute columns, text:str.
    users: user_key:int64 (unique), user_id:str, attribute columns.
    sources: the raw files read, recorded with their sha256 in meta.json.
    facts: meta.json entries that only the reader knows (timestamp meaning, kind of item text, ...).
    """

    name: str
    interactions: pl.DataFrame
    items: pl.DataFrame
    users: pl.DataFrame
    sources: list[Path]
    facts: dict[str, Any] = field(default_factory=dict)
    has_ratings: bool = False
