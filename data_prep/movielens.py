"""MovieLens 100K and 1M (GroupLens) readers.

Ids stay the GroupLens ids (as strings in item_id/user_id), ratings stay in `rating`, timestamps are
the unix seconds of each rating. Items carry title, year and genres (their text); users carry age,
gender, occupation and zip code. The metadata files are latin-1, as GroupLens wrote them.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from data_prep.errors import PrepError
from data_prep.raw import RawDataset, ReadOptions
from data_prep.rawfiles import LINE_NO, check_unique, parse_numbers, read_lines, split_fields
from data_prep.text import key_value_text

# The ML-1M README's occupation codes, in code order (0..20).
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip

_YEAR_SUFFIX = r"\s*\((\d{4})\)\s*$"


def _movie_text_fields(items: pl.DataFrame, max_chars: int) -> pl.Series:
    """`title: Toy Story; year: 1995; genres: Animation, Children's, Comedy` (the year leaves the title)."""
    titled = items.with_columns(pl.col("title").str.replace(_YEAR_SUFFIX, "").alias("_title"))
    return key_value_text(titled, [("title", "_title"), ("year", "year"), ("genres", "genres")], max_chars)


def _year(title: pl.Expr, fallback: pl.Expr | None = None) -> pl.Expr:
    year = title.str.extract(_YEAR_SUFFIX, 1).cast(pl.Int32, strict=False)
    return year if fallback is None else year.fill_null(fallback.str.extract(r"(\d{4})\s*$", 1).cast(pl.Int32))


def _ratings(path: Path, sep: str, encoding: str) -> pl.DataFrame:
    what = f"ratings: user id, item id, rating, unix timestamp separated by {sep!r}"
    table = split_fields(read_lines(path, encoding, what), path, sep, ["user", "item", "rating", "timestamp"], "ratings")
    table = parse_numbers(table, path, ["user", "item", "timestamp"], pl.Int64(), "ratings")
    table = parse_numbers(table, path, ["rating"], pl.Float32(), "ratings")
    return table.select(
        LINE_NO,
        pl.col("user").alias("user_key"),
        pl.col("item").alias("item_key"),
        "timestamp",
        "rating",
    )


def _check_known(ratings: pl.DataFrame, path: Path, column: str, known: pl.DataFrame, known_file: Path) -> None:
    """Every rated item/user must exist in the metadata file, or its text and attributes would be missing."""
    unknown = ratings.join(known.select(column), on=column, how="anti")
    if unknown.height:
        line, key = unknown.select(LINE_NO, column).row(0)
        what = "movie" if column == "item_key" else "user"
        raise PrepError(path, f"{what} id {key} is not in {known_file.name}", line=int(line),
                        expected=f"every rated {what} to be listed in {known_file}")


def _finish(name: str, ratings: pl.DataFrame, items: pl.DataFrame, users: pl.DataFrame,
            paths: list[Path], files: tuple[Path, Path, Path]) -> RawDataset:
    _check_known(ratings, files[0], "item_key", items, files[1])
    _check_known(ratings, files[0], "user_key", users, files[2])
    return RawDataset(
        name=name,
        interactions=ratings.drop(LINE_NO),
        items=items.drop(LINE_NO),
        users=users.drop(LINE_NO),
        sources=paths,
        has_ratings=True,
        facts={
            "timestamp": "unix seconds of the rating, from the ratings file",
            "rating": "explicit 1-5 stars; pass --min-rating to keep only ratings >= R as implicit feedback",
            "item_text": "title, year and genres",
            "ids": "item_id and user_id are the GroupLens ids",
        },
    )


def read_ml100k(raw: Path, options: ReadOptions) -> RawDataset:
    """u.data (tab-separated ratings), u.item and u.user (`|`-separated, latin-1), u.genre (genre names)."""
    data, item_file, user_file, genre_file = (raw / f for f in ("u.data", "u.item", "u.user", "u.genre"))
    ratings = _ratings(data, "\t", "utf-8")

    genre_rows = split_fields(read_lines(genre_file, "latin-1", "genre|index"), genre_file, "|",
                              ["genre", "index"], "genre list")
    genre_rows = parse_numbers(genre_rows, genre_file, ["index"], pl.Int64(), "genre list").sort("index")
    genres = genre_rows["genre"].to_list()

    flag_names = [f"genre_{i}" for i in range(len(genres))]
    fields = ["movie_id", "title", "release_date", "video_release_date", "imdb_url", *flag_names]
    movies = split_fields(read_lines(item_file, "latin-1", "movie rows"), item_file, "|", fields, "u.item")
    movies = parse_numbers(movies, item_file, ["movie_id", *flag_names], pl.Int64(), "u.item")
    check_unique(movies, item_file, "movie_id", "u.item")
    items = movies.select(
        LINE_NO,
        pl.col("movie_id").alias("item_key"),
        pl.col("movie_id").cast(pl.String).alias("item_id"),
        "title",
        _year(pl.col("title"), pl.col("release_date")).alias("year"),
        pl.concat_list([pl.when(pl.col(f) == 1).then(pl.lit(g)) for f, g in zip(flag_names, genres, strict=True)])
        .list.drop_nulls()
        .alias("genres"),
        pl.col("release_date").replace("", None),
        pl.col("imdb_url").replace("", None),
    )
    items = items.with_columns(_movie_text_fields(items, options.text_max_chars))

    user_rows = split_fields(read_lines(user_file, "latin-1", "user rows"), user_file, "|",
                             ["user_id", "age", "gender", "occupation", "zip"], "u.user")
    user_rows = parse_numbers(user_rows, user_file, ["user_id", "age"], pl.Int64(), "u.user")
    check_unique(user_rows, user_file, "user_id", "u.user")
    users = user_rows.select(
        LINE_NO,
        pl.col("user_id").alias("user_key"),
        pl.col("user_id").cast(pl.String),
        pl.col("age").cast(pl.Int32),
        "gender",
        "occupation",
        "zip",
    )
    return _finish("ml-100k", ratings, items, users, [data, item_file, user_file, genre_file],
                   (data, item_file, user_file))


def read_ml1m(raw: Path, options: ReadOptions) -> RawDataset:
    """ratings.dat, movies.dat and users.dat, all `::`-separated and latin-1."""
    ratings_file, movie_file, user_file = (raw / f for f in ("ratings.dat", "movies.dat", "users.dat"))
    ratings = _ratings(ratings_file, "::", "latin-1")

    movies = split_fields(read_lines(movie_file, "latin-1", "movie rows"), movie_file, "::",
                          ["movie_id", "title", "genres"], "movies.dat")
    movies = parse_numbers(movies, movie_file, ["movie_id"], pl.Int64(), "movies.dat")
    check_unique(movies, movie_file, "movie_id", "movies.dat")
    items = movies.select(
        LINE_NO,
        pl.col("movie_id").alias("item_key"),
        pl.col("movie_id").cast(pl.String).alias("item_id"),
        "title",
        _year(pl.col("title")).alias("year"),
        pl.col("genres").str.split("|").list.eval(pl.element().filter(pl.element() != "")),
    )
    items = items.with_columns(_movie_text_fields(items, options.text_max_chars))

    user_rows = split_fields(read_lines(user_file, "latin-1", "user rows"), user_file, "::",
                             ["user_id", "gender", "age", "occupation", "zip"], "users.dat")
    user_rows = parse_numbers(user_rows, user_file, ["user_id", "age", "occupation"], pl.Int64(), "users.dat")
    check_unique(user_rows, user_file, "user_id", "users.dat")
    bad = user_rows.filter((pl.col("occupation") < 0) | (pl.col("occupation") >= len(ML1M_OCCUPATIONS)))
    if bad.height:
        raise PrepError(user_file, f"occupation code {bad['occupation'][0]} is unknown", line=int(bad[LINE_NO][0]),
                        expected=f"a code 0..{len(ML1M_OCCUPATIONS) - 1} as listed in the ML-1M README")
    users = user_rows.select(
        LINE_NO,
        pl.col("user_id").alias("user_key"),
        pl.col("user_id").cast(pl.String),
        pl.col("age").cast(pl.Int32),
        "gender",
        pl.col("occupation").replace_strict(list(range(len(ML1M_OCCUPATIONS))), list(ML1M_OCCUPATIONS),
                                            return_dtype=pl.String),
        "zip",
    )
    dataset = _finish("ml-1m", ratings, items, users, [ratings_file, movie_file, user_file],
                      (ratings_file, movie_file, user_file))
    dataset.facts["user_age"] = "the ML-1M age-group code (1: under 18, 18: 18-24, 25, 35, 45, 50, 56: 56+)"
    return dataset
