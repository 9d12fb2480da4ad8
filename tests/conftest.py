"""Shared fixtures. Real datasets are read from $RECSYS_DATA (CI sets ../shared/datasets); never copied."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("RECSYS_DATA", "../shared/datasets"))
    if not root.is_dir():
        pytest.skip(f"real datasets not found at {root} (set RECSYS_DATA)")
    return root


@pytest.fixture(scope="session")
def prepared_ml100k(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ml-100k prepared once per session with default options (943 users, 1,682 items, 100,000 rows)."""
    from data_prep import prepare

    return prepare("ml-100k", raw=data_root / "ml-100k", out=tmp_path_factory.mktemp("prepared") / "ml-100k")


@pytest.fixture(scope="session")
def prepared_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset (1000 users, 300 items, seed 0) prepared once per session; needs no real data."""
    from data_prep import prepare

    return prepare(
        "synthetic", out=tmp_path_factory.mktemp("prepared") / "synthetic", users=1000, items=300, seed=0
    )


ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def _flags(*genres: str) -> str:
    return "|".join("1" if g in genres else "0" for g in ML100K_GENRES)


@pytest.fixture
def mini_ml100k(tmp_path: Path) -> Path:
    """A tiny but well-formed ml-100k folder (3 users, 3 movies, 8 ratings) that tests may corrupt.

    User 1 rates movies 2 and 1 at the same second, in that file order (a timestamp tie).
    """
    raw = tmp_path / "mini-ml-100k"
    raw.mkdir()
    toy_story = _flags("Animation", "Children's", "Comedy")
    (raw / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)) + "\n", encoding="latin-1")
    (raw / "u.item").write_bytes(
        (
            f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|"
            f"{toy_story}\n"
            f"2|Misérables, Les (1995)|01-Jan-1995||http://us.imdb.com/x|{_flags('Drama', 'War')}\n"
            f"3|Heat (1995)|01-Jan-1995||http://us.imdb.com/y|{_flags('Action', 'Crime', 'Thriller')}\n"
        ).encode("latin-1")
    )
    (raw / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n", encoding="ascii")
    (raw / "u.data").write_text(
        "1\t2\t4\t881250950\n"
        "1\t1\t5\t881250950\n"
        "2\t1\t3\t881250000\n"
        "1\t3\t2\t881250900\n"
        "3\t3\t1\t881250001\n"
        "2\t2\t5\t881250100\n"
        "3\t1\t4\t881250000\n"
        "2\t3\t4\t881250200\n",
        encoding="ascii",
    )
    return raw


@pytest.fixture
def mini_s3rec(tmp_path: Path) -> Path:
    """A tiny S3-Rec folder in the Yelp file names (3 users, 4 items) that tests may corrupt."""
    raw = tmp_path / "mini-s3rec"
    raw.mkdir()
    (raw / "Yelp.txt").write_text("1 1 2 3\n2 2 3 4 2\n3 4 1\n", encoding="utf-8")
    (raw / "Yelp_item2attributes.json").write_text(
        '{"1": [1, 2], "2": [3], "3": [2, 2, 4], "4": []}', encoding="utf-8"
    )
    return raw


@pytest.fixture
def benchmark_script(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Imports a benchmarks/NAME.py script as a module (its `main` not run), for testing its helpers."""

    def load(name: str) -> ModuleType:
        monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import their sibling `common`
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
