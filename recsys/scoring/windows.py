"""History windows for scoring, cut to what each batch needs.

Most histories are much shorter than the model's window (Beauty: 8.9 items on average, window 50), so a
full-width batch spends most of the transformer on padding. Users are taken shortest history first, and
each batch is cut to its own longest history; on Beauty that makes encoding about 7x cheaper.

That is only right for a model whose output does not depend on left padding (SASRec and BERT4Rec count
positions from the most recent item and mask padding). The model contract does not promise it, so it is
checked on the model itself before any output is written: a probe encodes short and median-length
histories at full width and cut, and cutting is used only when they agree to float precision. Outputs then
differ from full-width ones by rounding (about 1e-6 on Beauty), which is why `--split test`, meant to
reproduce `recsys test` exactly, always uses full windows.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from recsys.data.collate import EvalCollator
from recsys.data.split import EvalSplit

_PROBE_ROWS = 64
_RELATIVE_TOLERANCE = 1e-4


def length_order(split: EvalSplit, rows: np.ndarray) -> np.ndarray:
    """`rows` by history length, then by row, so that each batch holds histories of similar length."""
    return rows[np.lexsort((rows, split.history.lengths[rows]))]


class WindowCollator:
    """EvalCollator batches, cut to the batch's longest history (at most `max_len`) when `trim` is set."""

    def __init__(self, split: EvalSplit, max_len: int, trim: bool) -> None:
        self.split = split
        self.max_len = max_len
        self.trim = trim
        self.lengths = split.history.lengths

    def width(self, rows: np.ndarray) -> int:
        if not self.trim or rows.size == 0:
            return self.max_len
        return int(min(self.max_len, max(1, self.lengths[rows].max())))

    def __call__(self, rows: np.ndarray) -> dict[str, Tensor]:
        return EvalCollator(self.split, self.width(rows))(rows)


@torch.inference_mode()
def padding_invariant(model: nn.Module, split: EvalSplit, max_len: int, device: torch.device) -> bool:
    """Whether cutting left padding leaves `model.encode` unchanged, on the shortest and median histories."""
    if len(split) == 0:
        return False
    order = length_order(split, np.arange(len(split), dtype=np.int64))
    middle = max(0, len(order) // 2 - _PROBE_ROWS // 2)
    was_training = model.training
    model.eval()
    try:
        for rows in (order[:_PROBE_ROWS], order[middle : middle + _PROBE_ROWS]):
            full = _encode(model, EvalCollator(split, max_len)(rows), device)
            cut = _encode(model, WindowCollator(split, max_len, trim=True)(rows), device)
            if full.shape != cut.shape or not torch.isfinite(full).all():
                return False
            scale = max(1.0, float(full.abs().max()))
            if float((full - cut).abs().max()) > _RELATIVE_TOLERANCE * scale:
                return False
    finally:
        model.train(was_training)
    return True


def _encode(model: nn.Module, batch: dict[str, Tensor], device: torch.device) -> Tensor:
    return model.encode({key: value.to(device) for key, value in batch.items()}).float().cpu()
