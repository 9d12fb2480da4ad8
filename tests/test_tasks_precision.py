"""bf16 mixed precision on a CPU without bfloat16 instructions is warned about before training starts."""

from __future__ import annotations

import warnings

import pytest
import pytorch_lightning as pl
import torch

import recsys.tasks.base as base
from recsys.models import SASRec
from recsys.tasks.precision import bf16_cpu_warning, cpu_has_native_bf16
from recsys.tasks.retrieval import RetrievalTask


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_warns_for_bf16_on_a_cpu_without_it(precision: str) -> None:
    message = bf16_cpu_warning(precision, "cpu", native_bf16=False)
    assert message is not None and precision in message and "32-true" in message


@pytest.mark.parametrize(
    ("precision", "device", "native"),
    [("bf16-mixed", "cpu", True), ("32-true", "cpu", False), ("16-mixed", "cpu", False), ("bf16-mixed", "cuda", False)],
)
def test_silent_elsewhere(precision: str, device: str, native: bool) -> None:
    assert bf16_cpu_warning(precision, device, native_bf16=native) is None


def test_native_probe_follows_torch_and_trusts_an_unknown_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not cpu_has_native_bf16()
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert cpu_has_native_bf16()
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert cpu_has_native_bf16()


def _task_with_trainer(precision: str) -> RetrievalTask:
    task = RetrievalTask(SASRec(20, hidden_size=8, n_heads=2, max_len=5))
    task.trainer = pl.Trainer(accelerator="cpu", precision=precision, logger=False, enable_progress_bar=False,
                              enable_checkpointing=False, enable_model_summary=False)
    return task


def test_fit_start_warns_on_such_a_cpu_only_for_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="without bfloat16 instructions"):
        _task_with_trainer("bf16-mixed").on_fit_start()
    task = _task_with_trainer("32-true")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        task.on_fit_start()
