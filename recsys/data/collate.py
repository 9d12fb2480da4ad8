"""Per-objective batch builders: each turns a list of row indices into padded tensors with array ops.

Batch keys (the wall between data and models):
- `item_seq` LongTensor [B, L]: item indices, left-padded with 0, the most recent item in the last column;
- `targets` LongTensor [B, L] (training): the item each position must predict, 0 where nothing is predicted;
- `target` LongTensor [B] (evaluation): the held-out item, -1 when there is none (scoring what comes next);
- `row` LongTensor [B]: the row in the split, to look up the user's full history (seen-item exclusion);
- `user_idx` LongTensor [B].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recsys.data.sequences import Sequences
from recsys.data.split import EvalSplit


def trim_padding(*columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """Drop the leading columns that are padding in every row of the first array (and the same columns of
    the others). Models count positions from the most recent item, so this changes no output, and short-history
    datasets (Amazon: 9 items on average against a window of 50) stop paying for padding."""
    real = columns[0] != 0
    first = int(real.any(axis=0).argmax()) if real.any() else columns[0].shape[1] - 1
    return tuple(np.ascontiguousarray(c[:, first:]) for c in columns)


class TrainWindows:
    """Which training windows an epoch visits: each row's most recent one, tiles covering every item, or
    (`every`) one window per (history, next item) pair, ending at that item, whose only target is that item."""

    def __init__(self, sequences: Sequences, max_len: int, mode: str) -> None:
        self.last_target_only = mode == "every"
        if mode == "last":
            self.rows = np.flatnonzero(sequences.lengths >= 2)
            self.ends = sequences.offsets[self.rows + 1]
        elif mode == "all":
            self.rows, self.ends = sequences.chunk_ends(max_len)
        elif mode == "every":
            counts = np.maximum(sequences.lengths - 1, 0)
            self.rows = np.repeat(np.arange(len(sequences)), counts)
            within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            self.ends = sequences.offsets[self.rows] + within + 2  # window ends just after its target
        else:
            raise ValueError(f"train_windows='{mode}': expected 'last', 'all' or 'every'")

    def __len__(self) -> int:
        return int(self.rows.size)


class CausalCollator:
    """Next-item at every position (SASRec): input is the window, targets are the window shifted by one.

    Collators take window indices (into `TrainWindows`) and build the whole batch with array ops.
    """

    def __init__(self, sequences: Sequences, max_len: int, windows: TrainWindows | None = None) -> None:
        self.sequences = sequences
        self.max_len = max_len
        self.plan = windows or TrainWindows(sequences, max_len, "last")

    def __call__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        rows_np, ends = self.plan.rows[index], self.plan.ends[index]
        window = self.sequences.windows(self.max_len + 1, rows_np, ends)
        item_seq = window[:, :-1]
        targets = np.where(item_seq > 0, window[:, 1:], 0)
        item_seq, targets = trim_padding(item_seq, targets)
        if self.plan.last_target_only:
            targets[:, :-1] = 0
        return {
            "item_seq": torch.from_numpy(np.ascontiguousarray(item_seq)),
            "targets": torch.from_numpy(np.ascontiguousarray(targets)),
            "row": torch.from_numpy(rows_np),
            "user_idx": torch.from_numpy(self.sequences.users[rows_np]),
        }


class ClozeCollator:
    """Masked-item prediction (BERT4Rec): a random share of positions is replaced by the mask token.

    Every row gets at least one masked position; when the draw masks none, the last item is masked, which is
    also the position the model predicts at inference.
    """

    def __init__(
        self, sequences: Sequences, max_len: int, mask_token: int, mask_prob: float, seed: int = 0,
        windows: TrainWindows | None = None,
    ) -> None:
        if not 0.0 < mask_prob < 1.0:
            raise ValueError(f"mask_prob={mask_prob}: expected a value strictly between 0 and 1")
        self.sequences = sequences
        self.max_len = max_len
        self.mask_token = mask_token
        self.mask_prob = mask_prob
        self.rng = np.random.default_rng(seed)
        self.plan = windows or TrainWindows(sequences, max_len, "last")

    def __call__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        rows_np, ends = self.plan.rows[index], self.plan.ends[index]
        window = self.sequences.windows(self.max_len, rows_np, ends)
        real = window > 0
        mask = real & (self.rng.random(window.shape) < self.mask_prob)
        none_masked = ~mask.any(axis=1)
        mask[none_masked, -1] = real[none_masked, -1]
        item_seq = np.where(mask, self.mask_token, window)
        item_seq, targets = trim_padding(item_seq, np.where(mask, window, 0))
        return {
            "item_seq": torch.from_numpy(item_seq),
            "targets": torch.from_numpy(targets),
            "row": torch.from_numpy(rows_np),
            "user_idx": torch.from_numpy(self.sequences.users[rows_np]),
        }


class EvalCollator:
    """History windows with one held-out target per row."""

    def __init__(self, split: EvalSplit, max_len: int) -> None:
        self.split = split
        self.max_len = max_len

    def __call__(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        rows_np = np.asarray(rows, dtype=np.int64)
        (item_seq,) = trim_padding(self.split.history.windows(self.max_len, rows_np))
        return {
            "item_seq": torch.from_numpy(item_seq),
            "target": torch.from_numpy(self.split.targets[rows_np]),
            "row": torch.from_numpy(rows_np),
            "user_idx": torch.from_numpy(self.split.users[rows_np]),
        }
