"""LightningModules: the only place Lightning touches models."""

from recsys.tasks.base import RankingTask
from recsys.tasks.ema import WeightEMA
from recsys.tasks.generative import GenerativeTask
from recsys.tasks.recformer import RecformerTask
from recsys.tasks.retrieval import RetrievalTask

__all__ = ["GenerativeTask", "RankingTask", "RecformerTask", "RetrievalTask", "WeightEMA"]
