"""`recsys prep`: raw public files (or generated data) into a prepared-dataset folder.

Bad input is the user's to fix, not a bug: its message is printed without a traceback and the exit
status is 2, the same as a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from data_prep.datasets import DATASET_NAMES, DATASETS
from data_prep.errors import PrepError
from data_prep.prepare import prepare
from data_prep.text import DEFAULT_MAX_CHARS
from recsys.data.contract import META_FILE, ContractError

DESCRIPTION = """\
Prepare a dataset: read its raw files, check them, optionally filter, number items 1..n (0 is padding)
and users 0..n-1, flatten item attributes into text, and write the prepared folder
(interactions.parquet, items.parquet, users.parquet, meta.json). With no filter options the published
dataset is reproduced exactly. Nothing is written unless everything succeeds.
"""

EPILOG_TAIL = """
The raw folder defaults to $RECSYS_DATA/<folder> (folder in brackets above). S3-Rec files carry no
times: their timestamp is the item's position in the user's line (meta.json says so). Interactions are
sorted by user, then timestamp; equal timestamps keep the raw file's order. After filtering, items are
numbered 1..n and users 0..n-1 in ascending order of the source's own ids (so unfiltered S3-Rec and
MovieLens item ids are kept as they are).

examples:
  recsys prep ml-100k --raw ~/data/ml-100k --out data/ml-100k
  recsys prep ml-1m --download --out data/ml-1m --min-rating 4
  recsys prep amazon-beauty --out data/beauty            # uses $RECSYS_DATA/amazon-beauty-2014
  recsys prep amazon-toys --numbering p5 --out data/toys-p5
  recsys prep synthetic --out data/synthetic --users 2000 --items 500 --seed 0

exit status: 0 on success, 2 on a usage error or bad input (the message names file, line and what was expected).
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    datasets = "\n".join(
        textwrap.fill(
            f"{spec.name:<14}{'[' + spec.folder + '] ' if spec.folder else ''}{spec.summary}",
            width=100, initial_indent="  ", subsequent_indent=" " * 16,
        )
        for spec in DATASETS
    )
    parser = argparse.ArgumentParser(
        prog="recsys prep",
        description=DESCRIPTION,
        epilog=f"datasets:\n{datasets}\n{EPILOG_TAIL}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=DATASET_NAMES, metavar="NAME", help=f"dataset: {', '.join(DATASET_NAMES)}")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="the prepared folder to write")
    parser.add_argument("--raw", type=Path, metavar="DIR",
                        help="folder with the raw files (default: $RECSYS_DATA/<folder>; not for synthetic)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists (atomically)")

    filters = parser.add_argument_group("filters (all off by default, so published counts are reproduced)")
    filters.add_argument("--min-rating", type=float, metavar="R",
                         help="keep ratings >= R only, turning explicit ratings into implicit feedback "
                         "(MovieLens; applied first)")
    filters.add_argument("--k-core", type=_positive_int, metavar="K",
                         help="repeatedly drop users and items with fewer than K interactions until none are left")
    filters.add_argument("--min-length", type=_positive_int, metavar="N",
                         help="drop users with fewer than N interactions (applied together with --k-core)")

    text = parser.add_argument_group("item text")
    text.add_argument("--text-max-chars", type=_positive_int, default=DEFAULT_MAX_CHARS, metavar="C",
                      help=f"cap each item's `key: value; ...` sentence at C characters, cut on a word boundary "
                      f"(default {DEFAULT_MAX_CHARS})")

    source = parser.add_argument_group("sources")
    source.add_argument("--numbering", choices=("s3rec", "p5"),
                        help="amazon-toys only: s3rec (default; Toys_and_Games.txt + attributes) or p5 "
                        "(p5_sequential.txt + p5_datamaps.json: ASINs, no attributes)")
    source.add_argument("--download", action="store_true",
                        help="ml-100k / ml-1m: fetch the GroupLens zip (sha256-checked, cached), then prepare it")
    source.add_argument("--cache", type=Path, metavar="DIR",
                        help="download cache (default: $RECSYS_CACHE, else ~/.cache/recsys)")
    source.add_argument("--url", help="--download from this URL instead of GroupLens (a mirror)")
    source.add_argument("--sha256", help="expected sha256 of the file at --url")

    synthetic = parser.add_argument_group("synthetic only")
    synthetic.add_argument("--users", type=_positive_int, metavar="N", help="number of users (default 2000)")
    synthetic.add_argument("--items", type=_positive_int, metavar="M", help="number of items, at least 20 (default 500)")
    synthetic.add_argument("--seed", type=int, metavar="S", help="random seed (default 0)")
    return parser


def _summary(out: Path, seconds: float) -> str:
    meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
    stats = meta["statistics"]
    return (
        f"prepared {meta['name']}: {meta['n_users']:,} users, {meta['n_items']:,} items, "
        f"{meta['n_interactions']:,} interactions (avg length {stats['avg_length']:.2f}, "
        f"item text: {meta.get('item_text', '-')})\n"
        f"  -> {out} in {seconds:.2f} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help (0) or a usage error (2): return it, the caller exits
        return int(exc.code or 0)
    start = time.perf_counter()
    try:
        out = prepare(
            args.name, args.raw, out=args.out, overwrite=args.overwrite, k_core=args.k_core,
            min_length=args.min_length, min_rating=args.min_rating, text_max_chars=args.text_max_chars,
            numbering=args.numbering, users=args.users, items=args.items, seed=args.seed,
            download=args.download, cache_dir=args.cache, url=args.url, sha256=args.sha256,
        )  # fmt: skip
    except (PrepError, ContractError, FileExistsError) as exc:
        print(f"recsys prep: error: {exc}", file=sys.stderr)
        return 2
    print(_summary(out, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
