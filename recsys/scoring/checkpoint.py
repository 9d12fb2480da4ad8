"""Load a model from a `recsys fit` checkpoint without unpickling arbitrary objects.

A Lightning checkpoint is a pickle. `torch.load(weights_only=True)` only rebuilds tensors and plain
containers, so a tampered file cannot run code while it is read. The model is then rebuilt the way the
Lightning CLI built it: `hyper_parameters["model"]` holds `{class_path, init_args}`; the class is imported
by path (it must be an installed nn.Module subclass, the same trust as a YAML config) and its weights are
the `model.`-prefixed entries of the state dict.

One Lightning type may appear in otherwise plain checkpoints: `AttributeDict`, a dict subclass that
Lightning uses for `hparams`. torch refuses to fill a dict subclass even when allow-listed, so its name
is mapped to the builtin `dict` (no Lightning code runs; the data is the same). Anything else that is not
plain data is refused with the names torch found.
"""

from __future__ import annotations

import hashlib
import importlib
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

# Lightning's hparams container, under every name it has been pickled with: loaded as a plain dict.
_DICT_ALIASES = (
    "lightning_fabric.utilities.data.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.pytorch.utilities.parsing.AttributeDict",
)
MODEL_PREFIX = "model."


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded safely, or does not describe a model scoring can rebuild."""


@dataclass(frozen=True)
class LoadedModel:
    """A rebuilt model in eval mode, with what the manifest records about where it came from."""

    model: nn.Module
    class_path: str
    init_args: dict[str, Any]
    sha256: str
    path: Path


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's top-level dict, loaded with weights_only=True (memory-mapped when the format allows,
    so optimiser states the model does not need are never read into memory)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    aliases = [(dict, name) for name in _DICT_ALIASES]
    try:
        with torch.serialization.safe_globals(aliases):
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                state = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as exc:
        unsafe = [g for g in _unsafe_globals(path) if g not in _DICT_ALIASES]
        found = ", ".join(unsafe) if unsafe else str(exc).splitlines()[0]
        raise CheckpointError(
            f"{path}: refusing to unpickle objects that are not plain data ({found}). Scoring rebuilds the "
            "model from hyper_parameters['model'] = {class_path, init_args}, as `recsys fit` saves it; a "
            "checkpoint of a LightningModule built in Python keeps the model object itself there instead"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({exc})") from exc
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: expected a checkpoint dict, found {type(state).__name__}")
    return dict(state)


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - only used to improve an error message
        return []


def import_class(class_path: str, where: str) -> type:
    module_name, _, name = class_path.rpartition(".")
    if not module_name:
        raise CheckpointError(f"{where}: class_path '{class_path}' is not a dotted path (module.Class)")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise CheckpointError(f"{where}: cannot import class_path '{class_path}' ({exc})") from exc
    if not isinstance(cls, type):
        raise CheckpointError(f"{where}: class_path '{class_path}' is not a class")
    return cls


def _init_value(value: Any, where: str) -> Any:
    """Nested `{class_path, init_args}` values (a sub-module argument) are built the same way."""
    if isinstance(value, Mapping) and "class_path" in value:
        cls = import_class(str(value["class_path"]), where)
        return cls(**{k: _init_value(v, f"{where}.{k}") for k, v in dict(value.get("init_args") or {}).items()})
    return value


def model_spec(state: Mapping[str, Any], path: Path) -> tuple[str, dict[str, Any]]:
    """(class_path, init_args) of the model, from a LightningCLI checkpoint's hyper_parameters."""
    hparams = state.get("hyper_parameters")
    if not isinstance(hparams, Mapping):
        raise CheckpointError(f"{path}: no 'hyper_parameters' dict; was it written by `recsys fit`?")
    spec = hparams.get("model")
    if not isinstance(spec, Mapping) or "class_path" not in spec:
        raise CheckpointError(
            f"{path}: hyper_parameters['model'] is {type(spec).__name__}, expected {{class_path, init_args}} "
            "as the Lightning CLI saves it"
        )
    return str(spec["class_path"]), dict(spec.get("init_args") or {})


def build_model(state: Mapping[str, Any], path: Path) -> tuple[nn.Module, str, dict[str, Any]]:
    class_path, init_args = model_spec(state, path)
    where = f"{path}: hyper_parameters.model"
    cls = import_class(class_path, where)
    if not issubclass(cls, nn.Module):
        raise CheckpointError(f"{where}: '{class_path}' is not a torch nn.Module")
    try:
        model = cls(**{k: _init_value(v, f"{where}.init_args.{k}") for k, v in init_args.items()})
    except TypeError as exc:
        raise CheckpointError(f"{where}: {class_path}(**init_args) failed: {exc}") from exc
    weights = state.get("state_dict")
    if not isinstance(weights, Mapping):
        raise CheckpointError(f"{path}: no 'state_dict'")
    own = {k[len(MODEL_PREFIX) :]: v for k, v in weights.items() if k.startswith(MODEL_PREFIX)}
    if not own:
        raise CheckpointError(f"{path}: state_dict has no '{MODEL_PREFIX}*' entries")
    try:
        model.load_state_dict(own, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not fit {class_path}(**init_args): {exc}") from exc
    return model.eval(), class_path, init_args


def check_items(init_args: Mapping[str, Any], n_items: int, path: Path, data: str) -> None:
    """Refuse a checkpoint trained on another catalogue before building it (its item table would not fit)."""
    trained = init_args.get("n_items")
    if trained is not None and int(trained) != n_items:
        raise CheckpointError(
            f"{path} was trained on {int(trained):,} items but the prepared dataset {data} has {n_items:,}: "
            "score with the dataset the checkpoint was trained on"
        )


def load_model(
    path: str | Path, device: str | torch.device = "cpu", n_items: int | None = None, data: str = "the data"
) -> LoadedModel:
    """Read, rebuild and move a checkpoint's model to `device`, in eval mode; with `n_items`, refuse a
    checkpoint whose item count differs (`data` names the dataset in that message)."""
    path = Path(path)
    state = read_checkpoint(path)
    if n_items is not None:
        check_items(model_spec(state, path)[1], n_items, path, data)
    model, class_path, init_args = build_model(state, path)
    return LoadedModel(model.to(device), class_path, init_args, file_sha256(path), path)
