"""Honest evaluation: metrics from ranks, a faiss ranker, full and sampled protocols, one Evaluator."""

from recsys.eval.baselines import AttributeOverlapModel, PopularityModel
from recsys.eval.contract import GenerativeModel, RetrievalModel
from recsys.eval.evaluator import Evaluator, RankedBatch, tie_aware_ranks
from recsys.eval.metrics import (
    RankingMetrics,
    hits_from_ranks,
    hits_from_topk,
    mrr_at_k,
    mrr_from_hits,
    ndcg_at_k,
    ndcg_from_hits,
    ranks_from_topk,
    recall_at_k,
    recall_from_hits,
)
from recsys.eval.protocols import FullRanking, Protocol, SampledRanking
from recsys.eval.ranker import IndexSpec, ItemRanker, index_recall, overlap_recall
from recsys.eval.result import EvalResult, format_table
from recsys.eval.seen import SeenItems

__all__ = [
    "AttributeOverlapModel", "EvalResult", "Evaluator", "FullRanking", "GenerativeModel", "IndexSpec", "ItemRanker", "PopularityModel",
    "Protocol", "RankedBatch", "RankingMetrics", "RetrievalModel", "SampledRanking", "SeenItems",
    "format_table", "hits_from_ranks", "hits_from_topk", "index_recall", "mrr_at_k", "mrr_from_hits",
    "ndcg_at_k", "ndcg_from_hits", "overlap_recall", "ranks_from_topk", "recall_at_k", "recall_from_hits",
    "tie_aware_ranks",
]
