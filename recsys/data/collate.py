"""Per-objective batch builders: each turns a list of row indices into padded tensors with array ops.

Batch keys (the wall between data and models):
- `item_seq` LongTensor [B, L]: item indices, left-padded with 0, the most recent item in the last column;
- `targets` LongTensor [B, L] (training): the item each position must predict, 0 where nothing is predicted;
- `target` LongTensor [B] (evaluation): the held-out item, -1 when there is none (scoring what comes next);
- `row` LongTensor [B]: the row in the split, to look up the user's full history (seen-item exclusion);
- `user_idx` LongTensor [B];
- `segments`, `positions` LongTensor [R, W] (packed training batches only): several windows share a row;
  `segments` numbers them 1, 2, ... within the row (0 = padding) and attention stays inside a segment;
  `positions` counts each segment's items from its most recent one. `row` and `user_idx` stay per window.
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


def pack_windows(item_seq: np.ndarray, targets: np.ndarray, width: int) -> dict[str, np.ndarray]:
    """Pack left-padded windows (real items contiguous at the right) several to a row of `width` columns.

    Amazon windows hold 6 items on average against 50 columns, so most of a plain batch is padding that every
    layer computes. Windows are placed first-fit in decreasing length order; each keeps its own positions and
    attends only within itself, so the model computes the same outputs at every real position.
    """
    lengths = (item_seq != 0).sum(axis=1)
    free: list[int] = []  # free columns per packed row
    placed: list[list[int]] = []  # window indices per packed row, in placement order
    for window in np.argsort(-lengths, kind="stable"):
        need = int(lengths[window])
        row = next((r for r, room in enumerate(free) if room >= need), None)
        if row is None:
            free.append(width)
            placed.append([])
            row = len(free) - 1
        free[row] -= need
        placed[row].append(int(window))
    columns = width - min(free) if free else 1
    names = ("item_seq", "targets", "segments", "positions")
    out = {name: np.zeros((len(placed), columns), dtype=np.int64) for name in names}
    for row, windows in enumerate(placed):
        end = columns  # segments fill the row from the right, the first placed rightmost
        for segment, window in enumerate(windows, start=1):
            n = int(lengths[window])
            span = slice(end - n, end)
            out["item_seq"][row, span] = item_seq[window, -n:]
            out["targets"][row, span] = targets[window, -n:]
            out["segments"][row, span] = segment
            out["positions"][row, span] = np.arange(n - 1, -1, -1)
            end -= n
    return out


class TrainWindows:
    """Which training windows an epoch visits: each row's most recent one, tiles covering every item, or
    (`every`) one window per (history, next item) pair, ending at that item, whose only target is that item."""

    def __init__(self, sequences: Sequences, max_len: int, mode: str, stride: int | None = None) -> None:
        self.last_target_only = mode == "every"
        self.owned: np.ndarray | None = None  # targets each window trains on, counted from its end; None: all
        if stride is not None and mode != "all":
            raise ValueError(f"a window stride applies to train_windows='all', not '{mode}'")
        if mode == "all":
            self.rows, self.ends, owned = sequences.strided_ends(max_len, stride or max_len)
            if stride is not None and stride < max_len:  # tiles own every target of theirs: nothing to mask
                self.owned = owned
        elif mode == "last":
            self.rows = np.flatnonzero(sequences.lengths >= 2)
            self.ends = sequences.offsets[self.rows + 1]
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

    def __init__(
        self, sequences: Sequences, max_len: int, windows: TrainWindows | None = None, pack: bool = False
    ) -> None:
        self.sequences = sequences
        self.max_len = max_len
        self.plan = windows or TrainWindows(sequences, max_len, "last")
        self.pack = pack

    def __call__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        rows_np, ends = self.plan.rows[index], self.plan.ends[index]
        window = self.sequences.windows(self.max_len + 1, rows_np, ends)
        item_seq = window[:, :-1]
        targets = np.where(item_seq > 0, window[:, 1:], 0)
        item_seq, targets = trim_padding(item_seq, targets)
        if self.plan.last_target_only:
            targets[:, :-1] = 0
        if self.plan.owned is not None:  # overlapping windows: each trains only the targets it owns
            width = targets.shape[1]
            targets[np.arange(width)[None, :] < width - self.plan.owned[index][:, None]] = 0
        return _batch(item_seq, targets, rows_np, self.sequences.users[rows_np], self.max_len if self.pack else None)


class ClozeCollator:
    """Masked-item prediction (BERT4Rec): a random share of positions is replaced by the mask token.

    Every row gets at least one masked position; when the draw masks none, the last item is masked, which is
    also the position the model predicts at inference.

    The masks are drawn from a generator seeded by `seed` and the batch's window indices in batch order, so they
    are a function of the batch: a run resumed mid-epoch (whose batch order is re-derived, see
    recsys.data.sampling) masks its remaining batches exactly as the interrupted run would have, in the main
    process or in any loader worker. A window gets fresh masks every epoch because it lands in another batch.
    """

    def __init__(
        self, sequences: Sequences, max_len: int, mask_token: int, mask_prob: float, seed: int = 0,
        windows: TrainWindows | None = None, pack: bool = False,
    ) -> None:
        if not 0.0 < mask_prob < 1.0:
            raise ValueError(f"mask_prob={mask_prob}: expected a value strictly between 0 and 1")
        self.sequences = sequences
        self.max_len = max_len
        self.mask_token = mask_token
        self.mask_prob = mask_prob
        if seed < 0:
            raise ValueError(f"seed={seed}: expected a non-negative integer")
        self.seed = seed
        self.plan = windows or TrainWindows(sequences, max_len, "last")
        self.pack = pack

    def __call__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        rows_np, ends = self.plan.rows[index], self.plan.ends[index]
        window = self.sequences.windows(self.max_len, rows_np, ends)
        real = window > 0
        rng = np.random.default_rng([self.seed, *index.tolist()])
        mask = real & (rng.random(window.shape) < self.mask_prob)
        none_masked = ~mask.any(axis=1)
        mask[none_masked, -1] = real[none_masked, -1]
        item_seq = np.where(mask, self.mask_token, window)
        item_seq, targets = trim_padding(item_seq, np.where(mask, window, 0))
        return _batch(item_seq, targets, rows_np, self.sequences.users[rows_np], self.max_len if self.pack else None)


def _batch(
    item_seq: np.ndarray, targets: np.ndarray, rows: np.ndarray, users: np.ndarray, pack_width: int | None
) -> dict[str, torch.Tensor]:
    """A training batch as tensors; with `pack_width`, windows packed several to a row (`pack_windows`)."""
    arrays = {"item_seq": item_seq, "targets": targets}
    if pack_width is not None:
        arrays = pack_windows(item_seq, targets, pack_width)
    batch = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}
    return {**batch, "row": torch.from_numpy(rows), "user_idx": torch.from_numpy(users)}


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
