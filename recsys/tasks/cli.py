"""`recsys fit|validate|test|predict`: the Lightning CLI with recsys' defaults.

What it adds to a plain LightningCLI: the item count and window length flow from the data into the model
(configs never repeat them), checkpoints and CSV/TensorBoard logs go to `checkpoints/<experiment>/`, the
best checkpoint by validation NDCG is kept and `last.ckpt` is rewritten after every validation (so
`--ckpt_path last` resumes from the latest epoch), `fit` ends by testing that best checkpoint, and YAML
configs may use omegaconf interpolation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
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


class RecsysCLI(LightningCLI):
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
            {"early_stopping.monitor": "val/ndcg@10", "early_stopping.mode": "max", "early_stopping.patience": 5}
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
