"""Prepared-dataset reader, splits, batches and the LightningDataModule."""

from recsys.data.contract import ContractError, PreparedDataset, read_prepared, write_prepared
from recsys.data.sequences import Sequences
from recsys.data.split import EvalSplit, LeaveOneOut, leave_one_out

__all__ = [
    "ContractError", "EvalSplit", "LeaveOneOut", "PreparedDataset", "Sequences",
    "leave_one_out", "read_prepared", "write_prepared",
]
__all__ += ["SequenceDataModule"]


def __getattr__(name: str) -> object:
    # The DataModule pulls in Lightning (seconds of import); `recsys prep` only needs the contract.
    if name == "SequenceDataModule":
        from recsys.data.datamodule import SequenceDataModule

        return SequenceDataModule
    raise AttributeError(f"module 'recsys.data' has no attribute '{name}'")
