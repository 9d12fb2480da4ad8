"""Every shipped YAML config names real classes and real constructor arguments.

Running each config end to end takes minutes; most are only exercised by benchmarks. A misspelled key (say
`item_fromat`) would only surface when a user runs that file, so this checks every `class_path`/`init_args` pair
against the class's signature, and the trainer keys against `Trainer`'s, without building anything.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import yaml

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))
TOP_LEVEL = {"experiment", "seed_everything", "data", "model", "trainer", "checkpoint", "early_stopping",
             "test_after_fit", "ckpt_path", "optimizer", "lr_scheduler"}


def _accepted(target: Any) -> set[str] | None:
    """Keyword names a callable accepts, or None when it takes **kwargs."""
    params = inspect.signature(target).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.name != "self"}


def _check_class(node: dict[str, Any], where: str) -> None:
    assert set(node) <= {"class_path", "init_args"}, f"{where}: unexpected keys {sorted(set(node) - {'class_path', 'init_args'})}"
    module, _, name = node["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    args = node.get("init_args") or {}
    accepted = _accepted(cls.__init__)
    if accepted is not None:
        unknown = sorted(set(args) - accepted)
        assert not unknown, f"{where}: {node['class_path']} has no argument(s) {unknown}"
    for key, value in args.items():
        if isinstance(value, dict) and "class_path" in value:
            _check_class(value, f"{where}.init_args.{key}")


OVERLAYS = "overlays"  # configs/overlays/*.yaml add to a model config (`--config X --config overlay`)


def test_there_are_configs_for_every_model() -> None:
    assert {p.parent.name for p in CONFIGS} >= {"sasrec", "bert4rec", "recformer", "tiger"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_keys_match_the_classes_they_name(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    assert set(config) <= TOP_LEVEL, f"{path.name}: unknown top-level keys {sorted(set(config) - TOP_LEVEL)}"
    for section in ("data", "model"):
        if path.parent.name == OVERLAYS and section not in config:
            continue
        _check_class(config[section], f"{path.name}:{section}")
    trainer = _accepted(pl.Trainer.__init__)
    assert trainer is not None
    unknown = sorted(set(config.get("trainer") or {}) - trainer)
    assert not unknown, f"{path.name}: Trainer has no argument(s) {unknown}"
    for i, callback in enumerate((config.get("trainer") or {}).get("callbacks") or []):
        _check_class(callback, f"{path.name}:trainer.callbacks[{i}]")
    callbacks = {"checkpoint": pl.callbacks.ModelCheckpoint, "early_stopping": pl.callbacks.EarlyStopping}
    for key, cls in callbacks.items():
        accepted = _accepted(cls.__init__)
        assert accepted is not None
        unknown = sorted(set(config.get(key) or {}) - accepted)
        assert not unknown, f"{path.name}: {key} has no argument(s) {unknown}"


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): node}


def _resolved(configs: list[Path], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The config the Lightning CLI builds from `--config` files given in order (`recsys fit --print_config`)."""
    from unittest import mock

    from recsys.tasks.cli import run_lightning_cli

    args = ["fit", *(a for c in configs for a in ("--config", str(c))), "--print_config"]
    with mock.patch("sys.argv", ["recsys"]), pytest.raises(SystemExit):
        run_lightning_cli(args)
    return _flat(yaml.safe_load(capsys.readouterr().out))


@pytest.mark.parametrize("overlay", [p for p in CONFIGS if p.parent.name == OVERLAYS], ids=lambda p: p.name)
def test_an_overlay_changes_only_its_own_keys(overlay: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An overlay stacks on a model config (jsonargparse merges a repeated class_path's init_args rather than
    resetting them): every key it does not name keeps the base config's value."""
    base = overlay.parents[1] / "tiger" / "amazon-beauty-adafactor.yaml"
    before, after = _resolved([base], capsys), _resolved([base, overlay], capsys)
    named = _flat(yaml.safe_load(overlay.read_text()))
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed and all(any(k == n or k.startswith(f"{n}.") for n in named) for k in changed), sorted(changed)
    assert all(after.get(k) == v for k, v in named.items()), named
