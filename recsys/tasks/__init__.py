"""LightningModules: the only place Lightning touches models."""

from recsys.tasks.retrieval import RetrievalTask

__all__ = ["RetrievalTask"]
