"""What an evaluation returns, and the tables it prints: never a number without its protocol."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one model on one split, with the protocol that produced them.

    `seconds` covers the whole evaluation: item-table export, index build, encoding and ranking.
    """

    metrics: dict[str, float]
    protocol: str
    split: str
    n_users: int
    seconds: float
    model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        return cls(**data)

    def __str__(self) -> str:
        return format_table([self])


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


def format_table(results: Sequence[EvalResult], columns: Sequence[str] | None = None) -> str:
    """A markdown table, one row per result; the protocol is a column, so it survives copy-paste."""
    if not results:
        raise ValueError("no results to tabulate")
    if columns is None:
        columns = list(dict.fromkeys(key for result in results for key in result.metrics))
    header = ["model", "split", *columns, "users", "seconds", "protocol"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [r.model or "-", r.split, *(_fmt(r.metrics.get(c, math.nan)) for c in columns)]
        cells += [f"{r.n_users:,}", f"{r.seconds:.2f}", r.protocol]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
