"""LightningModules: the only place Lightning touches models."""

from recsys.tasks.base import RankingTask
from recsys.tasks.generative import GenerativeTask
from recsys.tasks.retrieval import RetrievalTask

__all__ = ["GenerativeTask", "RankingTask", "RetrievalTask"]
