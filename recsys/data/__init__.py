"""Prepared-dataset reader, splits, batches and the LightningDataModule."""

from recsys.data.contract import ContractError, PreparedDataset, read_prepared, write_prepared
from recsys.data.sequences import Sequences
from recsys.data.split import EvalSplit, LeaveOneOut, leave_one_out

__all__ = [
    "ContractError", "EvalSplit", "LeaveOneOut", "PreparedDataset", "Sequences",
    "leave_one_out", "read_prepared", "write_prepared",
]

from recsys.data.datamodule import SequenceDataModule  # noqa: E402  (imports Lightning)

__all__ += ["SequenceDataModule"]
