"""`--users FILE`: which users to score, given by their original ids, as text or parquet.

Text: one id per line; blank lines, lines starting with '#' and a first line reading `user_id` are skipped.
Parquet: the `user_id` column (or the only column), any type, compared as text. Ids are matched against
`users.parquet` of the prepared folder; an unknown id is an error naming the file and line (or row), since
silently dropping it would hand back fewer lists than were asked for. A repeated id is scored once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

_SHOWN = 5


class UserListError(ValueError):
    """A --users file is unreadable or names users the prepared dataset does not have."""


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"PAR1"


def _read_text(path: Path) -> tuple[list[str], list[int]]:
    ids, lines = [], []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            value = raw.strip()
            if not value or value.startswith("#") or (not ids and value == "user_id"):
                continue
            ids.append(value)
            lines.append(number)
    return ids, lines


def _read_parquet(path: Path) -> tuple[list[str], list[int]]:
    table = pl.read_parquet(path)
    if "user_id" in table.columns:
        column = table["user_id"]
    elif table.width == 1:
        column = table.to_series(0)
    else:
        raise UserListError(f"{path}: expected a 'user_id' column (or a single column); found {table.columns}")
    if column.null_count():
        row = int(column.is_null().arg_true()[0])
        raise UserListError(f"{path}: row {row + 1} of column '{column.name}' is null")
    return column.cast(pl.String).to_list(), list(range(1, column.len() + 1))


def read_user_list(
    path: str | Path, users: pl.DataFrame, data: str, eligible: np.ndarray | None = None, why: str = ""
) -> np.ndarray:
    """Sorted, distinct user indices for the ids listed in `path`; `users` is the prepared users table.

    `eligible` (sorted user indices) are the users the split can score; a listed user outside it is an
    error too, explained by `why`.
    """
    path = Path(path)
    if not path.is_file():
        raise UserListError(f"{path}: no such --users file")
    parquet = _is_parquet(path)
    try:
        ids, where = _read_parquet(path) if parquet else _read_text(path)
    except UnicodeDecodeError as exc:
        raise UserListError(f"{path}: not UTF-8 text or parquet ({exc})") from exc
    if not ids:
        raise UserListError(f"{path}: lists no user ids")
    lookup = dict(zip(users["user_id"].to_list(), users["user_idx"].to_list(), strict=True))
    found = [lookup.get(value) for value in ids]
    unit = "row" if parquet else "line"
    unknown = [(w, value) for w, value, idx in zip(where, ids, found, strict=True) if idx is None]
    if unknown:
        raise UserListError(f"{path}: {len(unknown)} user id(s) not in {data}/users.parquet ({_show(unknown, unit)})")
    if eligible is not None:
        ok = np.isin(np.asarray(found, dtype=np.int64), eligible)
        outside = [(w, value) for w, value, good in zip(where, ids, ok, strict=True) if not good]
        if outside:
            raise UserListError(f"{path}: {len(outside)} user(s) cannot be scored: {why} ({_show(outside, unit)})")
    return np.unique(np.asarray(found, dtype=np.int64))


def _show(bad: list[tuple[int, str]], unit: str) -> str:
    shown = "; ".join(f"{unit} {w}: '{value}'" for w, value in bad[:_SHOWN])
    return shown + (f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else "")
