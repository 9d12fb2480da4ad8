"""Reading raw text files into polars with errors that point at the offending line.

Public dumps are hand-edited, re-encoded and truncated in the wild. Every helper here fails with a
PrepError naming the file, the line (or JSON key) and the expected shape, so that a user can open the
file at that line instead of reading a polars traceback. Splitting and casting run inside polars: no
Python loop touches individual rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from data_prep.errors import PrepError

LINE_NO = "line_no"

_SEPARATOR_NAMES = {"\t": "tab", " ": "space", ",": "comma", "|": "'|'", "::": "'::'", ";": "semicolon"}


def describe_separator(sep: str) -> str:
    return _SEPARATOR_NAMES.get(sep, repr(sep))


def require_file(path: Path, what: str) -> Path:
    """Fail early, before any output exists, when an expected raw file is absent."""
    if not path.is_file():
        hint = f" (the folder {path.parent} does not exist)" if not path.parent.is_dir() else ""
        raise PrepError(path, f"missing file{hint}", expected=what)
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path: Path, encoding: str, what: str) -> str:
    """Decode strictly: a wrong encoding must fail loudly, not turn names into mojibake."""
    require_file(path, what)
    data = path.read_bytes()
    if not data.strip():
        raise PrepError(path, "the file is empty", expected=what)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PrepError(
            path,
            f"byte 0x{data[exc.start]:02X} at offset {exc.start} is not valid {encoding}",
            line=line,
            expected=f"{encoding}-encoded text ({what})",
        ) from exc


def read_lines(path: Path, encoding: str, what: str) -> pl.DataFrame:
    """One row per line: `line_no` (1-based) and `line`; trailing blank lines are ignored, inner ones are errors."""
    text = read_text(path, encoding, what).rstrip("\r\n")
    lines = (
        pl.DataFrame({"line": [text]})
        .select(pl.col("line").str.split("\n"))
        .explode("line")
        .with_row_index(LINE_NO, offset=1)
        .with_columns(pl.col("line").str.strip_suffix("\r"))
    )
    blank = lines.filter(pl.col("line").str.strip_chars() == "")
    if blank.height:
        raise PrepError(path, "empty line", line=int(blank[LINE_NO][0]), expected=what)
    return lines


def split_fields(lines: pl.DataFrame, path: Path, sep: str, names: Sequence[str], what: str) -> pl.DataFrame:
    """Split each line into exactly len(names) string columns, keeping `line_no`."""
    parts = lines.with_columns(pl.col("line").str.split(sep).alias("_fields"))
    bad = parts.filter(pl.col("_fields").list.len() != len(names))
    if bad.height:
        line_no, line, found = bad.select(LINE_NO, "line", pl.col("_fields").list.len()).row(0)
        others = [describe_separator(s) for s in _SEPARATOR_NAMES if s != sep and s in line]
        hint = f"; the line contains {', '.join(others)}: wrong separator?" if others and found == 1 else ""
        raise PrepError(
            path,
            f"found {found} field(s) separated by {describe_separator(sep)}{hint}",
            line=int(line_no),
            expected=f"{len(names)} fields separated by {describe_separator(sep)} ({what}: {', '.join(names)})",
        )
    return parts.select(
        LINE_NO, *[pl.col("_fields").list.get(i).alias(name) for i, name in enumerate(names)]
    )


def parse_numbers(
    table: pl.DataFrame, path: Path, columns: Sequence[str], dtype: pl.DataType, what: str
) -> pl.DataFrame:
    """Cast string columns to numbers; the first value that is not a number is reported with its line."""
    cast = table.with_columns(
        pl.col(c).str.strip_chars().cast(dtype, strict=False).alias(c) for c in columns
    )
    for column in columns:
        bad = cast[column].is_null() & table[column].is_not_null()
        if bad.any():
            row = int(bad.arg_true()[0])
            raise PrepError(
                path,
                f"field '{column}' is {table[column][row]!r}, not a number",
                line=int(table[LINE_NO][row]),
                expected=f"{'an integer' if dtype.is_integer() else 'a number'} in '{column}' ({what})",
            )
    return cast


def check_unique(table: pl.DataFrame, path: Path, column: str, what: str) -> None:
    """Ids that should identify a row must do so; a repeated id would silently merge two records."""
    dup = table.filter(pl.col(column).is_duplicated())
    if dup.height:
        value = dup[column][0]
        lines = dup.filter(pl.col(column) == value)[LINE_NO].to_list()
        raise PrepError(
            path,
            f"'{column}' {value} appears on lines {lines[0]} and {lines[1]}",
            line=int(lines[1]),
            expected=f"each {column} once ({what})",
        )


def read_json(path: Path, what: str) -> Any:
    """UTF-8 JSON (RFC 8259 allows nothing else); syntax errors report their line."""
    text = read_text(path, "utf-8", what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PrepError(path, f"not valid JSON ({exc.msg}, column {exc.colno})", line=exc.lineno, expected=what) from exc
