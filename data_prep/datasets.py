"""The datasets `recsys prep` knows: name, raw folder under $RECSYS_DATA, reader, one-line description.

The names are the ones configs/ uses (amazon-beauty, ml-100k, synthetic, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from data_prep.errors import PrepError
from data_prep.movielens import read_ml1m, read_ml100k
from data_prep.raw import RawDataset, ReadOptions
from data_prep.s3rec import S3RecLayout, read_s3rec
from data_prep.synthetic import read_synthetic

Reader = Callable[[Path, ReadOptions], RawDataset]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str | None  # under $RECSYS_DATA; None for generated data
    files: tuple[str, ...]  # what the raw folder must hold, for messages and --help
    summary: str
    read: Reader
    downloadable: bool = False
    numberings: tuple[str, ...] = ()


def _s3rec(name: str, layout: S3RecLayout, p5_layout: S3RecLayout | None = None) -> Reader:
    def read(raw: Path, options: ReadOptions) -> RawDataset:
        chosen = p5_layout if options.numbering == "p5" and p5_layout is not None else layout
        return read_s3rec(raw, name, chosen, options)

    return read


def _synthetic(raw: Path, options: ReadOptions) -> RawDataset:
    return read_synthetic(options)


DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        "ml-100k", "ml-100k", ("u.data", "u.item", "u.user", "u.genre"),
        "MovieLens 100K (GroupLens): 943 users, 1,682 movies, 100,000 ratings with unix timestamps; "
        "items get title, year, genres; users get age, gender, occupation, zip.",
        read_ml100k, downloadable=True,
    ),
    DatasetSpec(
        "ml-1m", "ml-1m", ("ratings.dat", "movies.dat", "users.dat"),
        "MovieLens 1M (GroupLens): 6,040 users, 3,706 rated movies, 1,000,209 ratings; `::`-separated, latin-1.",
        read_ml1m, downloadable=True,
    ),
    DatasetSpec(
        "amazon-beauty", "amazon-beauty-2014", ("Beauty.txt", "Beauty_item2attributes.json", "datamaps.json"),
        "Amazon Beauty 2014, S3-Rec/P5 5-core: 22,363 users, 12,101 items, 198,502 interactions; ASINs and "
        "brand/category names from P5 datamaps.json.",
        _s3rec("amazon-beauty", S3RecLayout("Beauty.txt", "Beauty_item2attributes.json", "datamaps.json", True)),
    ),
    DatasetSpec(
        "amazon-sports", "amazon-sports-2014",
        ("Sports_and_Outdoors.txt", "Sports_and_Outdoors_item2attributes.json", "datamaps.json"),
        "Amazon Sports and Outdoors 2014, S3-Rec/P5: 35,598 users, 18,357 items, 296,337 interactions; ASINs "
        "from datamaps.json, attributes as anonymous tokens.",
        _s3rec("amazon-sports", S3RecLayout("Sports_and_Outdoors.txt", "Sports_and_Outdoors_item2attributes.json",
                                             "datamaps.json")),
    ),
    DatasetSpec(
        "amazon-toys", "amazon-toys-2014", ("Toys_and_Games.txt", "Toys_and_Games_item2attributes.json"),
        "Amazon Toys and Games 2014, S3-Rec: 19,412 users, 11,924 items, 167,597 interactions; S3-Rec ids, "
        "attribute tokens. --numbering p5 reads p5_sequential.txt + p5_datamaps.json instead (ASINs, no "
        "attributes); the two numberings must not be mixed.",
        _s3rec(
            "amazon-toys",
            S3RecLayout("Toys_and_Games.txt", "Toys_and_Games_item2attributes.json"),
            S3RecLayout("p5_sequential.txt", None, "p5_datamaps.json", numbering="p5"),
        ),
        numberings=("s3rec", "p5"),
    ),
    DatasetSpec(
        "yelp", "yelp-s3rec", ("Yelp.txt", "Yelp_item2attributes.json"),
        "Yelp (S3-Rec): 30,431 users, 20,033 businesses, 316,354 interactions; category ids as tokens.",
        _s3rec("yelp", S3RecLayout("Yelp.txt", "Yelp_item2attributes.json")),
    ),
    DatasetSpec(
        "lastfm", "lastfm-s3rec", ("LastFM.txt", "LastFM_item2attributes.json"),
        "LastFM (HetRec 2011, S3-Rec): 1,090 users, 3,646 artists, 52,551 interactions; tag ids as tokens.",
        _s3rec("lastfm", S3RecLayout("LastFM.txt", "LastFM_item2attributes.json")),
    ),
    DatasetSpec(
        "synthetic", None, (),
        "Generated clustered Markov-chain sequences (--users, --items, --seed): a sequential model can learn "
        "them, popularity cannot (flat popularity).",
        _synthetic,
    ),
)  # fmt: skip

DATASET_NAMES: tuple[str, ...] = tuple(spec.name for spec in DATASETS)


def get_spec(name: str) -> DatasetSpec:
    for spec in DATASETS:
        if spec.name == name:
            return spec
    raise PrepError(None, f"unknown dataset {name!r}", expected=f"one of {', '.join(DATASET_NAMES)}")
