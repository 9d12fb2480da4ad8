"""`prepare(name, raw=..., out=...)`: the one call behind `recsys prep`.

Everything is read, checked, filtered and validated in memory before the first byte is written, and
the contract's `write_prepared` writes atomically, so a failure leaves no output folder behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from data_prep.build import build_prepared
from data_prep.datasets import DatasetSpec, get_spec
from data_prep.download import download_movielens
from data_prep.errors import PrepError
from data_prep.filters import Filters
from data_prep.raw import RawDataset, ReadOptions
from data_prep.text import DEFAULT_MAX_CHARS, MIN_MAX_CHARS
from recsys.data.contract import PreparedDataset, write_prepared

SYNTHETIC_DEFAULTS = ReadOptions()


def resolve_raw(spec: DatasetSpec, raw: str | os.PathLike[str] | None) -> Path:
    """--raw, else $RECSYS_DATA/<folder>; the folder must exist."""
    if raw is None:
        root = os.environ.get("RECSYS_DATA")
        if not root:
            how = " or --download" if spec.downloadable else ""
            raise PrepError(None, f"no raw folder for {spec.name}: pass --raw DIR{how}, or set RECSYS_DATA "
                            f"to a folder holding {spec.folder}/")
        path = Path(root) / str(spec.folder)
    else:
        path = Path(raw)
    if not path.is_dir():
        raise PrepError(path, "no such folder", expected=f"the {spec.name} files: {', '.join(spec.files)}")
    return path


def _read_options(
    spec: DatasetSpec,
    *,
    text_max_chars: int,
    numbering: str | None,
    users: int | None,
    items: int | None,
    seed: int | None,
) -> ReadOptions:
    if not isinstance(text_max_chars, int) or text_max_chars < MIN_MAX_CHARS:
        raise PrepError(None, f"text-max-chars must be an integer >= {MIN_MAX_CHARS}, got {text_max_chars!r}")
    if numbering is not None and numbering not in spec.numberings:
        allowed = f"one of {', '.join(spec.numberings)}" if spec.numberings else "not given (only amazon-toys has two)"
        raise PrepError(None, f"numbering {numbering!r} does not apply to {spec.name}", expected=allowed)
    if spec.name != "synthetic" and any(v is not None for v in (users, items, seed)):
        raise PrepError(None, f"users/items/seed describe the synthetic generator, not {spec.name}")
    return ReadOptions(
        text_max_chars=text_max_chars,
        numbering=numbering,
        users=SYNTHETIC_DEFAULTS.users if users is None else users,
        items=SYNTHETIC_DEFAULTS.items if items is None else items,
        seed=SYNTHETIC_DEFAULTS.seed if seed is None else seed,
    )


def load_raw(
    name: str,
    raw: str | os.PathLike[str] | None = None,
    *,
    text_max_chars: int = DEFAULT_MAX_CHARS,
    numbering: str | None = None,
    users: int | None = None,
    items: int | None = None,
    seed: int | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> RawDataset:
    """Read a dataset's raw files (downloading MovieLens first if asked) into a RawDataset."""
    spec = get_spec(name)
    options = _read_options(spec, text_max_chars=text_max_chars, numbering=numbering, users=users, items=items,
                            seed=seed)
    if spec.folder is None:
        if raw is not None or download:
            raise PrepError(None, f"{name} is generated: it takes no --raw and no --download")
        return spec.read(Path("."), options)
    if download:
        if raw is not None:
            raise PrepError(None, "--download and --raw exclude each other: the download decides the raw folder")
        folder = download_movielens(name, None if cache_dir is None else Path(cache_dir), url=url, sha256=sha256,
                                    progress=progress)
    else:
        if url is not None or sha256 is not None:
            raise PrepError(None, "url/sha256 only apply with --download")
        folder = resolve_raw(spec, raw)
    return spec.read(folder, options)


def prepare_dataset(
    name: str,
    raw: str | os.PathLike[str] | None = None,
    *,
    k_core: int | None = None,
    min_length: int | None = None,
    min_rating: float | None = None,
    text_max_chars: int = DEFAULT_MAX_CHARS,
    **read_options: object,
) -> PreparedDataset:
    """Like prepare(), but returns the validated tables instead of writing them."""
    filters = Filters(k_core=k_core, min_length=min_length, min_rating=min_rating)
    raw_dataset = load_raw(name, raw, text_max_chars=text_max_chars, **read_options)  # type: ignore[arg-type]
    return build_prepared(raw_dataset, filters, text_max_chars)


def prepare(
    name: str,
    raw: str | os.PathLike[str] | None = None,
    *,
    out: str | os.PathLike[str],
    overwrite: bool = False,
    k_core: int | None = None,
    min_length: int | None = None,
    min_rating: float | None = None,
    text_max_chars: int = DEFAULT_MAX_CHARS,
    numbering: str | None = None,
    users: int | None = None,
    items: int | None = None,
    seed: int | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Prepare dataset `name` from `raw` (or $RECSYS_DATA, or a download) into the folder `out`.

    With no filters the published dataset is reproduced exactly. Raises PrepError (a ValueError) for bad
    input and FileExistsError when `out` exists and `overwrite` is False; either way nothing is written.
    """
    out_path = Path(out)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path}: already exists; pass overwrite=True (--overwrite) to replace it")
    dataset = prepare_dataset(
        name, raw, k_core=k_core, min_length=min_length, min_rating=min_rating, text_max_chars=text_max_chars,
        numbering=numbering, users=users, items=items, seed=seed, download=download, cache_dir=cache_dir,
        url=url, sha256=sha256, progress=progress,
    )  # fmt: skip
    return write_prepared(dataset, out_path, overwrite=overwrite)
