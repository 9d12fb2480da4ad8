"""`recsys score`: the command line over `recsys.scoring.score`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

DESCRIPTION = """\
Write every user's top-K recommendations as parquet shards (user_id, rank, item_id, score) plus
manifest.json, from a `recsys fit` checkpoint and the prepared folder it was trained on.

Shards are written under temporary names and renamed when complete, so a rerun of the same command after a
crash or kill keeps the complete shards, redoes the rest, and ends with exactly one list per user. The
manifest is written last: if it is there, the run is complete.
"""

EPILOG = """\
examples:
  recsys score --ckpt checkpoints/sasrec-beauty/checkpoints/last.ckpt --data prepared/amazon-beauty --out scores/
  recsys score ... --split test --k 10      # the lists `recsys test` ranks; recompute its metrics from them
  recsys score ... --users ids.txt --exclude-seen --index ivf
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recsys score", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--ckpt", type=Path, metavar="PATH", required=True,
                   help="checkpoint written by `recsys fit` (loaded with weights_only=True; the model is rebuilt "
                        "from its class_path and init_args)")
    p.add_argument("--data", type=Path, metavar="DIR", required=True,
                   help="prepared-dataset folder (`recsys prep ... --out DIR`); must hold the checkpoint's items")
    p.add_argument("--out", type=Path, metavar="DIR", required=True,
                   help="output folder for part-NNNNN.parquet shards and manifest.json (created if missing)")
    p.add_argument("--k", type=int, metavar="K", default=100, help="items per user (default: 100)")
    p.add_argument("--split", choices=("next", "test"), default="next",
                   help="next (default): rank what follows each user's whole history. test: rank from the "
                        "history without its last item, exactly as `recsys test` does, so its metrics can be "
                        "recomputed from the files")
    p.add_argument("--users", type=Path, metavar="FILE", default=None,
                   help="only these users: a text file with one original user id per line, or a parquet file "
                        "with a user_id column (default: every user the split has)")
    p.add_argument("--exclude-seen", action="store_true",
                   help="leave items already in the user's history out of the list (default: kept, as in "
                        "`recsys test`)")
    p.add_argument("--index", choices=("flat", "ivf", "hnsw"), default="flat",
                   help="faiss index over the item vectors: flat = exact inner product (default); ivf and hnsw "
                        "are approximate and faster on large catalogues (retrieval models only)")
    p.add_argument("--nlist", type=int, metavar="N", default=1024, help="IVF cells (capped at n_items / 39; default: 1024)")
    p.add_argument("--nprobe", type=int, metavar="N", default=32, help="IVF cells searched per user (default: 32)")
    p.add_argument("--ef-search", type=int, metavar="N", default=256, help="HNSW search beam width (default: 256)")
    p.add_argument("--batch-size", type=int, metavar="N", default=1024,
                   help="users encoded and searched at once; memory grows with it, not with the number of "
                        "users (default: 1024)")
    p.add_argument("--shard-size", type=int, metavar="N", default=100_000,
                   help="users per output shard, the unit a rerun resumes from (default: 100000)")
    p.add_argument("--min-length", type=int, metavar="N", default=3,
                   help="--split test only: users with fewer interactions are not evaluated; use the value the "
                        "data module trained with (default: 3, the data module's default)")
    p.add_argument("--max-len", type=int, metavar="N", default=None,
                   help="history window fed to the model (default: the model's max_len; a model without one gets "
                        "whole histories and cuts them itself)")
    p.add_argument("--device", default="auto", metavar="DEVICE", help="torch device for the model: auto (default), cpu, cuda, cuda:1")
    p.add_argument("--threads", type=int, metavar="N", default=None,
                   help="CPU threads for torch and faiss (default: every CPU this process may use)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete earlier shards and manifest in --out instead of resuming from them")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from recsys.data.contract import ContractError
    from recsys.eval.ranker import IndexSpec
    from recsys.scoring.checkpoint import CheckpointError
    from recsys.scoring.runner import ScoreOptions, score
    from recsys.scoring.shards import ShardError
    from recsys.scoring.topk import ModelContractError
    from recsys.scoring.users import UserListError

    kind = {"flat": "exact", "ivf": "ivf", "hnsw": "hnsw"}[args.index]
    options = ScoreOptions(
        ckpt=args.ckpt, data=args.data, out=args.out, k=args.k, split=args.split, users=args.users,
        exclude_seen=args.exclude_seen,
        index=IndexSpec(kind=kind, nlist=args.nlist, nprobe=args.nprobe, ef_search=args.ef_search),
        batch_size=args.batch_size, shard_size=args.shard_size, min_length=args.min_length, max_len=args.max_len,
        device=args.device, threads=args.threads, overwrite=args.overwrite, progress=not args.no_progress,
    )  # fmt: skip
    try:
        manifest = score(options)
    except (CheckpointError, ContractError, UserListError, ShardError, ModelContractError, ValueError) as exc:
        print(f"recsys score: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. --out is a file, or the disk is full
        print(f"recsys score: error: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    resumed = f", {manifest['shards_resumed']} resumed" if manifest["shards_resumed"] else ""
    print(
        f"scored {manifest['n_users']:,} users ({manifest['n_rows']:,} rows) in {manifest['seconds_this_run']:.1f} s "
        f"-> {args.out} ({len(manifest['shards'])} shards{resumed})\n  protocol: {manifest['protocol']}"
    )
    return 0
