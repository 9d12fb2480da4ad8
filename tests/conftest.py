"""Shared fixtures. Real datasets are read from $RECSYS_DATA (CI sets ../shared/datasets); never copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("RECSYS_DATA", "../shared/datasets"))
    if not root.is_dir():
        pytest.skip(f"real datasets not found at {root} (set RECSYS_DATA)")
    return root
