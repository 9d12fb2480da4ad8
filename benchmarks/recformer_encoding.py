"""How fast Recformer encodes a catalogue, and that its memory does not grow beyond the tables themselves.

Cases, each in its own child process so that peak memory (ru_maxrss) is that case's alone:
- Beauty: the 12,101 items of prepared amazon-beauty (brand + categories texts, 12.7 tokens on average),
  all-MiniLM-L6-v2 with all 6 layers and cut to 1 layer (the CPU fine-tuning config's backbone).
- Synthetic catalogues of N items (default 1,000,000, and a tenth of it for the memory slope): texts drawn
  with a fixed seed from Beauty's brands and category paths, so token lengths match Beauty's.

Every case tokenizes the catalogue (`tokenize_items`, the token table), then encodes it with
`catalogue_embeddings` (batches of similar length, no autograd, streamed into a memory-mapped .npy, float16
or float32), then, for the synthetic ones, builds the faiss IVF ranker on the table and searches 1,000
users (item vectors of random items as queries). Untrained weights: speed does not depend on training.

Memory: `peak after encoding` is the child's ru_maxrss once the table is written; `tables` is what must be
resident anyway (token table + embedding table); `overhead` = peak - tables, the part that must stay flat
as the catalogue grows. The IVF search copies the table to float32 for faiss, so it is reported apart.

    OMP_NUM_THREADS=1 python benchmarks/recformer_encoding.py [--items 1000000] [--layers 1] [--threads 1]

writes benchmarks/results/recformer_encoding.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REPO = HERE.parent


def synthetic_texts(n: int, beauty: Path, seed: int = 0) -> list[str]:
    """n item texts in Beauty's form (brand + 3-level category path) drawn from Beauty's own values."""
    import numpy as np
    import polars as pl

    items = pl.read_parquet(beauty / "items.parquet")
    brands = items["brand"].unique().sort().to_list()
    paths = [", ".join(c) for c in items["categories"].to_list()]
    paths = sorted(set(paths))
    rng = np.random.default_rng(seed)
    b = rng.integers(0, len(brands), n)
    c = rng.integers(0, len(paths), n)
    return [f"brand: {brands[i]}; categories: {paths[j]}" for i, j in zip(b, c, strict=True)]


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """One case, inside the child process."""
    import numpy as np
    import polars as pl
    import torch
    from common import peak_rss_mib

    torch.set_num_threads(case["threads"])
    from recsys.models.recformer import Recformer, catalogue_embeddings, tokenize_items

    beauty = Path(case["beauty"])
    started = time.perf_counter()
    if case["items"] is None:
        texts = pl.read_parquet(beauty / "items.parquet").sort("item_idx")["text"].to_list()
    else:
        texts = synthetic_texts(case["items"], beauty)
    texts_s = time.perf_counter() - started
    model = Recformer(n_items=len(texts), n_layers=case["layers"], tokens_per_item=32, pooling="mean",
                      item_batch_size=case["batch_size"]).eval()
    from transformers import AutoTokenizer

    started = time.perf_counter()
    tokens = tokenize_items(texts, AutoTokenizer.from_pretrained(model.backbone_path), model.tokens_per_item,
                            model.item_format)
    tokenize_s = time.perf_counter() - started
    del texts
    model.set_item_tokens(tokens)
    token_bytes = tokens.ids.nbytes + tokens.types.nbytes + tokens.lengths.nbytes
    del tokens
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        table = catalogue_embeddings(model, tmp, dtype=case["dtype"], progress=False)
        encode_s = time.perf_counter() - started
        table_bytes = table.nbytes
        # The model's own item_table buffer (float32, n x d) is allocated at construction for the retrieval
        # contract; counted as a table too.
        buffer_bytes = model.item_table.numel() * 4
        peak_encode = peak_rss_mib()
        result = {
            **case, "n_items": model.n_items, "mean_tokens": float(model.item_token_lengths[1:].float().mean()),
            "texts_s": texts_s, "tokenize_s": tokenize_s, "encode_s": encode_s,
            "items_per_s": model.n_items / encode_s, "peak_after_encoding_mib": peak_encode,
            "tables_mib": (token_bytes + table_bytes + buffer_bytes) / 2**20,
            "overhead_mib": peak_encode - (token_bytes + table_bytes + buffer_bytes) / 2**20,
        }
        if case["search"]:
            from recsys.eval.ranker import IndexSpec, ItemRanker

            started = time.perf_counter()
            ranker = ItemRanker(np.asarray(table), IndexSpec(kind="ivf", nlist=1024, nprobe=32))
            build_s = time.perf_counter() - started
            rng = np.random.default_rng(0)
            queries = torch.from_numpy(np.asarray(table[rng.integers(1, model.n_items + 1, 1000)], dtype=np.float32))
            started = time.perf_counter()
            ids, _ = ranker.search(queries, 10)
            search_s = time.perf_counter() - started
            result.update(ivf_build_s=build_s, ivf_users_per_s=1000 / search_s,
                          peak_after_search_mib=peak_rss_mib(), ivf_top1_self=float(
                              (ids[:, 0].numpy() > 0).mean()))
        del table
    return result


def child(case: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(case["threads"]), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(case)],
                          capture_output=True, text=True, env=env, cwd=HERE)
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table_md(rows: list[dict[str, Any]]) -> str:
    head = ("| catalogue | items | layers | dtype | tokens/item | tokenize s | encode s | items/s | peak MiB (encoding) "
            "| tables MiB | overhead MiB | IVF build s | IVF users/s | peak MiB (with IVF) |")
    lines = [head, "|" + "|".join(["---"] * 14) + "|"]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['n_items']:,} | {r['layers']} | {r['dtype']} | {r['mean_tokens']:.1f} | "
            f"{r['tokenize_s']:.1f} | {r['encode_s']:.1f} | {r['items_per_s']:,.0f} | {r['peak_after_encoding_mib']:,.0f} | "
            f"{r['tables_mib']:,.0f} | {r['overhead_mib']:,.0f} | "
            + (f"{r['ivf_build_s']:.1f} | {r['ivf_users_per_s']:,.0f} | {r['peak_after_search_mib']:,.0f} |"
               if "ivf_build_s" in r else "- | - | - |")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, default=Path(os.environ.get("RECSYS_PREPARED", REPO / "prepared")))
    parser.add_argument("--items", type=int, default=1_000_000, help="size of the large synthetic catalogue")
    parser.add_argument("--layers", type=int, default=1, help="backbone layers for the synthetic catalogues")
    parser.add_argument("--beauty-layers", type=int, nargs="+", default=[6, 1])
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "recformer_encoding")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(json.loads(args.child))))
        return
    beauty = (args.prepared / "amazon-beauty").resolve()
    if not (beauty / "items.parquet").is_file():
        raise SystemExit(f"{beauty}: not prepared; run `recsys prep amazon-beauty --out {beauty}`")
    base = {"beauty": str(beauty), "dtype": args.dtype, "batch_size": args.batch_size, "threads": args.threads}
    cases = [{**base, "name": "Beauty", "items": None, "layers": n, "search": False} for n in args.beauty_layers]
    cases += [{**base, "name": f"synthetic {n:,}", "items": n, "layers": args.layers, "search": True}
              for n in (args.items // 10, args.items)]
    rows = []
    for case in cases:
        row = child(case)
        if beauty.is_relative_to(REPO):  # results are committed: no machine paths in them
            row["beauty"] = str(beauty.relative_to(REPO))
        print(json.dumps(row), flush=True)
        rows.append(row)
    from common import machine, versions, write_text_atomic

    record = {"machine": machine(threads=args.threads), "versions": versions("torch", "transformers", "faiss-cpu"),
              "rows": rows}
    small, large = rows[-2], rows[-1]
    slope = (large["overhead_mib"] - small["overhead_mib"]) / max(large["n_items"] - small["n_items"], 1) * 1e6
    md = "\n".join([
        "# Recformer catalogue encoding",
        "",
        "Protocol: tokenize every item once (token table), encode the catalogue with `catalogue_embeddings` "
        f"(batches of {args.batch_size} similar-length items, no autograd, streamed into a memory-mapped .npy, "
        f"{args.dtype}), all-MiniLM-L6-v2 cut to the layers shown, untrained extra embeddings, "
        f"{args.threads} torch thread(s). Synthetic catalogues: Beauty-like texts (brand + category path "
        "drawn from Beauty's values). IVF: faiss IndexIVFFlat nlist=1024 nprobe=32, 1,000 queries, K=10.",
        "`tables` = token table + embedding table file + the model's float32 item_table buffer; "
        "`overhead` = peak RSS after encoding - tables (model weights, one batch, Python).",
        "",
        table_md(rows),
        "",
        f"Overhead growth between the two synthetic catalogues: {slope:+.1f} MiB per million items "
        "(flat = memory does not grow beyond the tables).",
        "",
        f"Machine: {record['machine']}",
        f"Versions: {record['versions']}",
        "",
    ])
    record["overhead_mib_per_million_items"] = slope
    for suffix, text in ((".md", md), (".json", json.dumps(record, indent=2) + "\n")):
        write_text_atomic(args.out.with_suffix(suffix), text)
    print(md)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
