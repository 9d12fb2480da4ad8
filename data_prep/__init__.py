"""Raw public datasets into the prepared-dataset contract (polars only).

    from data_prep import prepare
    prepare("amazon-beauty", raw="data/raw/amazon-beauty-2014", out="data/beauty")

`recsys prep NAME --out DIR ...` does the same from the shell (see `recsys prep --help`).
"""

from data_prep.datasets import DATASET_NAMES, get_spec
from data_prep.errors import PrepError
from data_prep.filters import Filters
from data_prep.prepare import load_raw, prepare, prepare_dataset
from data_prep.raw import RawDataset, ReadOptions

__all__ = [
    "DATASET_NAMES",
    "Filters",
    "PrepError",
    "RawDataset",
    "ReadOptions",
    "get_spec",
    "load_raw",
    "prepare",
    "prepare_dataset",
]
