"""`recsys fit|validate|test|predict`: the Lightning CLI with recsys' defaults.

What it adds to a plain LightningCLI: the item count and window length flow from the data into the model
(configs never repeat them), checkpoints and CSV/TensorBoard logs go to `checkpoints/<experiment>/`, the
best checkpoint by validation NDCG is kept and `last.ckpt` is rewritten after every validation (so
`--ckpt_path last` resumes from the latest epoch), `fit` ends by testing that best checkpoint, and YAML
configs may use omegaconf interpolation.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml
from jsonargparse import DefaultHelpFormatter
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from recsys.tasks.checkpoint import BestAndLatestCheckpoint

# `recsys` passes its own argv on purpose; Lightning's warning about that is noise here.
warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")

MODEL_CLASSES = ("recsys.models.SASRec", "recsys.models.BERT4Rec", "recsys.models.TIGER", "recsys.models.Recformer")


def models_help() -> str:
    """Every model's constructor arguments with their docs, for the foot of `recsys fit --help`."""
    import importlib
    import inspect

    from docstring_parser import parse

    lines = ["models (model.init_args.model.class_path) and their arguments (model.init_args.model.init_args.*):"]
    for path in MODEL_CLASSES:
        module, name = path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        docs = {p.arg_name: " ".join((p.description or "").split()) for p in parse(cls.__doc__ or "").params}
        lines.append(f"  {path}")
        for param in list(inspect.signature(cls).parameters.values()):
            default = "from the data" if param.name == "n_items" else repr(param.default)
            lines.append(f"    {param.name} (default {default}): {docs.get(param.name, '')}")
    lines.append("  `recsys fit --model.model.help CLASS` prints one model's arguments in full.")
    return "\n".join(lines)


def model_overrides(argv: Sequence[str]) -> dict[str, Any]:
    """The `--model.*` arguments of a command line as a nested dict, values read as YAML (as jsonargparse does).

    The short forms jsonargparse accepts for subclass arguments (`--model.lr`, `--model.model.init_args.n_layers`)
    are written out with their `init_args` level, the form a parsed config has.
    """
    nested: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if token.startswith("--model."):
            key, eq, value = token[2:].partition("=")
            if not eq:
                if i + 1 >= len(argv):
                    break
                i += 1
                value = argv[i]
            parts = key.split(".")
            path: list[str] = []
            for j, part in enumerate(parts):
                path.append(part)
                following = parts[j + 1] if j + 1 < len(parts) else None
                if part == "model" and following not in (None, "init_args", "class_path", "dict_kwargs"):
                    path.append("init_args")
            node = nested
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = yaml.safe_load(value)
        i += 1
    return nested


def _deep_update(target: dict[str, Any], updates: dict[str, Any]) -> None:
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


class RecsysCLI(LightningCLI):
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        self._argv = list(args) if args is not None else sys.argv[1:]
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """Like Lightning, take the model's hyperparameters from `--ckpt_path` (so the weights fit the model), but
        let `--model.*` arguments typed on the same command line win: Lightning's own merge silently dropped them
        (`recsys test --ckpt_path X --model.init_args.exclude_seen true` tested with seen items kept)."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        import torch

        hparams = torch.load(ckpt_path, weights_only=True, map_location="cpu").get("hyper_parameters", {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        _deep_update(hparams, model_overrides(self._argv).get("model", {}).get("init_args", {}))
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        parser.epilog = models_help()
        return parser

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--experiment", type=str, default="default",
            help="run name: checkpoints and logs go to checkpoints/<experiment>/ unless trainer.default_root_dir is set",
        )
        parser.add_argument(
            "--test_after_fit", type=bool, default=True,
            help="after `fit`, test the best checkpoint and write test_metrics.json",
        )
        parser.add_lightning_class_args(BestAndLatestCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/ndcg@10",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{epoch}-{step}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults(
            {"early_stopping.monitor": "val/ndcg@10", "early_stopping.mode": "max", "early_stopping.patience": 5,
             # After each validation, never at a training epoch's end: an epoch resumed from a checkpoint taken
             # mid-epoch (where max_time stops) ends without the validation metric in that process.
             "early_stopping.check_on_train_epoch_end": False}
        )
        parser.link_arguments("data.n_items", "model.init_args.model.init_args.n_items", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        root = config.trainer.default_root_dir or str(Path("checkpoints") / config.experiment)
        config.trainer.default_root_dir = root
        if config.checkpoint.dirpath is None:
            config.checkpoint.dirpath = str(Path(root) / "checkpoints")

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[pl.Callback]) -> pl.Trainer:
        if config.get("logger") in (None, True):
            root = config["default_root_dir"]
            version = _next_version(Path(root) / "logs")
            config["logger"] = [
                CSVLogger(root, name="logs", version=version),
                TensorBoardLogger(root, name="logs", version=version, default_hp_metric=False),
            ]
        return super()._instantiate_trainer(config, callbacks)

    def after_fit(self) -> None:
        if self.config.fit.test_after_fit and not self.trainer.interrupted:
            ckpt = "best" if self.trainer.checkpoint_callback and self.trainer.checkpoint_callback.best_model_path else None
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt)


class _RawEpilogFormatter(DefaultHelpFormatter):
    """Keeps the models section's line breaks; argument help is formatted as usual."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(indent + line for line in text.splitlines(keepends=True))


def _next_version(logs: Path) -> int:
    existing = [int(p.name.split("_")[1]) for p in logs.glob("version_*") if p.name.split("_")[1].isdigit()]
    return max(existing, default=-1) + 1


def run_lightning_cli(argv: Sequence[str]) -> int:
    from recsys.tasks.base import RankingTask

    RecsysCLI(
        model_class=RankingTask,  # RetrievalTask or GenerativeTask, by class_path
        subclass_mode_model=True,
        datamodule_class=pl.LightningDataModule,
        subclass_mode_data=True,
        args=list(argv),
        parser_kwargs={"parser_mode": "omegaconf", "formatter_class": _RawEpilogFormatter},
        trainer_defaults={"use_distributed_sampler": False},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
    return 0
