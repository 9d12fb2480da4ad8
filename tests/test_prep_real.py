"""Each real reader on $RECSYS_DATA reproduces the published counts (skipped when the data is absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from data_prep import prepare, prepare_dataset
from recsys.data.contract import read_prepared

PUBLISHED = [
    # name, folder, users, items, interactions
    ("ml-100k", "ml-100k", 943, 1682, 100_000),
    ("amazon-beauty", "amazon-beauty-2014", 22_363, 12_101, 198_502),
    ("amazon-sports", "amazon-sports-2014", 35_598, 18_357, 296_337),
    ("amazon-toys", "amazon-toys-2014", 19_412, 11_924, 167_597),
    ("yelp", "yelp-s3rec", 30_431, 20_033, 316_354),
    ("lastfm", "lastfm-s3rec", 1_090, 3_646, 52_551),
]
S3REC_FILES = {
    "amazon-beauty": "Beauty.txt",
    "amazon-sports": "Sports_and_Outdoors.txt",
    "amazon-toys": "Toys_and_Games.txt",
    "yelp": "Yelp.txt",
    "lastfm": "LastFM.txt",
}


@pytest.mark.parametrize(("name", "folder", "users", "items", "rows"), PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_published_counts(data_root: Path, tmp_path: Path, name: str, folder: str, users: int, items: int,
                          rows: int) -> None:
    ds = read_prepared(prepare(name, raw=data_root / folder, out=tmp_path / name))
    assert (ds.n_users, ds.n_items, ds.interactions.height) == (users, items, rows)
    assert (ds.meta["n_users"], ds.meta["n_items"], ds.meta["n_interactions"]) == (users, items, rows)
    assert ds.meta["statistics"]["interactions"] == rows
    assert ds.meta["item_idx_equals_source_id"] is True
    assert all(len(f["sha256"]) == 64 for f in ds.meta["source_files"])
    assert ds.items["text"].str.len_chars().max() <= 256


@pytest.mark.parametrize("name", ["amazon-beauty", "lastfm"])
def test_s3rec_sequences_are_the_file_lines(data_root: Path, name: str) -> None:
    """item_idx = S3-Rec id, user order = line order, timestamp = position in the line."""
    folder = dict((p[0], p[1]) for p in PUBLISHED)[name]
    ds = prepare_dataset(name, data_root / folder)
    lines = (data_root / folder / S3REC_FILES[name]).read_text().splitlines()
    sequences = ds.interactions.group_by("user_idx", maintain_order=True).agg("item_idx", "timestamp")
    assert sequences.height == len(lines)
    for user, items, stamps in sequences.head(300).iter_rows():
        tokens = [int(t) for t in lines[user].split()]
        assert tokens[0] == user + 1
        assert items == tokens[1:]
        assert stamps == list(range(len(items)))
    assert "position" in ds.meta["timestamp"]
    assert ds.interactions["rating"].null_count() == ds.interactions.height


def test_beauty_text_has_real_brand_and_category_names(data_root: Path) -> None:
    ds = prepare_dataset("amazon-beauty", data_root / "amazon-beauty-2014")
    items = ds.items
    assert ds.meta["item_text"] == "brand and category names"
    first = items.row(0, named=True)
    assert first["item_id"] == "B004756YJA"  # the ASIN of S3-Rec item 1, via datamaps id2item
    assert first["text"] == "brand: OPI; categories: Makeup, Nails, Nail Polish"
    assert items.filter(pl.col("brand") == "Maybelline").height > 10
    maybelline = items.filter(pl.col("brand") == "Maybelline")["text"].to_list()
    assert any("Mascara" in t for t in maybelline)
    assert not items["text"].str.contains("&amp;|&#39;").any()  # HTML entities decoded
    assert items["text"].str.contains("Clean & Clear", literal=True).any()
    assert ds.users["user_id"][0] == "A1YJEY40YUW4SE"


def test_sports_and_toys_use_tokens(data_root: Path) -> None:
    sports = prepare_dataset("amazon-sports", data_root / "amazon-sports-2014")
    assert sports.meta["item_text"] == "attribute tokens (no names available)"
    assert sports.items["text"][0].startswith("attributes: a1 a2")
    assert sports.items["item_id"][0] == "1881509818"  # an ASIN
    toys = prepare_dataset("amazon-toys", data_root / "amazon-toys-2014")
    assert toys.items["item_id"][0] == "1" and toys.users["user_id"][0] == "1"  # S3-Rec ids, no ASINs


def test_toys_p5_numbering(data_root: Path) -> None:
    ds = prepare_dataset("amazon-toys", data_root / "amazon-toys-2014", numbering="p5")
    assert (ds.n_users, ds.n_items, ds.interactions.height) == (19_412, 11_924, 167_597)
    assert ds.items["item_id"][0] == "B001RNFQNK"
    assert {f["file"] for f in ds.meta["source_files"]} == {"p5_sequential.txt", "p5_datamaps.json"}


def test_ml100k_text_users_and_ratings(prepared_ml100k: Path) -> None:
    ds = read_prepared(prepared_ml100k)
    toy_story = ds.items.row(0, named=True)
    assert toy_story["text"] == "title: Toy Story; year: 1995; genres: Animation, Children's, Comedy"
    assert toy_story["title"] == "Toy Story (1995)" and toy_story["genres"] == ["Animation", "Children's", "Comedy"]
    assert ds.users.row(0, named=True) == {
        "user_idx": 0, "user_id": "1", "age": 24, "gender": "M", "occupation": "technician", "zip": "85711",
    }  # fmt: skip
    counts = ds.interactions.group_by("rating").len().sort("rating")["len"].to_list()
    # SOURCE.md lists 6,111 and 21,203 for ratings 1 and 5: those include the three removed user-0 rows
    # (ratings 5, 5, 1); the cleaned u.data itself holds these.
    assert counts == [6_110, 11_370, 27_145, 34_174, 21_201]
    unknown = ds.items.filter(pl.col("item_id") == "267").row(0, named=True)  # the file's "unknown" movie
    assert unknown["year"] is None and unknown["text"] == "title: unknown; genres: unknown"
    assert ds.items.filter(pl.col("item_id") == "543")["title"][0] == "Misérables, Les (1995)"


def test_ml1m_reader_on_real_metadata(data_root: Path, tmp_path: Path) -> None:
    """ratings.dat is not available offline: write a small one in the real format beside the real metadata."""
    raw = tmp_path / "ml-1m"
    raw.mkdir()
    for name in ("movies.dat", "users.dat"):
        shutil.copy(data_root / "ml-1m" / name, raw / name)
    (raw / "ratings.dat").write_bytes(
        b"1::1193::5::978300760\n1::661::3::978302109\n1::914::3::978301968\n"
        b"2::1357::5::978298709\n2::3068::4::978299000\n2::1537::4::978299620\n2::647::3::978299351\n"
        b"2::2194::4::978299297\n2::1::4::978299297\n6040::73::2::956704056\n"
    )
    ds = read_prepared(prepare("ml-1m", raw=raw, out=tmp_path / "out"))
    assert (ds.n_users, ds.n_items, ds.interactions.height) == (3, 10, 10)
    assert ds.meta["users_without_interactions_dropped"] == 6_040 - 3
    assert ds.meta["items_without_interactions_dropped"] == 3_883 - 10
    assert ds.items.filter(pl.col("item_id") == "1")["text"][0] == (
        "title: Toy Story; year: 1995; genres: Animation, Children's, Comedy"
    )
    user1 = ds.users.row(0, named=True)
    assert (user1["gender"], user1["age"], user1["occupation"], user1["zip"]) == ("F", 1, "K-12 student", "48067")
    # user 2 rated 2194 and 1 in the same second: file order is kept
    user2 = ds.interactions.filter(pl.col("user_idx") == 1)
    ids = ds.items["item_id"]
    assert [ids[i - 1] for i in user2["item_idx"].to_list()] == ["1357", "3068", "2194", "1", "647", "1537"]
    assert ds.items.filter(pl.col("item_id") == "73")["title"][0] == "Misérables, Les (1995)"  # latin-1 decoded
