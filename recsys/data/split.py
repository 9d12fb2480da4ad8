"""Leave-one-out by time: the protocol every published number in BENCHMARKS.md uses.

Train on all but each user's last two items, validate on the second-last, test on the last; each target is
predicted from everything before it (so the test history includes the validation item). Users with fewer
than `min_length` interactions stay in training and are never evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.data.sequences import Sequences


@dataclass(frozen=True)
class EvalSplit:
    """One target per evaluated user and the history it is predicted from.

    Row r: user `history.users[r]`, history `history.row(r)`, target `targets[r]`.
    """

    name: str
    history: Sequences
    targets: np.ndarray  # int64 [rows]

    def __len__(self) -> int:
        return len(self.history)

    @property
    def users(self) -> np.ndarray:
        return self.history.users


@dataclass(frozen=True)
class LeaveOneOut:
    train: Sequences
    valid: EvalSplit
    test: EvalSplit


def leave_one_out(sequences: Sequences, min_length: int = 3) -> LeaveOneOut:
    if min_length < 3:
        raise ValueError(f"min_length={min_length}: leave-one-out needs at least 3 items (train, valid, test)")
    evaluated = np.flatnonzero(sequences.lengths >= min_length)
    short = np.flatnonzero(sequences.lengths < min_length)
    long_seqs = sequences.select(evaluated)
    train_rows = long_seqs.drop_last(2)
    if short.size:
        # Short users train on everything they have; they have no held-out items to leak.
        train = _concat(train_rows, sequences.select(short))
    else:
        train = train_rows
    valid = EvalSplit("valid", long_seqs.drop_last(2), long_seqs.last(2))
    test = EvalSplit("test", long_seqs.drop_last(1), long_seqs.last(1))
    return LeaveOneOut(train=train, valid=valid, test=test)


def full_history(sequences: Sequences) -> EvalSplit:
    """Each user's whole history with no target (-1): what scoring ranks for 'what comes next'."""
    return EvalSplit("next", sequences, np.full(len(sequences), -1, dtype=np.int64))


def _concat(a: Sequences, b: Sequences) -> Sequences:
    offsets = np.r_[a.offsets, b.offsets[1:] + a.offsets[-1]].astype(np.int64)
    order = np.argsort(np.r_[a.users, b.users], kind="stable")
    merged = Sequences(np.r_[a.items, b.items], offsets, np.r_[a.users, b.users])
    return merged.select(order)
